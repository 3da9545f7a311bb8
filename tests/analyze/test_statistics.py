"""The statistics give the numbers an independent implementation (scipy, or the textbook formula) gives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from runtime_semantics.analyze.statistics import (
    bootstrap_mean, holm, paired_bootstrap, paired_power, tost_paired, tost_power, wilcoxon, wilson_interval,
)

RNG = np.random.default_rng(12345)
A = RNG.normal(70, 15, 40).round(1)
B = (A + RNG.normal(4, 6, 40)).round(1)


def test_bootstrap_interval_agrees_with_scipy_percentile_bootstrap():
    ours = bootstrap_mean(A, resamples=5000, seed=0, key="score/x", alpha=0.05)
    theirs = stats.bootstrap((A,), np.mean, n_resamples=5000, method="percentile", confidence_level=0.95, rng=1).confidence_interval
    assert ours.value == pytest.approx(A.mean())
    # two independent Monte Carlo runs: equal up to resampling noise (well under a tenth of the width)
    width = theirs.high - theirs.low
    assert ours.low == pytest.approx(theirs.low, abs=0.1 * width)
    assert ours.high == pytest.approx(theirs.high, abs=0.1 * width)


def test_bootstrap_is_seeded_per_estimate():
    first = bootstrap_mean(A, resamples=1000, seed=0, key="score/a", alpha=0.05)
    assert bootstrap_mean(A, resamples=1000, seed=0, key="score/a", alpha=0.05) == first
    assert bootstrap_mean(A, resamples=1000, seed=0, key="score/b", alpha=0.05) != first
    assert bootstrap_mean(A, resamples=1000, seed=1, key="score/a", alpha=0.05) != first


def test_paired_bootstrap_resamples_pairs():
    difference, ratio = paired_bootstrap(B, A, resamples=5000, seed=0, key="k", alpha=0.05)
    assert difference.value == pytest.approx((B - A).mean())
    assert ratio is not None and ratio.value == pytest.approx(B.mean() / A.mean())
    # resampling pairs: the interval of the mean difference is the bootstrap of the differences
    theirs = stats.bootstrap((B - A,), np.mean, n_resamples=5000, method="percentile", rng=2).confidence_interval
    width = theirs.high - theirs.low
    assert difference.low == pytest.approx(theirs.low, abs=0.1 * width)
    assert difference.high == pytest.approx(theirs.high, abs=0.1 * width)
    assert ratio.low < ratio.value < ratio.high


def test_no_ratio_when_the_reference_mean_is_zero():
    _, ratio = paired_bootstrap([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], resamples=200, seed=0, key="k", alpha=0.05)
    assert ratio is None


@pytest.mark.parametrize(("successes", "n"), [(0, 4), (4, 4), (1, 10), (80, 100), (37, 61)])
def test_wilson_interval_matches_scipy(successes, n):
    ours = wilson_interval(successes, n, alpha=0.05)
    theirs = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours.value == successes / n
    assert ours.low == pytest.approx(theirs.low, abs=1e-12)
    assert ours.high == pytest.approx(theirs.high, abs=1e-12)


@pytest.mark.parametrize("n", [1, 7, 20, 40, 100, 333])
def test_a_wilson_interval_always_contains_its_share(n):
    # 40 of 40 gave a high bound of 0.9999999999999999 < 1.0, and a figure's error bar went negative
    for successes in range(n + 1):
        estimate = wilson_interval(successes, n, alpha=0.05)
        assert estimate.low <= estimate.value <= estimate.high


def test_wilcoxon_matches_scipy_and_the_rank_biserial_formula():
    ours = wilcoxon(B, A)
    theirs = stats.wilcoxon(B, A, correction=True)
    assert ours.w == pytest.approx(theirs.statistic)
    assert ours.p == pytest.approx(theirs.pvalue)
    d = (B - A)[B != A]
    ranks = stats.rankdata(np.abs(d))
    assert ours.rank_biserial == pytest.approx((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())
    assert ours.rank_biserial > 0  # B is higher
    assert wilcoxon(A, B).rank_biserial == pytest.approx(-ours.rank_biserial)


def test_wilcoxon_without_any_difference_is_no_evidence():
    result = wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (result.p, result.rank_biserial) == (1.0, 0.0)


def test_tost_is_the_larger_p_of_two_one_sided_paired_t_tests():
    margin = 5.0
    lower = stats.ttest_rel(B + margin, A, alternative="greater").pvalue
    upper = stats.ttest_rel(B - margin, A, alternative="less").pvalue
    assert tost_paired(B, A, margin) == pytest.approx(max(lower, upper))
    assert tost_paired(A, A + 1.0, margin) == 0.0  # constant difference inside the margin: known exactly
    assert tost_paired(A, A + 9.0, margin) == 1.0


def test_holm_adjusts_step_down():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 times 4, 3, 2, 1, then running maximum
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert holm([]) == []


def test_paired_power_matches_the_noncentral_t_and_grows_with_n():
    rng = np.random.default_rng(5)
    a = rng.normal(10, 3, 30)
    b = a - rng.normal(1.0, 2.0, 30)
    differences = a - b
    effect = differences.mean() / differences.std(ddof=1)
    critical = stats.t.ppf(0.975, 29)
    noncentrality = effect * np.sqrt(30)
    expected = stats.nct.sf(critical, 29, noncentrality) + stats.nct.cdf(-critical, 29, noncentrality)
    assert paired_power(a, b, 0.05) == pytest.approx(expected, abs=1e-6)
    assert paired_power(np.tile(a, 3), np.tile(b, 3), 0.05) > paired_power(a, b, 0.05)
    assert paired_power([1, 2], [1, 2], 0.05) is None and paired_power([3, 4], [1, 2], 0.05) == 1.0


def test_tost_power_by_simulation_and_at_the_edges():
    rng = np.random.default_rng(9)
    n, margin, true_difference, spread = 30, 10.0, 2.0, 20.0
    samples = rng.normal(true_difference, spread, (20000, n))  # TOST by hand on each: both one-sided t-tests reject
    error = samples.std(axis=1, ddof=1) / np.sqrt(n)
    critical = stats.t.ppf(0.95, n - 1)
    simulated = np.mean(((samples.mean(axis=1) + margin) / error > critical) & ((samples.mean(axis=1) - margin) / error < -critical))
    # plug in the true values: the formula's answer should match how often TOST succeeds
    planned = tost_power(true_difference + spread * stats.norm.ppf(np.linspace(0.5 / n, 1 - 0.5 / n, n)), np.zeros(n), margin, 0.05)
    assert planned == pytest.approx(simulated, abs=0.05)
    assert tost_power([0, 20, -20, 40, -40, 0], [0] * 6, 10, 0.05) == 0.0  # far too noisy for this margin
    assert tost_power([1, 1, 1], [0, 0, 0], 10, 0.05) == 1.0 and tost_power([11, 11], [0, 0], 10, 0.05) == 0.0
