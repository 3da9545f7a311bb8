"""The authors' 1,200 evaluation traces -> our per-episode results, one folder per cell.

Their folder `{model}_{runtime}_{difficulty}` becomes our cell id `<model>.<runtime>.<difficulty>`:
model base -> base, persistent -> trained-persistent, stateless -> trained-stateless; runtime
persistent -> persistent, reset|stateless -> stateless; difficulty easy -> easy,
hard|medium -> hard. `knapsack/knapsack-knapsack-<n>.trace.json` (the runner's name: family, then
task id; a single `knapsack-` prefix is read too) is matched to the imported task `<n>`
of that difficulty (the episode id is our task id, so episodes pair across cells), converted
(trace_events.py) and written with `evaluate.results` (metrics derived exactly as for our
own episodes). The score comes from the sibling result file `knapsack-<n>.json`; where there is
none, from replaying the trace in our runtime (recorded as `outcome_source: replay`). The runner's
per-cell `summary_<agent>-knapsack.json` is not read (our metrics come from the episodes); its path
is recorded in the import summary, which counts per cell: episodes, result statuses, unmapped
events and model calls without a step.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..agent.tokens import TokenCounter
from ..errors import UserError
from ..evaluate.results import Cell, EpisodeResult, write_result
from ..runtime import RuntimeLimits
from .conversion import STUDENT_POLICIES, EpisodeIdentity, published_metrics
from .formats import PublishedResultFile, load_json_file, validate
from .replay import replay_limits, replay_trace
from .tasks_import import ImportedTask, task_number
from .trace_events import trace_from_events

log = logging.getLogger(__name__)
_CELL_FOLDER = re.compile(r"^(?P<model>base|persistent|stateless)_(?P<runtime>persistent|stateless|reset)_(?P<difficulty>easy|hard|medium)$")
MODELS = {"base": "base", "persistent": "trained-persistent", "stateless": "trained-stateless"}
RUNTIMES = {"persistent": "persistent", "stateless": "stateless", "reset": "stateless"}
DIFFICULTIES = {"easy": "easy", "hard": "hard", "medium": "hard"}


def cell_of_folder(name: str) -> Cell | None:
    """Our cell for one of their folder names, or None for anything else."""
    match = _CELL_FOLDER.match(name)
    if match is None:
        return None
    return Cell(model=MODELS[match["model"]], runtime=RUNTIMES[match["runtime"]], difficulty=DIFFICULTIES[match["difficulty"]])


def cell_folders(root: Path) -> dict[Path, Cell]:
    """Every cell folder under the downloaded benchmarks dataset; other entries are listed in the log."""
    found: dict[Path, Cell] = {}
    ignored = []
    for entry in sorted(Path(root).iterdir()):
        cell = cell_of_folder(entry.name) if entry.is_dir() else None
        if cell is None:
            ignored.append(entry.name)
        elif cell in found.values():
            raise UserError(f"{entry}: a second folder for cell {cell.id}")
        else:
            found[entry] = cell
    if not found:
        raise UserError(f"{root}: no cell folders ({{model}}_{{runtime}}_{{difficulty}}, e.g. persistent_stateless_easy)")
    if ignored:
        log.info("%s: not cell folders, left alone: %s", root, ", ".join(ignored))
    return found


def import_episode(
    trace_file: Path, cell: Cell, tasks: dict[str, ImportedTask], root: Path, *, counter: TokenCounter,
    limits: RuntimeLimits, tool_calls_per_block: int,
) -> EpisodeResult:
    """One trace file (and its result file) -> our EpisodeResult."""
    number = task_number(trace_file.name)
    imported = tasks.get(number or "")
    if imported is None:
        raise UserError(f"{trace_file}: file name: no published {cell.difficulty} task numbered {number!r}")
    task = imported.task
    result_file = trace_file.with_name(trace_file.name.removesuffix(".trace.json") + ".json")
    result = validate(PublishedResultFile, load_json_file(result_file), str(result_file)) if result_file.exists() else None
    source: dict[str, Any] = {
        "dataset": "benchmarks",
        "file": trace_file.relative_to(root).as_posix(),
        "result_file": result_file.relative_to(root).as_posix() if result is not None else None,
        "cell_folder": trace_file.parent.parent.name,
        "outcome_source": "result file" if result is not None else "replay",
    }
    identity = EpisodeIdentity(
        episode_id=task.task_id, task_id=task.task_id, difficulty=cell.difficulty, runtime=cell.runtime,
        policy=STUDENT_POLICIES[cell.model], seed=task.seed,
    )  # fmt: skip
    trace = trace_from_events(load_json_file(trace_file), str(trace_file), identity, counter=counter, result=result,
                              result_where=str(result_file), source=source)  # fmt: skip
    if result is None:  # no recorded score: take the one our runtime reaches with the same code
        replayed = replay_trace(trace, task, replay_limits(limits), tool_calls_per_block)
        trace = trace.model_copy(update={"outcome": replayed.replayed})
    return EpisodeResult(cell=cell, trace=trace, metrics=published_metrics(trace))


def _new_entry(folder: str, summaries: list[str]) -> dict[str, Any]:
    return {"episodes": 0, "statuses": {}, "cut_conversations": 0, "unmapped_events": 0, "model_calls_without_step": 0,
            "scores_from_replay": 0, "source_folder": folder, "runner_summary": summaries[0] if summaries else None}  # fmt: skip


def _count(entry: dict[str, Any], published: dict[str, Any]) -> None:
    """Add one episode's status, unmapped events and step-less model calls to its cell's counts."""
    entry["episodes"] += 1
    status = (published.get("result") or {}).get("status") or "no result file"
    entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
    entry["unmapped_events"] += published.get("unmapped_events", 0)
    entry["model_calls_without_step"] += len(published.get("unstepped_calls") or [])
    entry["scores_from_replay"] += published.get("outcome_source") == "replay"


def import_benchmarks(
    root: Path, evaluation_dir: Path, tasks: dict[str, list[ImportedTask]], *, counter: TokenCounter,
    limits: RuntimeLimits, tool_calls_per_block: int,
) -> dict[str, Any]:
    """Convert every cell; returns per-cell counts (episodes, and how many scores came from a replay)."""
    root = Path(root)
    by_number = {difficulty: {t.number: t for t in items} for difficulty, items in tasks.items()}
    work = []
    summaries: dict[str, list[str]] = {}
    for folder, cell in cell_folders(root).items():
        files = sorted((folder / "knapsack").glob("*.trace.json"))
        if not files:
            raise UserError(f"{folder}: no trace files (expected knapsack/knapsack-knapsack-<n>.trace.json)")
        work += [(path, cell) for path in files]
        used = {p.name for p in files} | {p.name.removesuffix(".trace.json") + ".json" for p in files}
        used |= {p.name.removesuffix(".json") + ".html" for p in files}  # the runner's .trace.html
        summaries[cell.id] = sorted(p.relative_to(root).as_posix() for p in folder.rglob("summary_*.json"))
        used |= {Path(s).name for s in summaries[cell.id]}
        other = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name not in used)
        if other:
            log.info("%s: %d files that are neither traces nor their result files, left alone: %s", folder, len(other), ", ".join(other[:5]))
    counts: dict[str, Any] = {}
    with Progress(TextColumn("import {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as progress:  # fmt: skip
        bar = progress.add_task("evaluation traces", total=len(work))
        seen: dict[tuple[str, str], Path] = {}
        for path, cell in work:
            result = import_episode(path, cell, by_number[cell.difficulty], root, counter=counter, limits=limits,
                                    tool_calls_per_block=tool_calls_per_block)  # fmt: skip
            key = (cell.id, result.trace.episode_id)
            if key in seen:
                raise UserError(f"{path}: a second trace of task {result.trace.task_id} in this cell (the first: {seen[key].name})")
            seen[key] = path
            write_result(evaluation_dir, result)
            entry = counts.setdefault(cell.id, _new_entry(path.parent.parent.name, summaries[cell.id]))
            _count(entry, result.trace.extra["published"])
            progress.advance(bar)
    for entry in counts.values():
        entry["statuses"] = dict(sorted(entry["statuses"].items()))
    replayed = sum(c["scores_from_replay"] for c in counts.values())
    if replayed:
        log.warning("%d episodes have no result file; their scores come from replaying the code in our runtime", replayed)
    return counts
