"""analysis.stats on planted results: synthetic accuracy tables with known effects and noise."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import inference
from analysis.stats import (
    COMPARE_KEYS,
    VERDICT_RULE,
    adjust,
    cell_summary,
    compare,
    compare_family,
    compare_runs,
    flag_outliers,
    hedges_g,
    outlier_flags,
    labels,
    reproduced_rate,
    seeds_for_power,
    seeds_needed,
    summarise,
    sweep,
    verdict,
)

SEEDS = np.arange(10)


def planted_runs(effects: dict[str, float], n: int = 10, sd: float = 0.005, base: float = 0.90,
                 seed: int = 0, **axes) -> pd.DataFrame:
    """One completed run per (variant, seed), accuracy = base + effect + N(0, sd)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([
        {**axes, "variant": variant, "seed": s, "status": "completed",
         "test_accuracy": base + effect + rng.normal(0, sd)}
        for variant, effect in effects.items() for s in range(n)
    ])


def arms_with(delta: float, sd: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two arms whose sample means differ by exactly `delta` and whose SDs are exactly `sd`."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2, n))
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
    return 0.93 + delta + sd * z[0], 0.93 + sd * z[1]


@pytest.fixture
def arms() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(0.92, 0.005, 10), rng.normal(0.90, 0.005, 10)


# -- 1. direction and size apart --------------------------------------------------------------

def test_a_real_gain_of_the_claimed_size_is_reproduced(arms):
    treatment, control = arms
    result = compare(treatment, control, claimed_delta=0.02)
    family = compare_family([result])
    assert family.loc[0, "verdict"] == verdict(result) == "reproduced"
    assert family.loc[0, "ci_level"] == 0.95 and family.loc[0, "family_size"] == 1
    assert family.loc[0, "delta_ci_low"] > 0


def test_a_gain_far_smaller_than_claimed_is_not_reproduced():
    """Paper +0.0322, observed +0.003 at sd 0.001 over 10 seeds: a gain, far short."""
    treatment, control = arms_with(0.003, 0.001, 10)
    result = compare(treatment, control, claimed_delta=0.0322)
    assert 0 < result["delta_ci_low"] and result["delta_ci_high"] < 0.0322 - 0.005
    assert verdict(result) == "smaller than claimed"


def test_weaker_evidence_for_the_same_gain_says_only_that_the_claim_is_excluded():
    """+0.003 at sd 0.003 over 5 seeds: no direction shown, the claimed band excluded, and
    no equivalence either: its own label, not 'contradicted'."""
    treatment, control = arms_with(0.003, 0.003, 5)
    result = compare(treatment, control, claimed_delta=0.0322)
    assert result["delta_ci_low"] < 0 < result["delta_ci_high"] < 0.0322 - 0.005
    assert verdict(result) == "not the claimed size"


def test_no_effect_needs_the_interval_inside_the_margin():
    treatment, control = arms_with(0.0002, 0.001, 10)
    result = compare(treatment, control, claimed_delta=0.0094, margin=0.005)
    assert -0.005 < result["delta_ci_low"] < 0 < result["delta_ci_high"] < 0.005
    assert verdict(result) == "no effect"
    # the same data with a margin too tight to show equivalence: the claim is still excluded
    tight = compare(treatment, control, claimed_delta=0.0094, margin=0.0001)
    assert verdict(tight) == "not the claimed size"


def test_a_gain_larger_than_claimed_says_so(arms):
    treatment, control = arms
    assert verdict(compare(treatment, control, claimed_delta=0.005)) == "larger than claimed"


def test_a_significant_effect_against_the_claim_is_contradicted(arms):
    treatment, control = arms
    result = compare(control, treatment, claimed_delta=0.02)
    assert verdict(result) == "contradicted"
    assert verdict({**result, "claimed_delta": np.nan}) == "lower"


@pytest.mark.parametrize("low, high, claim, expected", [
    (0.006, 0.012, 0.010, "reproduced"),
    (0.001, 0.020, 0.010, "reproduced"),  # meets the band with the direction shown
    (0.001, 0.004, 0.010, "smaller than claimed"),
    (0.016, 0.030, 0.010, "larger than claimed"),
    (-0.02, -0.01, 0.010, "contradicted"),
    (-0.004, 0.004, 0.010, "no effect"),
    (-0.008, 0.004, 0.010, "not the claimed size"),
    (-0.008, 0.008, 0.010, "inconclusive"),
    (-0.012, -0.006, -0.010, "reproduced"),  # a negative claim, read mirrored
    (0.01, 0.02, -0.010, "contradicted"),
    (0.001, 0.009, 0.0, "higher"),  # a claim of no difference, read as no claim
    (-0.004, 0.004, 0.0, "no effect"),
    (0.001, 0.009, np.nan, "higher"),
    (-0.009, -0.001, np.nan, "lower"),
    (-0.004, 0.004, np.nan, "no effect"),
    (-0.009, 0.009, np.nan, "inconclusive"),
    (np.nan, np.nan, 0.010, "inconclusive"),
])
def test_each_zone_of_the_verdict_rule(low, high, claim, expected):
    assert str(labels(low, high, claim, 0.005, 0.005)) == expected
    assert f"'{expected}'" in VERDICT_RULE


def test_false_reproduced_rate_under_the_null_is_at_most_half_alpha():
    """No true gain, a claimed +0.01, 5 seeds per arm: 'reproduced' needs an interval above
    0, so at most alpha / 2 of null studies may say it."""
    rng = np.random.default_rng(123)
    a, b = rng.normal(0.9, 0.005, (20000, 5)), rng.normal(0.9, 0.005, (20000, 5))
    low, high = inference.delta_interval(a, b)
    assert np.mean(labels(low, high, 0.01) == "reproduced") <= 0.025
    # and a true claim is rarely contradicted
    low, high = inference.delta_interval(a + 0.01, b)
    assert np.mean(labels(low, high, 0.01) == "contradicted") <= 0.025


# -- 3, 4. intervals that hold their label --------------------------------------------------

def test_delta_interval_is_welch_and_p_improvement_interval_stays_open():
    treatment, control = [0.93, 0.931, 0.932, 0.934, 0.935], [0.92, 0.921, 0.922, 0.923, 0.925]
    result = compare(treatment, control)
    ci = stats.ttest_ind(treatment, control, equal_var=False).confidence_interval()
    assert (result["delta_ci_low"], result["delta_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert result["p_improvement"] == 1.0
    assert result["p_improvement_ci_high"] == 1.0 and result["p_improvement_ci_low"] < 0.95


# -- 5. seeds that deliver ------------------------------------------------------------------

def test_seeds_needed_delivers_the_verdict_in_its_family():
    """CIFAR-10's +0.0094 at sd 0.003 in a family of 14: the simulated seeds deliver an 80%
    chance of 'reproduced' when checked on full samples, one fewer does not."""
    needed = seeds_for_power(0.0094, 0.003, 14)
    assert seeds_for_power(0.0094, 0.003, 1) < needed == seeds_needed(0.0094, 0.003, family=14)

    def rate(n: int, replicates: int = 20000) -> float:
        rng = np.random.default_rng(n)
        a = rng.normal(0.9094, 0.003, (replicates, n))
        b = rng.normal(0.9, 0.003, (replicates, n))
        low, high = inference.delta_interval(a, b, confidence=1 - 0.05 / 14)
        return np.mean(labels(low, high, 0.0094) == "reproduced")

    assert rate(int(needed)) >= 0.79
    assert rate(int(needed) - 1) < 0.8
    assert reproduced_rate(0.0094, 0.003, int(needed), claimed_delta=0.0094,
                           family_size=14) >= 0.8


def test_seeds_needed_is_reported_for_the_family():
    rng = np.random.default_rng(11)
    results = [compare(rng.normal(0.9 + d, 0.005, 6), rng.normal(0.9, 0.005, 6),
                       claimed_delta=0.01) for d in (0.0, 0.004, 0.012)]
    family = compare_family(results)
    assert (family["family_size"] == 3).all() and (family["family"] == "confirmatory").all()
    row = family.loc[0]
    assert row["seeds_needed"] == seeds_needed(0.01, row["pooled_sd"], family=3)
    assert row["sd_upper"] > row["pooled_sd"]
    assert row["seeds_needed_sd_upper"] >= row["seeds_needed"]
    assert seeds_needed(0.01, 0.0) != seeds_needed(0.01, 0.0)  # NaN without spread
    assert seeds_needed(0.0001, 0.05, max_n=50) == math.inf


# -- 6. arms without spread -------------------------------------------------------------------

def test_constant_arms_never_give_p_zero_and_a_point_interval_does_not_decide():
    result = compare([0.9301, 0.9301], [0.9240, 0.9240], claimed_delta=0.0094)
    assert result["test"] == "permutation"
    assert result["p0"] == pytest.approx(1 / 3)
    assert verdict(result) == "inconclusive"
    five = compare([0.9301] * 5, [0.9240] * 5, claimed_delta=0.0094)
    assert five["p0"] == pytest.approx(2 / 252)  # the smallest split p, not 0
    assert np.isnan(five["delta_ci_low"]) and verdict(five) == "inconclusive"


# -- 7. tests that cannot reach significance ----------------------------------------------------

def test_rank_tests_carry_their_smallest_attainable_p():
    result = compare([0.93, 0.94, 0.95, 0.96, 0.97], [0.90, 0.91, 0.92, 0.915, 0.905],
                     treatment_seeds=range(5), control_seeds=range(5))
    assert result["wilcoxon_min_p"] == 0.0625 and result["wilcoxon_p"] >= 0.0625
    three = compare([0.93, 0.94, 0.95], [0.90, 0.91, 0.92])
    assert three["mannwhitney_min_p"] == pytest.approx(0.1)
    assert three["mannwhitney_p"] == pytest.approx(0.1)
    assert three["mannwhitney_method"] == "exact"


# -- 8. outliers ------------------------------------------------------------------------------

def test_one_collapsed_run_is_flagged_and_robust_summaries_show_the_gain():
    """4 of 5 treatment runs above every control, one collapsed to 0.10."""
    runs = planted_runs({"hybrid": 0.02, "diffstride": 0.0}, n=5, sd=0.002)
    collapsed = runs.index[runs["variant"] == "hybrid"][2]
    runs.loc[collapsed, "test_accuracy"] = 0.10
    flags = outlier_flags(runs, ["variant"])
    assert flags.index[flags["outlier"]].tolist() == [collapsed]
    runs["outlier"] = flags["outlier"]
    result = compare_runs(runs, treatment={"variant": "hybrid"}, control={"variant": "diffstride"},
                          claimed_delta=0.02)
    assert result["n_flagged_treatment"] == 1 and result["n_flagged_control"] == 0
    assert summarise(runs, "variant").set_index("variant").loc["hybrid", "n_flagged"] == 1
    # the stated rule: a collapsed run is a failure, out of the interval and counted
    assert result["n_treatment"] == 4 and result["n_collapsed_treatment"] == 1
    assert result["delta"] > 0.015 and result["iqm_delta"] > 0.015


def test_outlier_rule_needs_both_a_robust_z_and_a_gap():
    assert not flag_outliers([0.90, 0.905]).any()  # below 3 runs: nothing flagged
    assert not flag_outliers([0.9, 0.9, 0.9, 0.905]).any()  # MAD 0, but only 0.005 away
    assert flag_outliers([0.9, 0.9, 0.9, 0.95]).tolist() == [False, False, False, True]


# -- 10. robustness ---------------------------------------------------------------------------

def test_repeated_seeds_skip_pairing_and_keep_the_rest():
    rng = np.random.default_rng(2)
    result = compare(rng.normal(0.92, 0.005, 6), rng.normal(0.90, 0.005, 6),
                     treatment_seeds=[0, 0, 1, 1, 2, 2], control_seeds=[0, 0, 1, 1, 2, 2],
                     claimed_delta=0.02)
    assert result["pairing"].startswith("pairing skipped")
    assert np.isnan(result["paired_t_p"]) and result["n_pairs"] == 0
    assert verdict(result) == "reproduced"


def test_compare_returns_the_same_keys_whatever_the_data():
    assert set(compare([], [0.9])) == set(COMPARE_KEYS)
    assert set(compare([0.9, 0.91], [0.8, 0.81], claimed_delta=0.1)) == set(COMPARE_KEYS)


# -- the library calls behind the numbers ------------------------------------------------------

def test_holm_is_applied_within_each_family():
    rng = np.random.default_rng(11)
    results = [compare(rng.normal(0.9 + d, 0.005, 6), rng.normal(0.9, 0.005, 6),
                       claimed_delta=0.01) for d in (0.0, 0.002, 0.004, 0.008, 0.012)]
    exploratory = [compare(rng.normal(0.9, 0.005, 6), rng.normal(0.9, 0.005, 6))
                   for _ in range(3)]
    both = compare_family(results + exploratory)
    assert both["family_size"].tolist() == [5] * 5 + [3] * 3
    np.testing.assert_allclose(both["p0_adjusted"][5:],
                               multipletests(both["p0"][5:], method="holm")[1])
    family = compare_family(results)
    for raw in ("p0", "p_claim", "p_tost"):
        np.testing.assert_allclose(family[f"{raw}_adjusted"],
                                   multipletests(family[raw], method="holm")[1])
    np.testing.assert_allclose(adjust(family["p0"], "fdr_bh"),
                               multipletests(family["p0"], method="fdr_bh")[1])
    with_nan = adjust([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])


def test_each_statistic_matches_a_direct_library_call(arms):
    treatment, control = arms
    result = compare(treatment, control, treatment_seeds=SEEDS, control_seeds=SEEDS[::-1],
                     claimed_delta=0.01)
    by_seed = control[::-1]  # control_seeds reversed: control[i] belongs to seed 9 - i
    assert result["p0"] == pytest.approx(stats.ttest_ind(treatment, control, equal_var=False).pvalue)
    assert result["p_claim"] == pytest.approx(
        stats.ttest_ind(treatment - 0.01, control, equal_var=False).pvalue)
    assert result["mannwhitney_method"] == "exact"  # no ties: exact at 10 vs 10 too
    assert result["mannwhitney_p"] == pytest.approx(
        stats.mannwhitneyu(treatment, control, alternative="two-sided", method="exact").pvalue)
    assert result["paired_t_p"] == pytest.approx(stats.ttest_rel(treatment, by_seed).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(
        stats.wilcoxon(treatment, by_seed, method="exact").pvalue)
    assert result["n_pairs"] == 10
    sd = math.sqrt((treatment.var(ddof=1) + control.var(ddof=1)) / 2)
    assert result["pooled_sd"] == pytest.approx(sd)


def test_paired_tests_need_two_shared_seeds(arms):
    treatment, control = arms
    result = compare(treatment[:3], control[:3], treatment_seeds=[0, 1, 2],
                     control_seeds=[2, 3, 4])
    assert result["n_pairs"] == 1 and np.isnan(result["paired_t_p"])
    assert np.isnan(compare(treatment, control)["wilcoxon_p"])
    with pytest.raises(ValueError, match="treatment_seeds"):
        compare(treatment[:2], control[:2], treatment_seeds=[0], control_seeds=[0, 1])


def test_hedges_g_matches_the_hand_formula():
    a, b = [3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0]
    # means 4 and 2.5; variances 1 and 5/3; pooled var (2*1 + 3*5/3) / 5 = 7/5; df = 5
    d = 1.5 / math.sqrt(7 / 5)
    assert hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 5 - 1)))
    assert np.isnan(hedges_g([1.0, 1.0], [1.0, 1.0]))


def test_cell_summary_statistics_and_small_n():
    x = np.array([0.90, 0.91, 0.93, 0.92])
    s = cell_summary(x)
    assert (s["n"], s["mean"], s["median"]) == (4, pytest.approx(0.915), pytest.approx(0.915))
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    assert s["iqm"] == pytest.approx(stats.trim_mean(x, 0.25))
    t_ci = stats.t.interval(0.95, df=3, loc=x.mean(), scale=stats.sem(x))
    assert (s["t_ci_low"], s["t_ci_high"]) == pytest.approx(t_ci)
    one = cell_summary([0.9])
    assert one["mean"] == 0.9 and np.isnan(one["std"]) and np.isnan(one["t_ci_low"])
    assert cell_summary([])["n"] == 0
    assert np.isnan(compare([0.9], [0.8, 0.7])["p0"])


def test_diverged_runs_are_excluded_but_counted():
    runs = planted_runs({"hybrid": 0.02, "diffstride": 0.0}, n=6, study="s", dataset="cifar10")
    diverged = runs["variant"].eq("hybrid") & runs["seed"].isin([0, 1])
    runs.loc[diverged, ["status", "test_accuracy"]] = ["diverged", 0.1]
    table = summarise(runs, by=["study", "dataset", "variant"]).set_index("variant")
    hybrid = table.loc["hybrid"]
    assert hybrid[["n_runs", "n", "n_diverged", "n_excluded"]].tolist() == [6, 4, 2, 2]
    kept = runs.loc[runs["variant"].eq("hybrid") & ~diverged, "test_accuracy"]
    assert hybrid["mean"] == pytest.approx(kept.mean())
    assert table.loc["diffstride", "n_diverged"] == 0
    result = compare_runs(runs, treatment={"variant": "hybrid"},
                          control={"variant": "diffstride"}, claimed_delta=0.02)
    assert (result["n_treatment"], result["n_diverged_treatment"], result["n_pairs"]) == (4, 2, 4)
    with pytest.raises(ValueError, match="selects no runs"):
        compare_runs(runs, treatment={"variant": "spectral"}, control={"variant": "diffstride"})


# -- 9. sweeps --------------------------------------------------------------------------------

def test_sweep_matches_library_calls():
    levels = {1: 0.0, 2: 0.0, 4: 0.02, 8: 0.0, 16: -0.01}
    runs = pd.concat([planted_runs({"hybrid": effect}, n=6, seed=level).assign(smoothness=level)
                      for level, effect in levels.items()], ignore_index=True)
    runs.loc[0, "status"] = "diverged"
    result = sweep(runs, "smoothness", default=2)
    done = runs[runs["status"] == "completed"]
    groups = [done.loc[done["smoothness"] == lvl, "test_accuracy"] for lvl in sorted(levels)]
    assert result["kruskal_p"] == pytest.approx(stats.kruskal(*groups).pvalue)
    assert result["anova_p"] == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert result["n_diverged"] == 1
    pairwise = result["pairwise"].set_index("smoothness")
    assert list(pairwise.index) == [1, 4, 8, 16]
    raw = [stats.ttest_ind(done.loc[done["smoothness"] == lvl, "test_accuracy"], groups[1],
                           equal_var=False).pvalue for lvl in pairwise.index]
    np.testing.assert_allclose(pairwise["p"], raw)
    assert np.isnan(result["trend_p"])  # no order given
    with pytest.raises(ValueError, match="default smoothness=3"):
        sweep(runs, "smoothness", default=3)


def test_trend_finds_a_steady_gain_that_level_tests_miss():
    """+0.002 per level over 5 levels, 5 seeds, sd 0.003: the trend is clear, while the
    levels next to the default differ by less than their noise."""
    order = [1, 2, 4, 8, 16]
    runs = pd.concat([planted_runs({"hybrid": 0.002 * i}, n=5, sd=0.003, seed=i)
                      .assign(smoothness=level) for i, level in enumerate(order)],
                     ignore_index=True)
    result = sweep(runs, "smoothness", default=4, order=order)
    assert result["trend_per_level"] == pytest.approx(0.002, abs=0.001)
    assert result["trend_p"] < 0.01
    pairwise = result["pairwise"].set_index("smoothness")
    assert (adjust(pairwise["p"])[[1, 2]] > 0.05).all()  # levels 2 and 8 vs 4
    rank = runs["smoothness"].map({v: i for i, v in enumerate(order)})
    assert result["trend_p"] == pytest.approx(stats.linregress(rank, runs["test_accuracy"]).pvalue)
