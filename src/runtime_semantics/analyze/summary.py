"""Per-cell summaries: the numbers of the main table and the error table."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from ..agent.metrics import FAILURE_KINDS
from .conditions import condition_order, difficulty_order
from .record import CellSummary
from .settings import AnalyzeParams
from .statistics import bootstrap_mean, wilson_interval


def summarize_cell(episodes: pd.DataFrame, params: AnalyzeParams) -> CellSummary:
    """Summarise the episodes of one cell."""
    first = episodes.iloc[0]
    n = len(episodes)
    errors: Counter[str] = Counter()
    for counts in episodes["errors_by_type"]:
        errors.update(counts)
    loops = int(episodes["recovery_loops"].sum())
    score = bootstrap_mean(
        episodes["score_pct"].tolist(), resamples=params.bootstrap_resamples, seed=params.seed, key=f"score/{first['cell']}", alpha=params.alpha
    )
    tokens = float(episodes["total_tokens"].mean())
    reads = episodes["reads_task"].dropna() if "reads_task" in episodes else pd.Series([], dtype=object)
    return CellSummary(
        cell=first["cell"],
        condition=first["condition"],
        model=first["model"],
        runtime=first["runtime"],
        difficulty=first["difficulty"],
        episodes=n,
        score_pct=score,
        solved=int(episodes["solved"].sum()),
        solved_rate=wilson_interval(int(episodes["solved"].sum()), n, params.alpha),
        steps=float(episodes["steps"].mean()),
        total_tokens=tokens,
        duration_s=float(episodes["duration_s"].mean()),
        score_per_1k_tokens=score.value / (tokens / 1000) if tokens else 0.0,
        missing_variable_rate=wilson_interval(int(episodes["missing_variable"].sum()), n, params.alpha),
        any_error_rate=wilson_interval(int(episodes["any_error"].sum()), n, params.alpha),
        recovery_loop_length=float(episodes["failing_turns"].sum()) / loops if loops else None,
        state_reuse=float(episodes["state_reuse"].mean()),
        reads_task_rate=wilson_interval(int(reads.astype(bool).sum()), n, params.alpha) if len(reads) == n else None,
        errors_per_episode={kind: count / n for kind, count in sorted(errors.items())},
        infrastructure_failures=int(episodes["infrastructure_failure"].sum()),
        first_block_rate=wilson_interval(int(episodes["first_block_ran"].sum()), n, params.alpha),
        first_failures={kind: float((episodes["first_failure"] == kind).mean()) for kind in FAILURE_KINDS},
    )


def summarize_cells(episodes: pd.DataFrame, params: AnalyzeParams) -> list[CellSummary]:
    """One summary per cell present, ordered by difficulty, then condition."""
    summaries = [summarize_cell(group, params) for _, group in episodes.groupby("cell", sort=False)]
    return sorted(summaries, key=lambda s: (difficulty_order(s.difficulty), condition_order(s.condition)))
