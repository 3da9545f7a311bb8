"""Errors meant for people: the CLI prints them as one line and exits 2, without a traceback."""

from __future__ import annotations

from pydantic import ValidationError


class UserError(Exception):
    """A problem the user can fix (bad file, bad value); the message names file and key."""


def describe_validation_error(exc: ValidationError) -> str:
    """First pydantic error as 'key.path: what was expected (got X)', plus a count of the rest."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key (not expected here)"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif "input" in first and not isinstance(first["input"], dict):
        message = f"{message} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{key}: {message}{more}"
