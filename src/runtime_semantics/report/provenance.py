"""Which code and which data a report was made from: the git revision and DVC's record of the results.

"Uncommitted changes" means changed tracked files, leaving out the report's own outputs and
dvc.lock: the pipeline rewrites both as it runs, so counting them would mark every second
rendering dirty and re-rendering would never be byte-identical.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

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


def dvc_revision(root: Path, data_path: str) -> str:
    """The md5 dvc.lock records for `data_path` (as a stage output, else as a dependency)."""
    lock = Path(root) / DVC_LOCK
    if not lock.exists():
        return f"not recorded ({DVC_LOCK} absent: the results were not made by dvc repro)"
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
    for kind in ("outs", "deps"):
        for name, stage in sorted(stages.items()):
            for entry in stage.get(kind, []):
                if entry.get("path") == data_path and "md5" in entry:
                    return f"{entry['md5']} ({DVC_LOCK}, {name})"
    return f"not recorded ({data_path} is in no stage of {DVC_LOCK})"
