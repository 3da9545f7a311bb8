"""The claims check: each check of paper/reference.yaml, at each difficulty, judged by its rule.

Our value comes from the analysis record (never recomputed here); the rule and threshold
from the reference file; alpha and the minimum number of episodes from the analysis
settings. A check whose cells have no results is 'inconclusive', saying which data is missing.

Before any rule, the precondition (reference file, `preconditions`): in every cell the check
reads, the first block ran in at least the stated share of episodes. Otherwise the check is
'not testable' with the cell and its rate: a comparison with a cell whose model never got its
first block to run measures the prompt or the format, not the runtime, and must not read as
replicated or not replicated. Beside each ratio and difference check, its null reference:
the same statistic with the base model in place of the mismatched model (a model trained on
neither runtime), so a reader sees what the statistic gives when nothing was learned.

With several training seeds each check is judged per seed (that seed's cells, paired by task)
and pooled (pairs are (seed, task)); the reference file's `seeds` rule combines them: a verdict
of replicated or not replicated needs every seed and the pooled test to agree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..analyze.conditions import compared_conditions, condition_label, null_reference
from ..analyze.record import AnalysisRecord, CellSummary, Estimate
from ..evaluate.results import DIFFICULTIES
from .reference import Check, Reference, Rule, SeedsRule

Verdict = Literal["replicated", "not replicated", "inconclusive", "not testable"]
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
    rests_on: str = Field(description="the precondition this row rests on, with the cells it reads")
    null_reference: float | None = Field(None, description="the statistic with the base model in place of the mismatched model")
    null_label: str | None = Field(None, description="the two conditions of the null reference, 'A / B' or 'A − B'")
    seed_verdicts: dict[str, Verdict] = Field(default_factory=dict, description="training seed -> this check's verdict on that seed alone")
    seeds_holding: int = Field(0, description="seeds whose own verdict is replicated")
    pooled_verdict: Verdict | None = Field(None, description="the verdict of the pooled test (every seed's episodes), before the seeds rule")


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


def _cell_mean(cell: CellSummary, metric: str) -> float:
    """A cell's mean of a tested metric, in the unit its checks use (shares in %)."""
    return {
        "total_tokens": cell.total_tokens, "steps": cell.steps, "score_pct": cell.score_pct.value,
        "any_error": 100 * cell.any_error_rate.value, "state_reuse": cell.state_reuse,
    }[metric]


def null_value(check: Check, difficulty: str, record: AnalysisRecord) -> tuple[float | None, str | None]:
    """The check's statistic with the base model in place of the mismatched side, from the cell means (no interval)."""
    if check.statistic not in ("ratio", "difference") or check.comparison is None:
        return None, None
    pair = null_reference(check.comparison)
    if pair is None:
        return None, None
    cells = [_cell(record, f"{condition}.{difficulty}") for condition in pair]
    if any(c is None for c in cells):
        return None, None
    a, b = (_cell_mean(c, check.metric) for c in cells)  # type: ignore[arg-type]
    labels = [condition_label(condition) for condition in pair]
    if check.statistic == "ratio":
        return (a / b if b else None), f"{labels[0]} / {labels[1]}"
    return a - b, f"{labels[0]} − {labels[1]}"


