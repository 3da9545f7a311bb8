"""The authors' 200 evaluation tasks -> our tasks JSONL (`eval_easy.jsonl`, `eval_hard.jsonl`).

Field mapping (theirs -> ours):
  file name knapsack-<n>.json + folder easy|hard (|medium), as <difficulty>/knapsack/ or the generator's
  <difficulty>/tasks/knapsack/ (its manifest.json is not read) -> task_id `published-<difficulty>-<n>`, difficulty
  seed -> seed
  the order of private.items in the file -> public.item_ids (the order our list_items() returns):
    their list_items() listed private.items, not public.item_ids (generation order; absent in
    the card's spelling), which is kept in the provenance file when it differs
  public.capacity -> public.capacity;  public.inspect_budget | budget -> public.inspect_budget
  the classes present among the items (what their goal prompt listed) -> public.classes
  private.items {id: {weight, value, class}} -> hidden.items;  public.allowed_classes | valid_classes -> hidden.allowed_classes
  reference.optimal_item_ids | optimal_items, optimal_value, optimal_weight (summed when absent) -> reference
Everything else (their task_id, family, difficulty statistics, schema_version, run_name,
generated_at, nl, unknown fields) goes to `<set>.published.jsonl` beside the set, one line per
task. Their optimum is checked with our DP solver; any mismatch stops the import, naming files.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UserError, describe_validation_error
from ..files import atomic_write_text
from ..tasks import TaskInstance, solve_knapsack, task_set_stats, write_tasks
from ..tasks.model import HiddenInfo, Item, PublicInfo, Reference
from .formats import PublishedTask, load_json_file, unknown_fields, validate

log = logging.getLogger(__name__)
DIFFICULTY_FOLDERS = {"easy": ("easy",), "hard": ("hard", "medium")}  # the authors' code calls hard "medium"
_TASK_FILE = re.compile(r"^knapsack-(\d+)\.json$")


@dataclass
class ImportedTask:
    """One converted task and what of the original has no place in our task format."""

    task: TaskInstance
    number: str
    provenance: dict[str, Any] = field(default_factory=dict)


def published_task_id(difficulty: str, number: str) -> str:
    return f"published-{difficulty}-{number}"


def task_number(file_name: str) -> str | None:
    """`0000000007` from `knapsack-0000000007.json` (also from a trace's `knapsack-knapsack-...` name)."""
    stem = file_name.removesuffix(".trace.json").removesuffix(".json")
    while stem.startswith("knapsack-"):
        stem = stem.removeprefix("knapsack-")
    return stem if stem.isdigit() else None


def difficulty_folders(root: Path) -> dict[str, Path]:
    """easy -> <root>/easy/knapsack, hard -> <root>/hard/knapsack (or medium/, or under tasks/), or the
    layout the authors' generator CLI writes: <difficulty>/tasks/knapsack/ beside a manifest.json."""
    found: dict[str, Path] = {}
    for base in (root, root / "tasks"):
        for difficulty, names in DIFFICULTY_FOLDERS.items():
            for name in names:
                for folder in (base / name / "knapsack", base / name / "tasks" / "knapsack"):
                    if difficulty in found and folder.is_dir() and folder != found[difficulty]:
                        raise UserError(f"{folder}: a second {difficulty} task folder (the first: {found[difficulty]})")
                    if difficulty not in found and folder.is_dir():
                        found[difficulty] = folder
    missing = [d for d in DIFFICULTY_FOLDERS if d not in found]
    if missing:
        raise UserError(
            f"{root}: no {' or '.join(missing)} task folder (expected <difficulty>/knapsack/knapsack-<n>.json "
            "or <difficulty>/tasks/knapsack/knapsack-<n>.json)"
        )
    return found


def convert_task(path: Path, difficulty: str, relative_to: Path) -> ImportedTask:
    """One task file -> our instance; a malformed file raises UserError naming it and the field."""
    match = _TASK_FILE.match(path.name)
    if match is None:
        raise UserError(f"{path}: file name: expected knapsack-<number>.json")
    number = match.group(1)
    data = load_json_file(path)
    theirs = validate(PublishedTask, data, str(path))
    items = theirs.private.items
    item_ids = list(items)  # what their list_items() returned: the file's order of private.items
    listed = theirs.public.item_ids
    if listed is not None and (sorted(listed) != sorted(items) or len(set(listed)) != len(listed)):
        raise UserError(f"{path}: public.item_ids: must list each id of private.items exactly once")
    reference = theirs.reference
    optimal_weight = reference.optimal_weight
    if optimal_weight is None:
        unknown = [i for i in reference.optimal_item_ids if i not in items]
        if unknown:
            raise UserError(f"{path}: reference.optimal_item_ids: unknown ids {unknown[:3]}")
        optimal_weight = sum(items[i].weight for i in reference.optimal_item_ids)
    try:
        task = TaskInstance(
            task_id=published_task_id(difficulty, number),
            difficulty=difficulty,
            seed=theirs.seed,
            public=PublicInfo(
                item_ids=item_ids,
                capacity=theirs.public.capacity,
                inspect_budget=theirs.public.inspect_budget,
                classes=sorted({items[i].item_class for i in item_ids}),
            ),
            hidden=HiddenInfo(
                items={i: Item(weight=items[i].weight, value=items[i].value, item_class=items[i].item_class) for i in item_ids},
                allowed_classes=theirs.public.allowed_classes,
            ),
            reference=Reference(
                optimal_item_ids=reference.optimal_item_ids, optimal_value=reference.optimal_value, optimal_weight=optimal_weight
            ),
        )
    except ValidationError as exc:
        raise UserError(f"{path}: in our task format, {describe_validation_error(exc)}") from None
    provenance = {
        "task_id": task.task_id,
        "source_file": path.relative_to(relative_to).as_posix(),
        "published_task_id": theirs.task_id,
        "family": theirs.family,
        "difficulty_stats": theirs.difficulty,
        "schema_version": theirs.schema_version,
        "run_name": theirs.run_name,
        "generated_at": theirs.generated_at,
        "nl": theirs.nl,
        "key_spelling": "dataset card" if listed is None else "code",
        "public_item_ids": listed if listed is not None and listed != item_ids else None,
        "unknown": unknown_fields(theirs),
    }
    return ImportedTask(task=task, number=number, provenance=provenance)


def check_reference(imported: ImportedTask, path_label: str) -> str | None:
    """Our DP optimum must equal theirs, and their optimal set must be feasible with that value."""
    task = imported.task
    allowed = task.allowed_items
    ours = solve_knapsack([(i, it.weight, it.value) for i, it in allowed.items()], task.public.capacity)
    imported.provenance["our_optimum"] = {"item_ids": list(ours.item_ids), "value": ours.value, "weight": ours.weight}
    theirs = task.reference
    if ours.value != theirs.optimal_value:
        return f"{path_label}: reference.optimal_value: {theirs.optimal_value}, but our DP solver finds {ours.value}"
    if any(i not in allowed for i in theirs.optimal_item_ids):
        return f"{path_label}: reference.optimal_item_ids: holds items of a class that is not allowed"
    value = sum(allowed[i].value for i in theirs.optimal_item_ids)
    weight = sum(allowed[i].weight for i in theirs.optimal_item_ids)
    if value != theirs.optimal_value or weight != theirs.optimal_weight or weight > task.public.capacity:
        return (f"{path_label}: reference: the optimal items sum to value {value} and weight {weight} (capacity "
                f"{task.public.capacity}), not the recorded {theirs.optimal_value} and {theirs.optimal_weight}")  # fmt: skip
    return None


def read_published_tasks(root: Path) -> dict[str, list[ImportedTask]]:
    """All tasks under a downloaded copy of the tasks dataset, checked, per difficulty."""
    root = Path(root)
    imported: dict[str, list[ImportedTask]] = {}
    problems: list[str] = []
    for difficulty, folder in difficulty_folders(root).items():
        files = sorted(p for p in folder.iterdir() if p.suffix == ".json")
        if not files:
            raise UserError(f"{folder}: no task files (knapsack-<number>.json)")
        imported[difficulty] = [convert_task(path, difficulty, root) for path in files]
        for path, task in zip(files, imported[difficulty], strict=True):
            problem = check_reference(task, str(path))
            if problem is not None:
                problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError("; ".join(problems[:3]) + more)
    return imported


def write_imported_tasks(out_dir: Path, imported: dict[str, list[ImportedTask]]) -> dict[str, Path]:
    """eval_<difficulty>.jsonl, eval_<difficulty>.published.jsonl and summary.json, atomically."""
    written: dict[str, Path] = {}
    summary: dict[str, Any] = {}
    for difficulty, tasks in imported.items():
        name = f"eval_{difficulty}"
        written[name] = out_dir / f"{name}.jsonl"
        write_tasks(written[name], [t.task for t in tasks])
        atomic_write_text(
            out_dir / f"{name}.published.jsonl", "".join(json.dumps(t.provenance, sort_keys=True) + "\n" for t in tasks)
        )
        summary[name] = {"difficulty": difficulty, "source": "published", **task_set_stats([t.task for t in tasks]).model_dump()}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("imported %s tasks into %s", " + ".join(str(len(t)) for t in imported.values()), out_dir)
    return written
