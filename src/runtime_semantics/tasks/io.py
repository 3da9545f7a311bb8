"""Reading and writing task JSONL files, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from ..errors import UserError, describe_validation_error
from ..files import atomic_write_text
from .model import TaskInstance


def write_tasks(path: Path, tasks: Iterable[TaskInstance]) -> None:
    """Write one instance per line, atomically."""
    atomic_write_text(path, "".join(task.to_json_line() for task in tasks))


def read_tasks(path: Path) -> list[TaskInstance]:
    """Load and validate a tasks file; a bad line raises UserError naming file, line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: no such tasks file") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    tasks = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            tasks.append(TaskInstance.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValidationError as exc:
            raise UserError(f"{path}:{number}: {describe_validation_error(exc)}") from None
    if not tasks:
        raise UserError(f"{path}: the file holds no tasks")
    return tasks
