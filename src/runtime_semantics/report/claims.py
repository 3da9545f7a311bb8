"""The claims check: each check of paper/reference.yaml, at each difficulty, judged by its rule.

Our value comes from the analysis record (never recomputed here); the rule and threshold
from the reference file; alpha and the minimum number of episodes from the analysis
settings. A check whose cells have no results is 'inconclusive', saying which data is missing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..analyze.record import AnalysisRecord, CellSummary, Estimate
from ..evaluate.results import DIFFICULTIES
from .reference import Check, Reference, Rule

Verdict = Literal["replicated", "not replicated", "inconclusive"]
# shares are stored as fractions; checks state them in % (a share) or points (a difference of shares)
_PERCENT_METRICS = {"missing_variable", "any_error", "solved"}


class Evidence(BaseModel):
    """Our estimate for one check at one difficulty, and what its rule needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    estimate: Estimate
    episodes: int
    interval: str
    tost_p_holm: float | None = None
    wilcoxon_p_holm: float | None = None
    at_floor: bool = Field(False, description="equivalence: both cells scored 0 in every episode")


class ClaimRow(BaseModel):
    """One row of the claims table."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: str
    check: str
    statement: str
    difficulty: str
    unit: str
    paper_value: float | None
    paper_note: str | None
    ours: Evidence | None
    verdict: Verdict
    reason: str


def _scaled(estimate: Estimate, factor: float) -> Estimate:
    return Estimate(value=factor * estimate.value, low=factor * estimate.low, high=factor * estimate.high)


def _cell(record: AnalysisRecord, cell_id: str) -> CellSummary | None:
    return next((c for c in record.cells if c.cell == cell_id), None)


def evidence_for(check: Check, difficulty: str, record: AnalysisRecord) -> Evidence | str:
    """Our evidence, or a sentence saying which results are missing."""
    level = f"{100 * (1 - record.settings.alpha):g}%"
    factor = 100.0 if check.metric in _PERCENT_METRICS else 1.0
    if check.statistic == "share":
        cell_id = f"{check.condition}.{difficulty}"
        cell = _cell(record, cell_id)
        if cell is None:
            return f"no results for {cell_id}"
        share = getattr(cell, f"{check.metric}_rate")
        return Evidence(estimate=_scaled(share, 100.0), episodes=cell.episodes, interval=f"{level} Wilson")
    tests = {(t.metric, t.comparison, t.difficulty): t for t in record.paired_tests}
    test = tests.get((check.metric, check.comparison, difficulty))
    if test is None:
        return f"no paired results for {check.comparison} on {difficulty} tasks"
    if check.statistic == "ratio":
        if test.ratio is None:
            return f"no ratio for {check.metric} ({check.comparison}, {difficulty}): a mean is zero"
        return Evidence(estimate=test.ratio, episodes=test.n_pairs, interval=f"{level} paired bootstrap")
    if check.statistic == "difference":
        return Evidence(estimate=_scaled(test.difference, factor), episodes=test.n_pairs, interval=f"{level} paired bootstrap")
    equivalence = next((e for e in record.equivalence_tests if e.comparison == check.comparison and e.difficulty == difficulty), None)
    if equivalence is None:
        return f"no equivalence test for {check.comparison} on {difficulty} tasks"
    cells = [_cell(record, equivalence.cell_a), _cell(record, equivalence.cell_b)]
    return Evidence(
        estimate=equivalence.difference, episodes=equivalence.n_pairs, interval=f"{100 * (1 - 2 * record.settings.alpha):g}% paired bootstrap",
        tost_p_holm=equivalence.p_holm, wilcoxon_p_holm=test.p_holm,
        at_floor=all(c is not None and c.score_pct.high == 0 for c in cells),
    )


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def judge(rule: Rule, evidence: Evidence, *, alpha: float, min_episodes: int, margin: float) -> tuple[Verdict, str]:
    """Apply a rule to our evidence (see Rule for the definitions)."""
    if evidence.episodes < min_episodes:
        return "inconclusive", f"{evidence.episodes} episodes per cell, fewer than the {min_episodes} a verdict needs"
    low, high = evidence.estimate.low, evidence.estimate.high
    if rule.kind == "equivalence":
        assert evidence.tost_p_holm is not None and evidence.wilcoxon_p_holm is not None
        if evidence.at_floor:  # equal at zero shows that neither model can do the task, not that they do it equally well
            return "inconclusive", "both conditions scored 0 in every episode: equal at the floor, which is no evidence of equal quality"
        if evidence.tost_p_holm < alpha:
            return "replicated", f"equivalent within ±{margin:g} points (TOST {_p(evidence.tost_p_holm)}, Holm)"
        if evidence.wilcoxon_p_holm < alpha:
            return "not replicated", f"the scores differ (Wilcoxon {_p(evidence.wilcoxon_p_holm)}, Holm)"
        return "inconclusive", (f"neither equivalence within ±{margin:g} points (TOST {_p(evidence.tost_p_holm)}) "
                                f"nor a difference (Wilcoxon {_p(evidence.wilcoxon_p_holm)}) is shown, Holm")
    threshold = rule.threshold
    assert threshold is not None
    at_least = rule.kind == "at_least"
    if (low >= threshold) if at_least else (high <= threshold):
        return "replicated", f"the whole interval is {'≥' if at_least else '≤'} {threshold:g}"
    if (high < threshold) if at_least else (low > threshold):
        return "not replicated", f"the whole interval is {'<' if at_least else '>'} {threshold:g}"
    return "inconclusive", f"the interval includes {threshold:g}"


def check_claims(reference: Reference, record: AnalysisRecord) -> list[ClaimRow]:
    """Every check at every difficulty, in the reference file's order."""
    settings = record.settings
    rows = []
    for claim in reference.claims:
        for check in claim.checks:
            for difficulty in DIFFICULTIES:
                paper = check.paper.get(difficulty)
                evidence = evidence_for(check, difficulty, record)
                if isinstance(evidence, str):
                    ours, (verdict, reason) = None, ("inconclusive", evidence)
                else:
                    ours = evidence
                    verdict, reason = judge(check.rule, evidence, alpha=settings.alpha, min_episodes=settings.min_paired_episodes,
                                            margin=settings.equivalence_margin_points)
                rows.append(ClaimRow(
                    claim=claim.number, check=check.id, statement=check.statement, difficulty=difficulty, unit=check.unit,
                    paper_value=paper.value if paper else None, paper_note=paper.note if paper else None,
                    ours=ours, verdict=verdict, reason=reason,
                ))
    return rows
