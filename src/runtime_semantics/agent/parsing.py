"""Extract the one fenced Python block of an assistant turn (CodeAct format).

A turn must hold exactly one ```python (or ```py, or bare ```) block. None, several, or
an unclosed fence is a format error: the episode loop answers with a corrective
observation instead of running anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN = re.compile(r"^\s*```\s*([A-Za-z0-9_+-]*)\s*$")
_CLOSE = re.compile(r"^\s*```\s*$")
_CODE_LANGUAGES = {"python", "py", "python3", ""}


@dataclass(frozen=True)
class ParsedTurn:
    """Either `code` (exactly one block) or `format_error` (why the turn has no runnable block)."""

    code: str | None
    format_error: str | None


def parse_turn(text: str) -> ParsedTurn:
    blocks: list[str] = []
    current: list[str] | None = None
    current_is_code = False
    for line in text.splitlines():
        if current is None:
            match = _OPEN.match(line)
            if match:
                current, current_is_code = [], match.group(1).lower() in _CODE_LANGUAGES
        elif _CLOSE.match(line):
            if current_is_code:
                blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    if current is not None:
        return ParsedTurn(None, "unclosed code block: a ``` fence was opened but never closed")
    if not blocks:
        return ParsedTurn(None, "no code block: write your code in one ```python fenced block")
    if len(blocks) > 1:
        return ParsedTurn(None, f"{len(blocks)} code blocks: write exactly one ```python block per turn")
    if not blocks[0].strip():
        return ParsedTurn(None, "empty code block: the ```python block holds no code")
    return ParsedTurn(blocks[0], None)
