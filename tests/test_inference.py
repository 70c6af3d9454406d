"""analysis.inference: each primitive against a library call or a hand case, and the intervals'
coverage by simulation at the seed counts the configs use (vectorised: seconds)."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind

from analysis import inference

REPLICATES = 4000  # binomial SE of a 95% coverage: 0.34 points


def simulated_arms(n: int, shift: float = 0.0, sd: float = 0.005, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0.93 + shift, sd, (REPLICATES, n)), rng.normal(0.93, sd, (REPLICATES, n)),
            rng)


@pytest.mark.parametrize("n", [3, 5])
def test_t_intervals_hold_their_level_at_small_n(n):
    a, b, _ = simulated_arms(n, shift=0.004)
    low, high = inference.mean_interval(a)
    assert abs(np.mean((low <= 0.934) & (0.934 <= high)) - 0.95) <= 0.02
    low, high = inference.delta_interval(a, b)
    assert abs(np.mean((low <= 0.004) & (0.004 <= high)) - 0.95) <= 0.02
    # what the percentile bootstrap of 5 values gave: 86-89%, well below its label
    assert np.mean((low <= 0.004) & (0.004 <= high)) > 0.93


def test_prediction_intervals_cover_one_new_run_and_one_new_pair():
    a, b, rng = simulated_arms(5, shift=0.01)
    new_a, new_b = rng.normal(0.94, 0.005, REPLICATES), rng.normal(0.93, 0.005, REPLICATES)
    low, high = inference.prediction_interval(a)
    assert abs(np.mean((low <= new_a) & (new_a <= high)) - 0.95) <= 0.02
    low, high = inference.pair_prediction_interval(a, b)
    pair = new_a - new_b
    assert abs(np.mean((low <= pair) & (pair <= high)) - 0.95) <= 0.02
    # wider than the CI of delta: one pair varies more than a mean of five
    ci_low, ci_high = inference.delta_interval(a, b)
    assert np.all(high - low > ci_high - ci_low)


def test_pair_prediction_interval_by_hand():
    a, b = np.array([0.93, 0.94, 0.95]), np.array([0.92, 0.93])
    va, vb = a.var(ddof=1) * (1 + 1 / 3), b.var(ddof=1) * (1 + 1 / 2)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    low, high = inference.pair_prediction_interval(a, b)
    assert (low, high) == pytest.approx((0.015 - half, 0.015 + half))


def test_superiority_interval_does_not_collapse_when_the_arms_separate():
    low, high = inference.superiority_interval(np.array(1.0), 5, 5)
    assert high == 1.0 and 0.5 < low < 0.95
    low, high = inference.superiority_interval(np.array(0.0), 5, 5)
    assert low == 0.0 and 0.05 < high < 0.5
    # true P(a > b) = 0.987 at 5 seeds: the arms separate in ~80% of draws
    shift = stats.norm.ppf(0.987) * math.sqrt(2) * 0.005
    a, b, _ = simulated_arms(5, shift=shift)
    theta = inference.superiority(a, b)
    low, high = inference.superiority_interval(theta, 5, 5)
    assert np.mean(theta == 1) > 0.7 and np.all(low < high)
    assert np.mean((low <= 0.987) & (0.987 <= high)) >= 0.93


def test_superiority_counts_ties_half():
    assert inference.superiority([1.0, 2.0, 3.0], [2.0, 2.0]) == pytest.approx(0.5)


def test_tost_is_two_one_sided_welch_tests():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.9, 0.004, 6), rng.normal(0.901, 0.006, 7)
    expected = ttost_ind(a, b, -0.005, 0.005, usevar="unequal")[0]
    assert inference.tost_p(a, b, 0.005) == pytest.approx(expected)


def test_welch_from_moments_is_welch():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.9, 0.004, 6), rng.normal(0.901, 0.006, 7)
    direct = inference.welch(a, b, shift=0.002).pvalue
    moments = inference.welch_from_moments(a.mean(), a.std(ddof=1), 6, b.mean(), b.std(ddof=1), 7,
                                           shift=0.002)
    assert moments == pytest.approx(direct)


def test_smallest_attainable_rank_test_p():
    assert inference.min_p_wilcoxon(5) == 0.0625
    assert inference.min_p_mannwhitney(3, 3) == pytest.approx(0.1)
    # the exact tests reach exactly those floors on fully separated data
    assert inference.wilcoxon_p(np.arange(5.0) + 10, np.arange(5.0)) == pytest.approx(0.0625)
    assert inference.mannwhitney_p([4.0, 5, 6], [1.0, 2, 3]) == pytest.approx(0.1)


def test_permutation_test_of_constant_arms():
    p = inference.permutation_p(np.full(5, 0.9301), np.full(5, 0.9240))
    assert p == pytest.approx(2 / math.comb(10, 5))
    assert inference.permutation_p([0.9301, 0.9301], [0.924, 0.924]) == pytest.approx(1 / 3)


def test_robust_summaries():
    x = np.array([0.93, 0.931, 0.929, 0.932, 0.10])
    assert inference.iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))
    z = inference.robust_z(x)
    assert abs(z[-1]) > 100 and np.all(np.abs(z[:-1]) < 2)
    tied = inference.robust_z(np.array([0.9, 0.9, 0.9, 0.91]))
    assert list(tied[:3]) == [0, 0, 0] and np.isinf(tied[3])
