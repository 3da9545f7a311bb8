"""The `tasks` pipeline stage: generate a profile's training and evaluation sets."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from ..files import atomic_write_text
from .generator import iter_set
from .io import write_tasks
from .stats import task_set_stats

if TYPE_CHECKING:  # params imports every stage's settings; this stage's code needs none of them
    from ..params import Settings

log = logging.getLogger(__name__)


def run_tasks_stage(settings: Settings, out_dir: Path) -> dict[str, Path]:
    """Write `<set>.jsonl` for every set and `summary.json` with their statistics; return the paths."""
    sets = settings.sections.tasks.sets()
    written: dict[str, Path] = {}
    summary: dict[str, dict] = {}
    seen_seeds: set[int] = set()
    with Progress(
        TextColumn("tasks {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True)
    ) as progress:
        for name, spec in sets.items():
            parts = spec.parts()
            bar = progress.add_task(name, total=sum(n for _, n in parts))
            tasks = []
            for difficulty, n in parts:
                difficulty_settings = getattr(settings.task_family, difficulty)
                for task in iter_set(difficulty_settings, split=name, difficulty=difficulty, base_seed=spec.seed, n=n):
                    tasks.append(task)
                    progress.advance(bar)
            repeated = seen_seeds.intersection(t.seed for t in tasks)
            if repeated:  # a training instance must never also be an evaluation instance
                raise UserError(f"set {name!r} repeats instance seeds of an earlier set: {sorted(repeated)[:3]}")
            seen_seeds.update(t.seed for t in tasks)
            path = out_dir / f"{name}.jsonl"
            write_tasks(path, tasks)
            written[name] = path
            summary[name] = {"difficulty": spec.difficulty, "n_hard": spec.n_hard, "seed": spec.seed, **task_set_stats(tasks).model_dump()}
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("wrote %d task sets to %s", len(written), out_dir)
    return written
