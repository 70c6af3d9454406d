"""The interval and test primitives behind analysis.stats, vectorised over leading axes.

Each function takes arrays whose last axis holds one arm's runs (so a simulation passes
thousands of replicates at once and a table passes one) and is a scipy call or a short,
cited formula. analysis.stats builds the comparisons, verdicts and sweeps from these; the
coverage tests in tests/test_stats.py drive them through simulated replicates.

- Means and deltas: Student t and Welch t intervals, which hold their level at 5 seeds (a
  percentile bootstrap of 5 values covers 86-89% at a nominal 95%).
- One new run, or one new treatment-minus-control pair: t prediction intervals, the honest
  yardstick for the paper's single runs.
- Equivalence: TOST, two one-sided Welch tests within +-margin.
- P(treatment > control): the Mann-Whitney estimate with Newcombe's (2006) method 5
  interval, which stays inside (0, 1) when the arms separate.
- Arms without spread: exact permutation tests, never a t statistic over a zero variance.
- Rank tests: exact without ties at any size (with ties: exact up to 20,000 splits, then
  the normal approximation), and the smallest two-sided p their sample sizes allow.
- Robust summaries: the median, the interquartile mean and a median/MAD outlier score.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MAD_SCALE = 1.4826  # MAD * 1.4826 estimates the SD of normal data


def _tail(confidence: float) -> float:
    return 0.5 + confidence / 2


def welch(a: np.ndarray, b: np.ndarray, *, shift: float | np.ndarray = 0.0,
          alternative: str = "two-sided"):
    """Welch's t-test of mean(a) - mean(b) = shift (scipy's result: pvalue, df,
    confidence_interval), along the last axis."""
    return stats.ttest_ind(np.asarray(a) - shift, b, equal_var=False, axis=-1,
                           alternative=alternative)


def welch_from_moments(mean_a, sd_a, n_a, mean_b, sd_b, n_b, *, shift=0.0,
                       alternative: str = "two-sided") -> np.ndarray:
    """Welch's p from the arms' means, SDs and sizes: the test `welch` runs, for simulations
    that draw the sufficient statistics instead of every run."""
    return stats.ttest_ind_from_stats(np.asarray(mean_a) - shift, sd_a, n_a, mean_b, sd_b, n_b,
                                      equal_var=False, alternative=alternative).pvalue


def tost_p(a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray:
    """Two one-sided Welch tests of -margin < mean(a) - mean(b) < margin: the larger of the
    two one-sided p's (small when the difference is shown to lie inside the margin)."""
    above = welch(a, b, shift=-margin, alternative="greater").pvalue
    below = welch(a, b, shift=margin, alternative="less").pvalue
    return np.maximum(above, below)


