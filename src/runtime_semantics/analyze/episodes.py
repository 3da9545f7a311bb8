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


def results_digest(evaluation_dir: Path) -> str:
    """sha256 over every result file's path and bytes: names exactly the data a report was made from."""
    digest = hashlib.sha256()
    for path in sorted(Path(evaluation_dir).glob(f"*/*{RESULT_SUFFIX}")):
        digest.update(path.relative_to(evaluation_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
