"""The git revision of the code a stage runs: recorded beside evaluation outputs and in every report.

"Uncommitted changes" means changed tracked files, leaving out the report's own outputs and
dvc.lock: the pipeline rewrites both as it runs, so counting them would mark every second
rendering dirty and re-rendering would never be byte-identical.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

DVC_LOCK = "dvc.lock"


def git_revision(root: Path, exclude: Sequence[Path] = ()) -> str:
    """'<commit>', '<commit>+dirty' when tracked files other than `exclude` changed, 'unknown' outside git."""
    excluded = [f":(exclude){Path(p).as_posix()}" for p in (*exclude, DVC_LOCK)]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if changes.strip() else "")