def _t_interval(x: np.ndarray, confidence: float, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """mean +- t(n-1) * sd * `spread` along the last axis (NaN below 2 values)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    if n < 2:
        nan = np.full(x.shape[:-1], np.nan)
        return nan, nan
    half = stats.t.ppf(_tail(confidence), n - 1) * x.std(axis=-1, ddof=1) * spread
    centre = x.mean(axis=-1)
    return centre - half, centre + half


def mean_interval(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval of the mean along the last axis: spread 1/sqrt(n)."""
    return _t_interval(x, confidence, 1 / math.sqrt(max(np.shape(x)[-1], 1)))


def delta_interval(a: np.ndarray, b: np.ndarray,
                   confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Welch t interval of mean(a) - mean(b)."""
    ci = welch(a, b).confidence_interval(confidence)
    return ci.low, ci.high


def _satterthwaite(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Degrees of freedom of a sum of variance terms, each (term, its sample's n)."""
    total = sum(term for term, _ in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total ** 2 / sum(term ** 2 / (n - 1) for term, n in parts)


def prediction_interval(x: np.ndarray,
                        confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Where one new run of this arm falls: spread sqrt(1 + 1/n)."""
    return _t_interval(x, confidence, math.sqrt(1 + 1 / max(np.shape(x)[-1], 1)))


def pair_prediction_interval(a: np.ndarray, b: np.ndarray,
                             confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Where one new (a run - b run) difference falls, as a paper's single-run delta is one:
    delta +- t(df) * sqrt(s_a^2 (1 + 1/n_a) + s_b^2 (1 + 1/n_b)), df by Welch-Satterthwaite."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n_a, n_b = a.shape[-1], b.shape[-1]
    if n_a < 2 or n_b < 2:
        nan = np.full(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.nan)
        return nan, nan
    va = a.var(axis=-1, ddof=1) * (1 + 1 / n_a)
    vb = b.var(axis=-1, ddof=1) * (1 + 1 / n_b)
    df = _satterthwaite([(va, n_a), (vb, n_b)])
    half = stats.t.ppf(_tail(confidence), df) * np.sqrt(va + vb)
    centre = a.mean(axis=-1) - b.mean(axis=-1)
    return centre - half, centre + half


def superiority(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a run of a > a run of b), ties counted half: the Mann-Whitney U / (n_a n_b)."""
    a, b = np.asarray(a, dtype=float)[..., :, None], np.asarray(b, dtype=float)[..., None, :]
    return (a > b).mean(axis=(-2, -1)) + 0.5 * (a == b).mean(axis=(-2, -1))


def superiority_interval(theta: np.ndarray, n_a: int, n_b: int,
                         confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's method 5 interval for P(a > b) (Stat Med 2006;25:559-573): the thetas
    whose Hanley-McNeil variance, with both sample sizes replaced by their mean, keeps the
    estimate within z standard errors. Unlike a bootstrap it does not collapse to [1, 1]
    when every a exceeds every b. Solved by bisection on each side of the estimate."""
    theta = np.asarray(theta, dtype=float)
    z2 = stats.norm.ppf(_tail(confidence)) ** 2
    n_star = (n_a + n_b) / 2

    def outside(t):  # > 0 where t lies outside the interval
        var = t * (1 - t) * (1 + (n_star - 1) * ((1 - t) / (2 - t) + t / (1 + t))) / (n_a * n_b)
        return (theta - t) ** 2 - z2 * var

    bounds = []
    for far in (np.zeros_like(theta), np.ones_like(theta)):
        inside, out = theta.copy(), far.copy()  # the root lies between them
        for _ in range(60):
            mid = (inside + out) / 2
            is_out = outside(mid) > 0
            out, inside = np.where(is_out, mid, out), np.where(is_out, inside, mid)
        bounds.append(np.where(outside(far) > 0, (inside + out) / 2, far))
    return bounds[0], bounds[1]


EXACT_SPLITS = 20_000  # tied rank tests run exactly (every split or sign pattern) up to this


def mannwhitney_method(a: np.ndarray, b: np.ndarray) -> str:
    """How mannwhitney_p computes its p: 'exact' without ties (scipy's exact null
    distribution, any size), 'exact permutation' with ties up to EXACT_SPLITS splits, else
    'normal approximation' (tie-corrected)."""
    pooled = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    if np.unique(pooled).size == pooled.size:
        return "exact"
    exact = math.comb(len(a) + len(b), len(a)) <= EXACT_SPLITS
    return "exact permutation" if exact else "normal approximation"


def mannwhitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney p, computed as mannwhitney_method says."""
    method = {"exact": "exact", "normal approximation": "asymptotic",
              "exact permutation": stats.PermutationMethod(n_resamples=np.inf)}[
        mannwhitney_method(a, b)]
    return float(stats.mannwhitneyu(a, b, alternative="two-sided", method=method).pvalue)


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the pairs a - b: scipy's exact distribution
    without ties or zero differences, exact over every sign pattern with them up to
    EXACT_SPLITS patterns, else scipy's normal approximation."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if np.all(d != 0) and np.unique(np.abs(d)).size == d.size:
        method = "exact"
    else:
        exact = 2 ** len(d) <= EXACT_SPLITS
        method = stats.PermutationMethod(n_resamples=np.inf) if exact else "approx"
    return float(stats.wilcoxon(a, b, method=method).pvalue)


def min_p_mannwhitney(n_a: int, n_b: int) -> float:
    """The smallest two-sided exact Mann-Whitney p at these sizes: 2 / C(n_a + n_b, n_a)."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a)) if n_a and n_b else np.nan


def min_p_wilcoxon(n_pairs: int) -> float:
    """The smallest two-sided exact Wilcoxon signed-rank p over n pairs: 2 / 2^n."""
    return min(1.0, 2 / 2 ** n_pairs) if n_pairs else np.nan


def permutation_p(a: np.ndarray, b: np.ndarray, *, shift: float = 0.0,
                  alternative: str = "two-sided") -> float:
    """Exact permutation test of mean(a) - mean(b) = shift over every split of the pooled
    runs: what stands in for Welch when neither arm varies (its standard error is 0)."""
    def mean_difference(x, y, axis):
        return x.mean(axis=axis) - y.mean(axis=axis)
    result = stats.permutation_test((np.asarray(a, dtype=float) - shift, np.asarray(b, dtype=float)),
                                    mean_difference, permutation_type="independent",
                                    n_resamples=np.inf, vectorized=True, alternative=alternative)
    return float(result.pvalue)


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean: the mean of the middle half (25% trimmed each side), as rliable."""
    x = np.asarray(x, dtype=float)
    return stats.trim_mean(x, 0.25, axis=-1) if x.shape[-1] else np.nan


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) per value; +-inf for a value off a median that more than
    half the runs share (MAD 0), 0 for those runs."""
    x = np.asarray(x, dtype=float)
    median = np.median(x, axis=-1, keepdims=True)
    mad = MAD_SCALE * np.median(np.abs(x - median), axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == median, 0.0, (x - median) / mad)
