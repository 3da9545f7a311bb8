"""Render the agent's prompts from the Jinja files in prompts/ (StrictUndefined: a missing value fails).

`prompt_style` chooses between the authors' prompts (`paper`: the persistent runtime also gets
permanent-state guidance with an example, and every observation lists the interpreter's
global names) and a matched ablation (`matched`: identical prompts except one sentence
naming the runtime, and no globals list), so the prompt confound can be measured.
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
        else:
            note = _render("runtime_matched.j2", persistent=self.persistent)
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
            state_lost=state_lost,
            format_error=format_error,
        )