def untestable(cells: list[str], difficulty: str, record: AnalysisRecord, threshold: float) -> str | None:
    """Why the precondition fails for these conditions, or None when every cell meets it (or has no results yet)."""
    failing = []
    for condition in cells:
        cell = _cell(record, f"{condition}.{difficulty}")
        if cell is not None and cell.first_block_rate.value < threshold:
            failing.append(f"{condition_label(condition)} {100 * cell.first_block_rate.value:.0f}%")
    if not failing:
        return None
    return (f"the first block ran in fewer than {100 * threshold:.0f}% of the episodes of {'; '.join(failing)}: "
            "that cell measures the prompt or the format, not the runtime")


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
    threshold = reference.preconditions.first_block_rate
    rows = []
    for claim in reference.claims:
        for check in claim.checks:
            conditions = compared_conditions(check.comparison, check.condition)
            rests_on = (f"first block ran in ≥ {100 * threshold:.0f}% of episodes of "
                        + " and ".join(condition_label(c) for c in conditions))
            for difficulty in DIFFICULTIES:
                paper = check.paper.get(difficulty)
                evidence = evidence_for(check, difficulty, record)
                blocked = untestable(conditions, difficulty, record, threshold)
                if isinstance(evidence, str):
                    ours, (verdict, reason) = None, ("inconclusive", evidence)
                elif blocked is not None:
                    ours, verdict, reason = evidence, "not testable", blocked
                else:
                    ours = evidence
                    verdict, reason = judge(check.rule, evidence, alpha=settings.alpha, min_episodes=settings.min_paired_episodes,
                                            margin=settings.equivalence_margin_points)
                null, null_label = null_value(check, difficulty, record)
                rows.append(ClaimRow(
                    claim=claim.number, check=check.id, statement=check.statement, difficulty=difficulty, unit=check.unit,
                    paper_value=paper.value if paper else None, paper_note=paper.note if paper else None,
                    ours=ours, verdict=verdict, reason=reason, rests_on=rests_on, null_reference=null, null_label=null_label,
                ))
    return rows


def _seed_view(record: AnalysisRecord, index: int) -> AnalysisRecord:
    seed = record.seeds[index]
    return record.model_copy(update={"cells": seed.cells, "paired_tests": seed.paired_tests,
                                     "equivalence_tests": seed.equivalence_tests, "precondition": seed.precondition})


def combine_seeds(pooled: ClaimRow, per_seed: dict[str, ClaimRow], rule: SeedsRule) -> ClaimRow:
    """One row's verdict across seeds by the reference file's rule (every_seed_and_pooled)."""
    assert rule.rule == "every_seed_and_pooled"
    verdicts = {seed: row.verdict for seed, row in per_seed.items()}
    holding = sum(v == "replicated" for v in verdicts.values())
    n = len(verdicts)
    blocked = next(((seed, row) for seed, row in per_seed.items() if row.verdict == "not testable"), None)
    if blocked is not None:
        verdict, reason = "not testable", f"seed {blocked[0]}: {blocked[1].reason}"
    elif pooled.ours is None:
        verdict, reason = pooled.verdict, pooled.reason
    elif pooled.verdict in ("replicated", "not replicated") and all(v == pooled.verdict for v in verdicts.values()):
        verdict, reason = pooled.verdict, f"{'holds' if pooled.verdict == 'replicated' else 'fails'} in all {n} seeds and pooled: {pooled.reason}"
    else:
        verdict, reason = "inconclusive", f"holds in {holding} of {n} seeds; pooled: {pooled.verdict} ({pooled.reason})"
    return pooled.model_copy(update={"verdict": verdict, "reason": reason, "seed_verdicts": verdicts, "seeds_holding": holding,
                                     "pooled_verdict": pooled.verdict})


def check_claims_across_seeds(reference: Reference, record: AnalysisRecord) -> list[ClaimRow]:
    """Every check at every difficulty, judged per training seed and pooled, combined by the seeds rule."""
    pooled = check_claims(reference, record)
    labels = [str(s.seed) for s in record.seeds]
    if len(record.seeds) <= 1:
        return [row.model_copy(update={"seed_verdicts": dict.fromkeys(labels, row.verdict), "seeds_holding": int(row.verdict == "replicated"),
                                       "pooled_verdict": row.verdict}) for row in pooled]
    per_seed = [check_claims(reference, _seed_view(record, i)) for i in range(len(record.seeds))]
    return [combine_seeds(row, {label: rows[i] for label, rows in zip(labels, per_seed, strict=True)}, reference.seeds)
            for i, row in enumerate(pooled)]
