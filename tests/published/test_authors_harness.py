"""Reading the authors' harness conventions: their code blocks, error strings and observations."""

from __future__ import annotations

import pytest

from runtime_semantics.published.authors_harness import code_and_format_error, observation_text, parse_error, parse_observation
from runtime_semantics.published.replay import same_error_type
from runtime_semantics.runtime.results import ErrorInfo


@pytest.mark.parametrize(
    ("text", "type_", "message"),
    [
        ("Traceback (most recent call last):\n  File \"<string>\", line 2, in <module>\nNameError: name 'items' is not defined",
         "NameError", "name 'items' is not defined"),
        ("Traceback (most recent call last):\n  File \"<string>\", line 5, in <module>\n"
         "pythonformer.codeact.tool.ToolRuntimeException: ToolRuntimeException: Item class 'C' not allowed.",
         "ToolRuntimeException", "Item class 'C' not allowed."),
        ("pythonformer.codeact.tool.ToolInvocationException: ToolInvocationException:\nArgument item_id should be of type str. Got int instead.",
         "ToolInvocationException", "Argument item_id should be of type str. Got int instead."),
        ("  File \"<string>\", line 1\n    x = (\n        ^\nSyntaxError: '(' was never closed", "SyntaxError", "'(' was never closed"),
        ("Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nStopIteration", "StopIteration", ""),
        ("Tool call limit exceeded: allowed 25 per run.", "ToolCallLimitError", "Tool call limit exceeded: allowed 25 per run."),
        ("something odd happened", "UnparsedError", "something odd happened"),
    ],
)  # fmt: skip
def test_their_error_strings_give_type_and_message(text, type_, message):
    error = parse_error(text)
    assert (error.type, error.message, error.traceback) == (type_, message, text)


def test_code_is_what_their_regex_would_run():
    assert code_and_format_error("think\n```python\nx = 1\n```\n") == ("x = 1", None)
    assert code_and_format_error("```\nx = 1\n```") == ("x = 1", None)
    assert code_and_format_error("```python\na\n```\n```python\nb\n```")[1].startswith("multiple code blocks")
    assert code_and_format_error("no code at all")[1].startswith("no code block")


def test_the_observation_is_their_json_without_globals():
    result = {"success": True, "result": None, "output": "hi\n", "error": None, "globals": {"x": "1"}}
    assert observation_text(result) == '{"success": true, "result": null, "output": "hi\\n", "error": null}'
    assert parse_observation('{"output": "3\\n"}') == {"output": "3\n"}
    assert parse_observation("plain text") is None and parse_observation("[1, 2]") is None


def test_their_tool_exceptions_match_the_exception_our_tools_raise_for_them():
    theirs = parse_error("pythonformer.codeact.tool.ToolRuntimeException: ToolRuntimeException: Unknown item_id: x")
    assert same_error_type(theirs, ErrorInfo(type="Exception", message="ToolRuntimeException: Unknown item_id: x"))
    assert not same_error_type(theirs, ErrorInfo(type="ValueError", message="unknown item id: 'x'"))
    limit = parse_error("Tool call limit exceeded: allowed 25 per run.")
    assert same_error_type(limit, ErrorInfo(type="RuntimeError", message="Tool call limit exceeded: allowed 25 per run."))
    assert same_error_type(None, None) and not same_error_type(None, limit)
