"""Render one episode trace for a person: header, then each turn's thought, code and observation."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .metrics import episode_metrics
from .trace import Trace


def _thought(text: str) -> str:
    """The prose of an assistant turn, without its code block."""
    if "```" not in text:
        return text.strip()
    return text.split("```", 1)[0].strip()


def render_trace(trace: Trace, console: Console) -> None:
    metrics = episode_metrics(trace)
    header = Table.grid(padding=(0, 2))
    for key, value in (
        ("episode", trace.episode_id),
        ("runtime / policy", f"{trace.runtime} / {trace.policy} ({trace.prompt_style} prompts)"),
        ("outcome", f"score {trace.outcome.score:.3f}, solved {trace.outcome.solved}, stop: {trace.stop_reason}"),
        ("steps / tokens", f"{metrics.steps} steps, {metrics.total_tokens:,} tokens ({trace.tokenizer})"),
        ("errors", f"{metrics.error_steps} failing blocks, {metrics.missing_variable_errors} missing-variable, {metrics.format_errors} format"),
    ):
        header.add_row(Text(key, style="bold"), value)
    console.print(Panel(header, title="trace", border_style="cyan"))
    for step in trace.steps:
        parts: list = [Text(_thought(step.assistant_text), style="italic")]
        if step.code is not None:
            parts.append(Syntax(step.code, "python", line_numbers=True, word_wrap=True))
        failed = step.error is not None or step.format_error is not None
        parts.append(Text(step.observation, style="red" if failed else "green"))
        if step.tool_calls:
            parts.append(Text(f"{len(step.tool_calls)} tool calls: " + ", ".join(c.name for c in step.tool_calls[:8]) + (" ..." if len(step.tool_calls) > 8 else ""), style="dim"))
        title = f"turn {step.turn}  ·  {step.prompt_tokens:,}+{step.completion_tokens:,} tokens"
        console.print(Panel(Group(*parts), title=title, border_style="red" if failed else "blue"))


__all__ = ["render_trace"]
