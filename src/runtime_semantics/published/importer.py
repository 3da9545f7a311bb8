"""Import a downloaded copy of the three published datasets into `artifacts/published/`.

Output, laid out like a profile's so every later stage reads it unchanged:
  tasks/eval_easy.jsonl, eval_hard.jsonl (+ .published.jsonl: what our format has no place for), summary.json
  traces/<runtime>/episodes/*.trace.json, kept.json, summary.json (the teacher traces)
  evaluation/<cell id>/<episode id>.result.json (the Qwen3-8B evaluation traces)
  import.json (counts, sources, and any dataset that was not there)
Everything is built in a temporary sibling folder and swapped in at the end, so a failed
import leaves the previous one untouched and nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..agent.settings import TracesParams
from ..agent.tokens import TokenCounter
from ..errors import UserError
from ..files import atomic_write_text
from .benchmarks_import import import_benchmarks
from .fetch import DATASETS, dataset_dir
from .settings import PublishedParams
from .tasks_import import read_published_tasks, write_imported_tasks
from .teacher_import import import_teacher_traces, teacher_file

log = logging.getLogger(__name__)


def locate_datasets(source: Path, params: PublishedParams) -> dict[str, Path | None]:
    """Each dataset's folder under `source`: named like its repository (as fetched) or tasks/train/benchmarks."""
    source = Path(source)
    if not source.is_dir():
        raise UserError(f"{source}: no such folder (download with `data fetch-published`, or pass the folder holding the datasets)")
    found: dict[str, Path | None] = {}
    for dataset in DATASETS:
        candidates = [dataset_dir(source, params.repos, dataset), source / dataset]
        found[dataset] = next((c for c in candidates if c.is_dir()), None)
    if found["tasks"] is None:
        expected = " or ".join(str(c) for c in (dataset_dir(source, params.repos, "tasks"), source / "tasks"))
        raise UserError(f"{source}: the tasks dataset is missing (expected {expected}); every other import needs it")
    return found


def import_published(source: Path, out_dir: Path, params: PublishedParams) -> dict[str, Any]:
    """Convert whatever of the three datasets `source` holds (the tasks at least) into `out_dir`."""
    folders = locate_datasets(source, params)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.importing-"))
    try:
        summary = _import_into(building, folders, params)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(building, out_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return summary


def _import_into(out_dir: Path, folders: dict[str, Path | None], params: PublishedParams) -> dict[str, Any]:
    tasks_root = folders["tasks"]
    assert tasks_root is not None  # locate_datasets guarantees it
    tasks = read_published_tasks(tasks_root)
    write_imported_tasks(out_dir / "tasks", tasks)
    counter = TokenCounter.from_pretrained(params.tokenizer)
    summary: dict[str, Any] = {
        "sources": {name: str(path) if path else None for name, path in folders.items()},
        "tasks": {difficulty: len(items) for difficulty, items in tasks.items()},
        "missing": [name for name, path in folders.items() if path is None],
    }
    if folders["benchmarks"] is not None:
        summary["evaluation"] = import_benchmarks(
            folders["benchmarks"], out_dir / "evaluation", tasks, counter=counter, limits=params.runtime,
            tool_calls_per_block=params.runtime.max_tool_calls_per_block,
        )  # fmt: skip
    if folders["train"] is not None:
        keep_all = TracesParams(teacher="published", published_dir=folders["train"], keep="all", workers=1)
        summary["traces"] = {
            runtime: import_teacher_traces(teacher_file(folders["train"], runtime), out_dir / "traces" / runtime, runtime,
                                           counter=counter, params=keep_all, root=folders["train"])  # fmt: skip
            for runtime in ("persistent", "stateless")
        }
    for name in summary["missing"]:
        log.warning("the %s dataset is not in the source folder: nothing of it was imported", name)
    atomic_write_text(out_dir / "import.json", json.dumps(summary, indent=2) + "\n")
    return summary
