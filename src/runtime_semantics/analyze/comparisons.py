"""The paper's comparisons: paired tests between conditions on the same task instances.

Each comparison contrasts two conditions within a difficulty; episodes pair by episode id
and only episodes present in both cells count. Every metric is one family of tests (all
comparisons x difficulties) and is Holm-corrected within it. The equivalence test (TOST) on
score is run where the paper claims indistinguishable quality: the aligned conditions.
"""

from __future__ import annotations

import logging

import pandas as pd

from ..evaluate.results import DIFFICULTIES
from .conditions import COMPARISONS, EQUIVALENCE_COMPARISONS, TESTED_METRICS, Comparison
from .record import EquivalenceTest, PairedTest
from .settings import AnalyzeParams
from .statistics import holm, paired_bootstrap, paired_power, tost_paired, tost_power, wilcoxon

log = logging.getLogger(__name__)


def paired(episodes: pd.DataFrame, comparison: Comparison, difficulty: str) -> pd.DataFrame:
    """The episodes both cells ran, one row per episode id, metric columns suffixed _a and _b."""
    cell = episodes[episodes["difficulty"] == difficulty]
    a = cell[cell["condition"] == comparison.a].set_index("episode_id")
    b = cell[cell["condition"] == comparison.b].set_index("episode_id")
    both = a.merge(b, how="inner", left_index=True, right_index=True, suffixes=("_a", "_b")).sort_index()
    unpaired = len(a) + len(b) - 2 * len(both)
    if unpaired:
        log.warning("%s/%s: %d episodes have no partner in the other cell and are left out", comparison.id, difficulty, unpaired)
    return both


def paired_tests(episodes: pd.DataFrame, params: AnalyzeParams) -> list[PairedTest]:
    """Wilcoxon signed-rank test, mean difference and (where meaningful) ratio for every metric."""
    tests: list[PairedTest] = []
    for metric, has_ratio in TESTED_METRICS.items():
        family: list[dict] = []
        for comparison in COMPARISONS:
            for difficulty in DIFFICULTIES:
                pairs = paired(episodes, comparison, difficulty)
                if len(pairs) < 2:
                    continue
                a, b = pairs[f"{metric}_a"].astype(float).tolist(), pairs[f"{metric}_b"].astype(float).tolist()
                difference, ratio = paired_bootstrap(
                    a, b, resamples=params.bootstrap_resamples, seed=params.seed, key=f"{metric}/{comparison.id}/{difficulty}", alpha=params.alpha
                )
                result = wilcoxon(a, b)
                family.append({
                    "comparison": comparison.id, "difficulty": difficulty, "metric": metric,
                    "cell_a": f"{comparison.a}.{difficulty}", "cell_b": f"{comparison.b}.{difficulty}", "n_pairs": len(pairs),
                    "mean_a": sum(a) / len(a), "mean_b": sum(b) / len(b), "difference": difference,
                    "ratio": ratio if has_ratio else None, "w": result.w, "p": result.p, "rank_biserial": result.rank_biserial,
                    "power": paired_power(a, b, params.alpha),
                })
        for row, p_holm in zip(family, holm([row["p"] for row in family]), strict=True):
            tests.append(PairedTest(**row, p_holm=p_holm, significant=p_holm < params.alpha))
    return tests


def equivalence_tests(episodes: pd.DataFrame, params: AnalyzeParams) -> list[EquivalenceTest]:
    """TOST on score (margin in points) for the comparisons where the paper claims equal quality."""
    family: list[dict] = []
    for comparison in (c for c in COMPARISONS if c.id in EQUIVALENCE_COMPARISONS):
        for difficulty in DIFFICULTIES:
            pairs = paired(episodes, comparison, difficulty)
            if len(pairs) < 2:
                continue
            a, b = pairs["score_pct_a"].tolist(), pairs["score_pct_b"].tolist()
            difference, _ = paired_bootstrap(
                a, b, resamples=params.bootstrap_resamples, seed=params.seed, key=f"tost/{comparison.id}/{difficulty}", alpha=2 * params.alpha
            )
            family.append({
                "comparison": comparison.id, "difficulty": difficulty, "cell_a": f"{comparison.a}.{difficulty}",
                "cell_b": f"{comparison.b}.{difficulty}", "n_pairs": len(pairs), "margin_points": params.equivalence_margin_points,
                "difference": difference, "p": tost_paired(a, b, params.equivalence_margin_points),
                "power": tost_power(a, b, params.equivalence_margin_points, params.alpha),
            })
    return [
        EquivalenceTest(**row, p_holm=p_holm, equivalent=p_holm < params.alpha)
        for row, p_holm in zip(family, holm([row["p"] for row in family]), strict=True)
    ]
