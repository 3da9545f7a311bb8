"""The statistics the paper's comparisons need, each small enough to check against scipy.

Bootstrap intervals are percentile intervals over `resamples` resamples; every bootstrap
draws from its own generator seeded by (seed, a key naming what it estimates), so adding a
cell or a test never changes another interval. Paired bootstraps resample episode pairs,
keeping the pairing. Wilcoxon and TOST come from pingouin; the degenerate cases it returns
NaN for (every paired difference zero or identical) get their exact answer here instead.
Power is computed for the effect sizes seen (observed mean and spread of the paired
differences), so a reader can tell a negative result from a test too small to see one.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pingouin as pg
from scipy import stats
from pydantic import BaseModel, ConfigDict

from .record import Estimate


class WilcoxonResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    w: float
    p: float
    rank_biserial: float


def generator(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _with_percentile_interval(value: float, samples: np.ndarray, alpha: float) -> Estimate:
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return Estimate(value=float(value), low=float(low), high=float(high))


def bootstrap_mean(values: Sequence[float], *, resamples: int, seed: int, key: str, alpha: float) -> Estimate:
    """Mean with a percentile bootstrap interval at level 1 - alpha."""
    data = np.asarray(values, dtype=float)
    indices = generator(seed, key).integers(0, len(data), size=(resamples, len(data)))
    return _with_percentile_interval(data.mean(), data[indices].mean(axis=1), alpha)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int, seed: int, key: str, alpha: float
) -> tuple[Estimate, Estimate | None]:
    """Mean difference a - b and ratio of means a / b, resampling pairs; no ratio when b's mean is 0."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y):
        raise ValueError(f"paired samples differ in length: {len(x)} vs {len(y)}")
    indices = generator(seed, key).integers(0, len(x), size=(resamples, len(x)))
    mean_x, mean_y = x[indices].mean(axis=1), y[indices].mean(axis=1)
    difference = _with_percentile_interval(x.mean() - y.mean(), mean_x - mean_y, alpha)
    if (mean_y == 0).any():
        return difference, None
    return difference, _with_percentile_interval(x.mean() / y.mean(), mean_x / mean_y, alpha)


def wilson_interval(successes: int, n: int, alpha: float) -> Estimate:
    """A share with its Wilson score interval (sensible at 0 and n, unlike the normal approximation)."""
    if n <= 0:
        raise ValueError("a share needs at least one episode")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # at 0 and n the bounds equal the share in exact arithmetic; rounding must not put the share outside them
    return Estimate(value=share, low=float(min(share, max(0.0, centre - half))), high=float(max(share, min(1.0, centre + half))))


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of a - b (zeros dropped) with the rank-biserial correlation."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.all(x == y):
        return WilcoxonResult(w=0.0, p=1.0, rank_biserial=0.0)  # no difference at all: no evidence of one
    row = pg.wilcoxon(x, y, alternative="two-sided").iloc[0]
    return WilcoxonResult(w=float(row["W_val"]), p=float(row["p_val"]), rank_biserial=float(row["RBC"]))


def tost_paired(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """p of the paired two one-sided t-tests that the mean of a - b lies within (-margin, margin)."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.allclose(differences, differences[0], rtol=0, atol=1e-9):  # no spread: the difference is known exactly
        return 0.0 if abs(differences[0]) < margin else 1.0
    return float(pg.tost(np.asarray(a, dtype=float), np.asarray(b, dtype=float), bound=float(margin), paired=True).at["TOST", "pval"])


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values for one family of tests."""
    if not pvalues:
        return []
    _, adjusted = pg.multicomp(list(pvalues), method="holm")
    return [float(p) for p in adjusted]


def paired_power(a: Sequence[float], b: Sequence[float], alpha: float) -> float | None:
    """Power of a two-sided paired t-test at `alpha` for the observed effect, with these many pairs.

    The Wilcoxon test the comparisons run has nearly the t-test's power (asymptotic relative
    efficiency 0.955 for normal data, more for heavy tails). None when it is undefined:
    fewer than two pairs, or no spread with no difference.
    """
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(differences) < 2:
        return None
    spread = differences.std(ddof=1)
    if spread == 0:
        return None if differences.mean() == 0 else 1.0
    effect = float(differences.mean() / spread)
    return float(pg.power_ttest(d=effect, n=len(differences), alpha=alpha, contrast="paired", alternative="two-sided"))


def tost_power(a: Sequence[float], b: Sequence[float], margin: float, alpha: float) -> float | None:
    """Chance that the paired TOST shows equivalence within ±margin if the true mean difference
    and spread were the observed ones (noncentral t for each one-sided test; a close lower bound)."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    if n < 2:
        return None
    mean, error = float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(n))
    if error == 0:
        return 1.0 if abs(mean) < margin else 0.0
    critical = stats.t.ppf(1 - alpha, n - 1)
    upper = stats.nct.sf(critical, n - 1, (margin - mean) / error)
    lower = stats.nct.sf(critical, n - 1, (margin + mean) / error)
    return float(max(0.0, upper + lower - 1.0))
