"""The evaluation results as one table: a row per episode, the columns every statistic reads.

A condition is a (model, runtime) pair; a cell adds the difficulty. Episodes of two cells
pair by episode id (the task id), which is what the paired tests rely on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..errors import UserError
from ..evaluate.results import RESULT_SUFFIX, EpisodeResult, iter_results
from ..layout import BASE_EVALUATION, seed_folder, seeds_in
from .behaviour import cross_turn_reuse, reads_task_constants

FORMAT_ERROR = "format error"


def episode_row(result: EpisodeResult) -> dict[str, object]:
    metrics, trace, cell = result.metrics, result.trace, result.cell
    failing_turns = sum(step.error is not None or step.format_error is not None for step in trace.steps)
    errors = dict(metrics.errors_by_type)
    if metrics.format_errors:
        errors[FORMAT_ERROR] = metrics.format_errors
    return {
        "cell": cell.id,
        "condition": f"{cell.model}.{cell.runtime}",
        "model": cell.model,
        "runtime": cell.runtime,
        "difficulty": cell.difficulty,
        "episode_id": trace.episode_id,
        "policy": trace.policy,
        "prompt_style": trace.prompt_style,
        "score_pct": 100.0 * metrics.score,
        "solved": metrics.solved,
        "steps": metrics.steps,
        "total_tokens": metrics.total_tokens,
        "duration_s": metrics.duration_s,
        "missing_variable": metrics.missing_variable_errors > 0,
        "any_error": failing_turns > 0,
        "failing_turns": failing_turns,
        "recovery_loops": metrics.recovery_loops,
        "state_reuse": cross_turn_reuse(trace),
        "reads_task": reads_task_constants(trace),
        "infrastructure_failure": metrics.infrastructure_failure,
        "first_block_ran": metrics.first_block_ran,
        "first_failure": metrics.first_failure,
        "errors_by_type": errors,
    }


def load_episodes(evaluation_dir: Path) -> pd.DataFrame:
    """Every episode under the evaluation folder; a missing or empty folder is a UserError."""
    evaluation_dir = Path(evaluation_dir)
    if not evaluation_dir.is_dir():
        raise UserError(f"{evaluation_dir}: no evaluation results (run the evaluate stage first)")
    rows = [episode_row(result) for result in iter_results(evaluation_dir)]
    if not rows:
        raise UserError(f"{evaluation_dir}: no *{RESULT_SUFFIX} files in any cell folder (run the evaluate stage first)")
    return pd.DataFrame(rows)


def load_seed_groups(evaluation_dir: Path) -> list[tuple[int | None, pd.DataFrame]]:
    """Per training seed, its 12 cells' episodes: the base model's cells (evaluation/base/, trained on
    no seed, so the same rows in every group) and the seed's own (evaluation/seed-<S>/), with a `seed`
    column. A folder of cell folders (the authors' published run) is one group whose seed is None."""
    evaluation_dir = Path(evaluation_dir)
    seeds = seeds_in(evaluation_dir)
    base_dir = evaluation_dir / BASE_EVALUATION
    if not seeds and not base_dir.is_dir():
        return [(None, load_episodes(evaluation_dir).assign(seed=None))]
    base = load_episodes(base_dir) if base_dir.is_dir() else pd.DataFrame()
    if not seeds:
        return [(None, base.assign(seed=None))]
    return [(seed, pd.concat([base, load_episodes(evaluation_dir / seed_folder(seed))], ignore_index=True).assign(seed=seed))
            for seed in seeds]


def pooled_episodes(groups: list[tuple[int | None, pd.DataFrame]], *, shared_once: bool) -> pd.DataFrame:
    """All groups in one table, episode ids made `<seed>/<task>` so pairs stay within a seed.

    shared_once: the base model's rows once (for its cell summaries: the same episodes are not
    more evidence because several seeds share them); otherwise once per seed (for paired tests,
    whose pairs are (seed, task))."""
    if len(groups) == 1:
        return groups[0][1]
    frames = []
    for i, (seed, frame) in enumerate(groups):
        if shared_once and i > 0:
            frame = frame[frame["model"] != "base"]
        frames.append(frame.assign(episode_id=[f"{seed}/{e}" for e in frame["episode_id"]]))
    return pd.concat(frames, ignore_index=True)


def results_digest(evaluation_dir: Path) -> str:
    """sha256 over every result file's path and bytes: names exactly the data a report was made from."""
    digest = hashlib.sha256()
    for path in sorted(Path(evaluation_dir).rglob(f"*{RESULT_SUFFIX}")):
        digest.update(path.relative_to(evaluation_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
