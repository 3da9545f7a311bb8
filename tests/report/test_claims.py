"""The shipped claims and rules (paper/reference.yaml) judge constructed results as they should.

Episode tables are built from chosen numbers and go through the real summaries, paired tests
and claims check: a clear effect in the paper's direction is 'replicated', a null effect is
'not replicated', and the same clear effect on too few episodes is 'inconclusive'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import REPO_ROOT
from runtime_semantics.analyze.comparisons import equivalence_tests, paired_tests
from runtime_semantics.analyze.record import AnalysisRecord, Estimate
from runtime_semantics.analyze.settings import AnalyzeParams
from runtime_semantics.analyze.summary import summarize_cells
from runtime_semantics.errors import UserError
from runtime_semantics.report.claims import Evidence, check_claims, judge
from runtime_semantics.report.reference import Rule, load_reference

PARAMS = AnalyzeParams(bootstrap_resamples=2000, seed=0, alpha=0.05, equivalence_margin_points=10, min_paired_episodes=20)
REFERENCE = load_reference(REPO_ROOT / "paper" / "reference.yaml")
TRAINED = ("trained-persistent.persistent", "trained-persistent.stateless", "trained-stateless.persistent", "trained-stateless.stateless")
BASE = ("base.persistent", "base.stateless")


def episodes(n: int, spec: dict[str, dict], seed: int = 0) -> pd.DataFrame:
    """n episodes per trained condition and difficulty; spec gives per condition the mean score,
    tokens, reuse and the share of episodes with a missing-variable error (which also fail a turn), and
    optionally the share whose first block ran (`first_block`, default 1). Base conditions are
    included when the spec has them."""
    rng = np.random.default_rng(seed)
    base_score = rng.uniform(40, 90, n)  # the instance's difficulty, shared by every condition
    base_tokens = rng.uniform(8000, 12000, n)
    rows = []
    for difficulty in ("easy", "hard"):
        for condition in (c for c in BASE + TRAINED if c in spec):
            model, runtime = condition.split(".")
            c = spec[condition]
            missing = np.arange(n) < round(c["missing"] * n)
            ran = np.arange(n) >= round((1 - c.get("first_block", 1.0)) * n)
            for i in range(n):
                rows.append({
                    "cell": f"{condition}.{difficulty}", "condition": condition, "model": model, "runtime": runtime,
                    "difficulty": difficulty, "episode_id": f"task-{i:03d}", "policy": model,
                    "score_pct": float(np.clip(base_score[i] + c["score"] + rng.normal(0, 2), 0, 100)),
                    "solved": False, "steps": 5, "total_tokens": float(base_tokens[i] * c["tokens"] * rng.uniform(0.95, 1.05)),
                    "duration_s": 1.0, "missing_variable": bool(missing[i]), "any_error": bool(missing[i]),
                    "failing_turns": int(missing[i]), "recovery_loops": int(missing[i]), "state_reuse": c["reuse"] + rng.uniform(0, 0.1),
                    "errors_by_type": {"NameError": 1} if missing[i] else {}, "infrastructure_failure": False,
                    "first_block_ran": bool(ran[i]), "prompt_style": "blind",
                    "first_failure": "no_code_block" if not ran[i] else "missing_variable" if missing[i] else "finished_below_optimal",
                })
    return pd.DataFrame(rows)


def _rows(frame: pd.DataFrame) -> list:
    record = AnalysisRecord(
        profile="smoke", settings=PARAMS, evaluation_dir="e", results_sha256="0", episodes=len(frame), policies={}, prompt_styles=["blind"],
        cells=summarize_cells(frame, PARAMS), paired_tests=paired_tests(frame, PARAMS),
        equivalence_tests=equivalence_tests(frame, PARAMS), figures=[], tables=[], training_runtimes=[],
    )
    return check_claims(REFERENCE, record)


def verdicts(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(row.check, row.difficulty): row.verdict for row in _rows(frame)}


PAPER_LIKE = {  # the paper's findings: same quality, ~80% missing variables when mismatched, ~3x tokens
    "trained-persistent.persistent": {"score": 0, "tokens": 1.0, "reuse": 1.5, "missing": 0.0},
    "trained-persistent.stateless": {"score": -2, "tokens": 3.5, "reuse": 0.0, "missing": 0.85},
    "trained-stateless.persistent": {"score": 0, "tokens": 3.0, "reuse": 0.0, "missing": 0.0},
    "trained-stateless.stateless": {"score": 1, "tokens": 3.5, "reuse": 0.0, "missing": 0.0},
}
NULL = {  # nothing the paper claims: aligned quality differs by 30 points, and no other effect
    "trained-persistent.persistent": {"score": 0, "tokens": 1.0, "reuse": 0.0, "missing": 0.0},
    "trained-persistent.stateless": {"score": 0, "tokens": 1.0, "reuse": 0.0, "missing": 0.0},
    "trained-stateless.persistent": {"score": 0, "tokens": 1.0, "reuse": 0.0, "missing": 0.0},
    "trained-stateless.stateless": {"score": -30, "tokens": 1.0, "reuse": 0.0, "missing": 0.5},
}
CHECKS = ["1-quality", "2-mismatch", "2-aligned", "3-tokens", "4-efficiency", "4-stability", "4-control-flow"]


def test_a_clear_effect_is_replicated():
    result = verdicts(episodes(40, PAPER_LIKE))
    assert {check: result[(check, "hard")] for check in CHECKS} == dict.fromkeys(CHECKS, "replicated")
    assert result[("3-tokens", "easy")] == "replicated"


def test_a_null_effect_is_not_replicated():
    result = verdicts(episodes(40, NULL))
    expected = dict.fromkeys(CHECKS, "not replicated")
    expected["2-aligned"] = "replicated"  # no missing-variable errors when aligned is what the paper says too
    assert {check: result[(check, "hard")] for check in CHECKS} == expected


def test_too_few_episodes_are_inconclusive_whatever_the_effect():
    result = verdicts(episodes(8, PAPER_LIKE))
    assert set(result.values()) == {"inconclusive"}


def test_an_interval_across_the_threshold_is_inconclusive():
    rule = Rule(kind="at_least", threshold=2.0, why="test")
    evidence = Evidence(estimate=Estimate(value=2.1, low=1.6, high=2.7), episodes=100, interval="95%")
    assert judge(rule, evidence, alpha=0.05, min_episodes=20, margin=10)[0] == "inconclusive"
    below = Rule(kind="at_most", threshold=-0.5, why="test")
    assert judge(below, evidence.model_copy(update={"estimate": Estimate(value=-1, low=-1.2, high=-0.8)}),
                 alpha=0.05, min_episodes=20, margin=10)[0] == "replicated"


def test_missing_cells_make_a_check_inconclusive_and_say_why():
    frame = episodes(40, PAPER_LIKE)
    rows = {(r.check, r.difficulty): r for r in check_claims(REFERENCE, AnalysisRecord(
        profile="smoke", settings=PARAMS, evaluation_dir="e", results_sha256="0", episodes=0, policies={}, prompt_styles=["blind"],
        cells=summarize_cells(frame[frame["condition"] != "trained-persistent.stateless"], PARAMS),
        paired_tests=[], equivalence_tests=[], figures=[], tables=[], training_runtimes=[],
    ))}
    assert rows[("2-mismatch", "easy")].verdict == "inconclusive"
    assert rows[("2-mismatch", "easy")].reason == "no results for trained-persistent.stateless.easy"
    assert rows[("3-tokens", "hard")].reason == "no paired results for amnesia_tax on hard tasks"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["claims"][0]["checks"][0].update(comparison="nope"), "claims.0.checks.0: Value error, comparison: expected one of aligned"),
    (lambda r: r["claims"][2]["checks"][0]["rule"].pop("threshold"), "claims.2.checks.0.rule: Value error, threshold: required"),
    (lambda r: r["reported"]["hard"].update({"tuned.persistent": {}}), "unknown condition 'tuned.persistent'"),
])
def test_a_bad_reference_file_names_file_and_key(tmp_path, edit, message):
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "paper" / "reference.yaml").read_text())
    edit(raw)
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError) as error:
        load_reference(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_two_models_that_both_score_zero_are_not_called_equivalent():
    """Scores of 0 everywhere pass TOST trivially (no difference, no spread); that is a floor, not a finding."""
    floor = {condition: {**spec, "score": -100} for condition, spec in PAPER_LIKE.items()}
    rows = {(r.check, r.difficulty): r for r in _rows(episodes(40, floor))}
    assert rows[("1-quality", "hard")].verdict == rows[("1-quality", "easy")].verdict == "inconclusive"
    assert "floor" in rows[("1-quality", "hard")].reason
    assert verdicts(episodes(40, PAPER_LIKE))[("1-quality", "hard")] == "replicated"  # one scoring model is enough to judge


def test_a_cell_whose_first_blocks_did_not_run_makes_every_check_reading_it_not_testable():
    """The paper's effects in every number, but the persistent-trained model's first block ran in only
    5% of its stateless episodes: nothing that compares that cell may be called replicated or not."""
    broken = {**PAPER_LIKE, "trained-persistent.stateless": {**PAPER_LIKE["trained-persistent.stateless"], "first_block": 0.05}}
    rows = {(r.check, r.difficulty): r for r in _rows(episodes(40, broken))}
    reads_it = ["1-quality-persistent-trained", "2-mismatch", "4-efficiency", "4-stability"]
    for check in reads_it:
        for difficulty in ("easy", "hard"):
            row = rows[(check, difficulty)]
            assert row.verdict == "not testable", (check, difficulty, row.verdict)
            assert "persistent-trained → stateless 5%" in row.reason and row.ours is not None
    assert rows[("2-mismatch", "hard")].rests_on == "first block ran in ≥ 90% of episodes of persistent-trained → stateless"
    judged = {check: rows[(check, "hard")].verdict for check in ("1-quality", "2-aligned", "3-tokens", "4-control-flow")}
    assert judged == dict.fromkeys(judged, "replicated")  # checks that do not read the broken cell are still judged
    just_enough = {**PAPER_LIKE, "trained-persistent.stateless": {**PAPER_LIKE["trained-persistent.stateless"], "first_block": 0.9}}
    assert verdicts(episodes(40, just_enough))[("2-mismatch", "hard")] == "replicated"  # the threshold itself passes


def test_ratio_and_difference_checks_carry_the_base_model_as_their_null_reference():
    spec = {**PAPER_LIKE, "base.persistent": {"score": -60, "tokens": 2.7, "reuse": 0.2, "missing": 0.0},
            "base.stateless": {"score": -60, "tokens": 3.8, "reuse": 0.0, "missing": 0.0}}
    frame = episodes(40, spec)
    rows = {(r.check, r.difficulty): r for r in _rows(frame)}
    means = frame.groupby("cell")["total_tokens"].mean()
    tax = rows[("3-tokens", "hard")]
    assert tax.null_reference == pytest.approx(means["base.persistent.hard"] / means["trained-persistent.persistent.hard"])
    assert tax.null_label == "base → persistent / persistent-trained → persistent" and tax.null_reference > 2.0
    assert rows[("4-efficiency", "easy")].null_reference == pytest.approx(
        means["base.stateless.easy"] / means["trained-persistent.persistent.easy"])
    assert rows[("4-control-flow", "hard")].null_label == "base → persistent − persistent-trained → persistent"
    assert rows[("1-quality", "hard")].null_reference is None and rows[("2-mismatch", "hard")].null_reference is None
    without_base = {(r.check, r.difficulty): r for r in _rows(episodes(40, PAPER_LIKE))}
    assert without_base[("3-tokens", "hard")].null_reference is None


def test_claim_one_is_checked_on_the_mismatched_cells_too():
    paper_like = verdicts(episodes(40, PAPER_LIKE))
    assert paper_like[("1-quality-persistent-trained", "hard")] == paper_like[("1-quality-stateless-trained", "hard")] == "replicated"
    null = verdicts(episodes(40, NULL))  # the stateless-trained model scores 30 points lower in its own runtime than in the other
    assert null[("1-quality-stateless-trained", "hard")] == "not replicated"


def _seeded_rows(frames: list[pd.DataFrame]) -> list:
    """The claims across seeds for one frame per training seed, through the real per-seed and pooled analysis."""
    from runtime_semantics.analyze.episodes import pooled_episodes
    from runtime_semantics.analyze.record import SeedAnalysis
    from runtime_semantics.report.claims import check_claims_across_seeds

    groups = [(3407 + i, frame) for i, frame in enumerate(frames)]
    seeds = [SeedAnalysis(seed=s, cells=summarize_cells(f, PARAMS), paired_tests=paired_tests(f, PARAMS),
                          equivalence_tests=equivalence_tests(f, PARAMS)) for s, f in groups]
    pooled, paired = pooled_episodes(groups, shared_once=True), pooled_episodes(groups, shared_once=False)
    record = AnalysisRecord(
        profile="smoke", settings=PARAMS, evaluation_dir="e", results_sha256="0", episodes=len(pooled), policies={}, prompt_styles=["blind"],
        cells=summarize_cells(pooled, PARAMS), paired_tests=paired_tests(paired, PARAMS), equivalence_tests=equivalence_tests(paired, PARAMS),
        figures=[], tables=[], training_runtimes=[], seeds=seeds,
    )
    return check_claims_across_seeds(REFERENCE, record)


def test_a_verdict_across_seeds_needs_every_seed_and_the_pooled_test():
    """The reference's `seeds` rule: replicated in all seeds and pooled -> replicated; one seed that fails -> inconclusive,
    saying how many seeds hold; a seed whose cell fails the precondition -> not testable."""
    rows = {(r.check, r.difficulty): r for r in _seeded_rows([episodes(40, PAPER_LIKE, seed=s) for s in (1, 2, 3)])}
    mismatch = rows[("2-mismatch", "hard")]
    assert mismatch.verdict == "replicated" and mismatch.seeds_holding == 3 and mismatch.pooled_verdict == "replicated"
    assert mismatch.seed_verdicts == {"3407": "replicated", "3408": "replicated", "3409": "replicated"}
    assert mismatch.reason.startswith("holds in all 3 seeds and pooled") and mismatch.ours.episodes == 120

    one_null = {**PAPER_LIKE, "trained-persistent.stateless": {**PAPER_LIKE["trained-persistent.stateless"], "missing": 0.0}}
    rows = {(r.check, r.difficulty): r for r in _seeded_rows([episodes(40, PAPER_LIKE, seed=1), episodes(40, PAPER_LIKE, seed=2),
                                                             episodes(40, one_null, seed=3)])}
    mismatch = rows[("2-mismatch", "hard")]
    assert mismatch.seed_verdicts["3409"] == "not replicated" and mismatch.seeds_holding == 2
    assert mismatch.verdict == "inconclusive" and mismatch.reason.startswith("holds in 2 of 3 seeds; pooled: ")

    blocked = {**PAPER_LIKE, "trained-persistent.stateless": {**PAPER_LIKE["trained-persistent.stateless"], "first_block": 0.5}}
    rows = {(r.check, r.difficulty): r for r in _seeded_rows([episodes(40, PAPER_LIKE, seed=1), episodes(40, blocked, seed=2)])}
    mismatch = rows[("2-mismatch", "hard")]
    assert mismatch.verdict == "not testable" and mismatch.reason.startswith("seed 3408: the first block ran in fewer than 90%")
    assert rows[("2-aligned", "hard")].verdict == "replicated"  # it reads no cell of the blocked model
