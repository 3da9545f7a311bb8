"""Atomic file writes and resumable stage folders: a killed stage never leaves a half-written file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import UserError, describe_validation_error

log = logging.getLogger(__name__)
Model = TypeVar("Model", bound=BaseModel)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_resumable_dir(out_dir: Path, fingerprint: str) -> bool:
    """Keep a stage's partial output when it was made with the same settings and code.

    `fingerprint` is a hash of everything that decides the output; a folder stamped with a
    different one (or none) is deleted, so a resumed run never mixes two configurations.
    Returns True when earlier work is kept.
    """
    out_dir = Path(out_dir)
    stamp = out_dir / "fingerprint.txt"
    kept = out_dir.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint
    if out_dir.exists() and not kept:
        log.warning("%s holds output of another configuration; starting afresh", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, fingerprint + "\n")
    return kept


def read_json_model(path: Path, model: type[Model], what: str, hint: str = "") -> Model:
    """Read and validate one JSON file; a missing, corrupt or foreign file is a UserError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid JSON {what} ({exc}){hint}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_validation_error(exc)}{hint}") from None
