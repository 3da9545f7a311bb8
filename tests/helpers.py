"""Helpers the tests import: running the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m runtime_semantics ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runtime_semantics", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def marked_spans(tokenizer, ids: list[int], marked: list[bool]) -> list[str]:
    """Decode each maximal run of marked tokens (e.g. the tokens that carry a training label)."""
    spans, current = [], []
    for token, is_marked in zip(ids, marked, strict=True):
        if is_marked:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans
