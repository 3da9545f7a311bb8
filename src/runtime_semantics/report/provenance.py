"""Which code and which data a report was made from: the git revision and DVC's record of the results.

The git revision is revision.py's (the evaluate stage records it too, beside its outputs).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..revision import DVC_LOCK, git_revision

__all__ = ["DVC_LOCK", "dvc_revision", "git_revision"]


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
