"""Render the agent's prompts from the Jinja files in prompts/ (StrictUndefined: a missing value fails).

`prompt_style` sets how much the text tells the model about its runtime:
- `paper`: the authors' prompts; the persistent runtime also gets permanent-state guidance
  with an example, and every observation lists the interpreter's global names;
- `matched`: identical prompts except one sentence naming the runtime, no globals list;
- `blind`: nothing about the runtime at all; the system prompt, the goal and every
  observation are the same text in both runtimes for the same block output, so whatever
  differs between the runtimes comes from their semantics and what the model learned.
A student that never saw the other runtime's prompt can fail on its first turn under
`paper`, before the runtime has done anything (the prompt confound this setting removes).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

_TEMPLATES = Path(__file__).with_name("prompts")
_ENV = Environment(loader=FileSystemLoader(_TEMPLATES), undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


class PromptStyle(str, Enum):
    PAPER = "paper"
    MATCHED = "matched"
    BLIND = "blind"


def _render(name: str, **values: Any) -> str:
    return _ENV.get_template(name).render(**values).strip()


class PromptBuilder:
    """All text the harness (not the model) writes into a conversation."""

    def __init__(self, *, style: PromptStyle, persistent: bool, max_tool_calls: int) -> None:
        self.style = PromptStyle(style)
        self.persistent = persistent
        self.max_tool_calls = max_tool_calls

    @property
    def shows_globals(self) -> bool:
        """The authors list the interpreter's global names after each block, in the persistent runtime only."""
        return self.style is PromptStyle.PAPER and self.persistent

    def system_prompt(self) -> str:
        if self.style is PromptStyle.PAPER:
            note = _render("runtime_persistent_paper.j2" if self.persistent else "runtime_stateless_paper.j2")
        elif self.style is PromptStyle.MATCHED:
            note = _render("runtime_matched.j2", persistent=self.persistent)
        else:
            note = None
        return _render("system.j2", tool_docs=_render("tools.j2", max_tool_calls=self.max_tool_calls), runtime_note=note)

    def goal(self, public: dict[str, Any]) -> str:
        return _render(
            "goal.j2",
            n_items=len(public["item_ids"]),
            capacity=public["capacity"],
            inspect_budget=public["inspect_budget"],
            classes=public["classes"],
        )

    def observation(
        self,
        *,
        stdout: str = "",
        value_repr: str | None = None,
        error: str | None = None,
        global_names: list[str] | None = None,
        state_lost: bool = False,
        format_error: str | None = None,
    ) -> str:
        return _render(
            "observation.j2",
            stdout=stdout.rstrip("\n"),
            value_repr=value_repr,
            error=error,
            global_names=sorted(global_names) if (self.shows_globals and global_names is not None) else None,
            # a restarted worker is a fact of the persistent runtime; `blind` does not name it
            state_lost=state_lost and self.style is not PromptStyle.BLIND,
            format_error=format_error,
        )
