"""Exactly one fenced Python block per turn; anything else is a format error with a reason."""

import pytest

from runtime_semantics.agent.parsing import parse_turn


def test_one_python_block_is_extracted_with_surrounding_prose_ignored():
    parsed = parse_turn("Let me look.\n\n```python\nx = 1\nprint(x)\n```\nDone.")
    assert parsed.code == "x = 1\nprint(x)" and parsed.format_error is None


@pytest.mark.parametrize("fence", ["```python", "```py", "```", "``` Python"])
def test_python_fence_spellings(fence):
    assert parse_turn(f"{fence}\nprint(1)\n```").code == "print(1)"


def test_other_languages_are_not_code():
    parsed = parse_turn("```text\nnot code\n```\n```python\nprint(2)\n```")
    assert parsed.code == "print(2)"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I will think about it.", "no code block"),
        ("```python\na = 1\n```\nand\n```python\nb = 2\n```", "2 code blocks"),
        ("```python\na = 1\n", "unclosed"),
        ("```python\n\n```", "empty"),
    ],
)
def test_format_errors_say_why(text, reason):
    parsed = parse_turn(text)
    assert parsed.code is None and reason in parsed.format_error
