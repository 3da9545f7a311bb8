"""The authors' CodeAct harness conventions (pythonformer), needed to read their traces right.

- Code: every fenced block matching their regex counts; exactly one runs, several are refused
  with their message, none means nothing runs and no observation is sent.
- Observation: the block's result dict (success, result, output, error; `globals` removed)
  sent as `json.dumps(...)`; `result` is always null (no notebook-style final value).
- Errors: a trimmed traceback plus `traceback.format_exception_only`, as one string; tool
  refusals arrive wrapped as `ToolRuntimeException: <message>`; the per-block tool-call limit
  is a bare sentence. `parse_error` recovers the exception type and message from that string.
- Persistent runtime: each model call also carried a user message listing the interpreter's
  global names, which the trace does not record.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..runtime.results import ErrorInfo

_CODE_BLOCK = re.compile(r"```(?:[a-zA-Z0-9_+-]+)?\n(.*?)```", re.DOTALL)
_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::(?: (?P<message>.*))?)?$")
MULTIPLE_BLOCKS_MESSAGE = "Error: You emitted multiple code blocks. Please provide only one executable code block per turn."
TOOL_CALL_LIMIT_PREFIX = "Tool call limit exceeded"
NO_BLOCK_FORMAT_ERROR = "no code block (the authors' harness ran nothing and sent no observation)"
MULTIPLE_BLOCKS_FORMAT_ERROR = "multiple code blocks (the authors' harness refused the turn)"


def extract_code_blocks(text: str) -> list[str]:
    """Their extraction: every ```lang\\n ... ``` block, stripped."""
    return [block.strip() for block in _CODE_BLOCK.findall(text)]


def code_and_format_error(assistant_text: str) -> tuple[str | None, str | None]:
    """What their harness ran for one assistant turn, or our name for why nothing ran."""
    blocks = extract_code_blocks(assistant_text)
    if len(blocks) == 1:
        return blocks[0], None
    return None, (MULTIPLE_BLOCKS_FORMAT_ERROR if blocks else NO_BLOCK_FORMAT_ERROR)


def observation_text(interpreter_result: dict[str, Any]) -> str:
    """The user message their harness sent after a block (json.dumps, globals removed)."""
    return json.dumps({key: value for key, value in interpreter_result.items() if key != "globals"})


def parse_error(text: str) -> ErrorInfo:
    """Type and message from their error string (traceback lines, then 'Type: message')."""
    if text.startswith(TOOL_CALL_LIMIT_PREFIX):
        return ErrorInfo(type="ToolCallLimitError", message=text, traceback=text, kind="limit")
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if line.startswith((" ", "\t")) or line.startswith("Traceback (most recent call last)"):
            continue
        match = _EXCEPTION_LINE.match(line)
        if match is None:
            continue
        full_type = match.group("type")
        short_type = full_type.rsplit(".", 1)[-1]
        message = "\n".join([match.group("message") or "", *lines[index + 1 :]]).strip("\n")
        if message.startswith(f"{short_type}:"):  # their tool exceptions repeat the type in str()
            message = message[len(short_type) + 1 :].lstrip()
        return ErrorInfo(type=short_type, message=message, traceback=text, kind="agent")
    return ErrorInfo(type="UnparsedError", message=text, traceback=text, kind="agent")


def parse_observation(content: str) -> dict[str, Any] | None:
    """An observation their harness (or their training loader) wrote as JSON, else None."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and value.keys() & {"output", "error", "success"}:
        return value
    return None
