"""analysis.stats on planted results: synthetic accuracy tables with known effects and noise."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from analysis.stats import (
    VERDICT_RULE,
    adjust,
    cell_summary,
    compare,
    compare_family,
    compare_runs,
    hedges_g,
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


@pytest.fixture
def arms() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(0.92, 0.005, 10), rng.normal(0.90, 0.005, 10)


def test_real_two_point_gain_is_reproduced(arms):
    treatment, control = arms
    result = compare(treatment, control, claimed_delta=0.02)
    family = compare_family([result])
    assert family.loc[0, "p_adjusted"] < 0.05
    assert 0 < result["delta_ci_low"] < 0.02 < result["delta_ci_high"]
    assert family.loc[0, "verdict"] == "reproduced"
    assert verdict(result, claimed_delta=0.02) == "reproduced"


def simulated_verdicts(treatment_mean: float, n_simulations: int, seed: int) -> list[str]:
    """Verdicts on simulated comparisons (n = 5 per arm, sd 0.005, control mean 0.9) of a
    claimed +0.01 gain."""
    rng = np.random.default_rng(seed)
    return [
        verdict(compare(rng.normal(treatment_mean, 0.005, 5), rng.normal(0.9, 0.005, 5),
                        claimed_delta=0.01, rng=i, n_resamples=500), claimed_delta=0.01)
        for i in range(n_simulations)
    ]


def test_false_reproduced_rate_under_the_null_stays_near_alpha():
    verdicts = simulated_verdicts(0.9, 400, seed=123)
    assert verdicts.count("reproduced") / len(verdicts) <= 0.08


def test_true_claim_is_rarely_contradicted():
    verdicts = simulated_verdicts(0.91, 200, seed=321)
    assert verdicts.count("contradicted") / len(verdicts) <= 0.08


def test_impossible_claim_is_contradicted():
    rng = np.random.default_rng(5)
    result = compare(rng.normal(0.9, 0.003, 10), rng.normal(0.9, 0.003, 10), claimed_delta=0.03)
    assert result["delta_ci_high"] < 0.03
    assert result["seeds_needed"] == 2  # 10 SDs: beyond statsmodels' root finder, still answered
    assert verdict(result, claimed_delta=0.03) == "contradicted"


def test_gain_smaller_than_claimed_is_reproduced_with_its_size_rejected(arms):
    treatment, control = arms
    result = compare(treatment, control, claimed_delta=0.05)
    assert result["claim_p"] < 0.05 and result["welch_p"] < 0.05
    assert verdict(result, claimed_delta=0.05) == "reproduced"


def test_significant_effect_against_the_claim_is_contradicted(arms):
    treatment, control = arms
    result = compare(control, treatment, claimed_delta=0.02)
    assert verdict(result, claimed_delta=0.02) == "contradicted"
    assert verdict(result, claimed_delta=None) == "inconclusive"
    assert "reproduced" in VERDICT_RULE and "contradicted" in VERDICT_RULE


def test_holm_is_applied_across_the_family():
    rng = np.random.default_rng(11)
    results = [compare(rng.normal(0.9 + d, 0.005, 6), rng.normal(0.9, 0.005, 6),
                       claimed_delta=0.01) for d in (0.0, 0.002, 0.004, 0.008, 0.012)]
    family = compare_family(results)
    raw = family["welch_p"].to_numpy()
    np.testing.assert_allclose(family["p_adjusted"], multipletests(raw, method="holm")[1])
    assert np.all(family["p_adjusted"] >= raw)
    np.testing.assert_allclose(adjust(raw, "fdr_bh"), multipletests(raw, method="fdr_bh")[1])
    with_nan = adjust([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1])
    np.testing.assert_allclose(with_nan[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])


def test_each_statistic_matches_a_direct_library_call(arms):
    treatment, control = arms
    control = control.copy()
    result = compare(treatment, control, treatment_seeds=SEEDS, control_seeds=SEEDS[::-1],
                     claimed_delta=0.01)
    by_seed = control[::-1]  # control_seeds reversed: control[i] belongs to seed 9 - i
    assert result["welch_p"] == pytest.approx(
        stats.ttest_ind(treatment, control, equal_var=False).pvalue)
    assert result["claim_p"] == pytest.approx(
        stats.ttest_ind(treatment - 0.01, control, equal_var=False).pvalue)
    assert result["mannwhitney_p"] == pytest.approx(
        stats.mannwhitneyu(treatment, control, alternative="two-sided").pvalue)
    assert result["paired_t_p"] == pytest.approx(stats.ttest_rel(treatment, by_seed).pvalue)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(treatment, by_seed).pvalue)
    assert result["n_pairs"] == 10

    sd = math.sqrt((treatment.var(ddof=1) + control.var(ddof=1)) / 2)
    assert result["pooled_sd"] == pytest.approx(sd)
    power = TTestIndPower()
    mde = power.solve_power(nobs1=10, ratio=1.0, alpha=0.05, power=0.8) * sd
    assert result["min_detectable_delta"] == pytest.approx(mde)
    needed = result["seeds_needed"]
    assert power.power(0.01 / sd, nobs1=needed, alpha=0.05) >= 0.8
    assert power.power(0.01 / sd, nobs1=needed - 1, alpha=0.05) < 0.8


def test_paired_tests_need_two_shared_seeds(arms):
    treatment, control = arms
    result = compare(treatment[:3], control[:3], treatment_seeds=[0, 1, 2],
                     control_seeds=[2, 3, 4])
    assert result["n_pairs"] == 1 and np.isnan(result["paired_t_p"])
    assert np.isnan(compare(treatment, control)["wilcoxon_p"])
    with pytest.raises(ValueError, match="treatment_seeds"):
        compare(treatment[:2], control[:2], treatment_seeds=[0, 0], control_seeds=[0, 1])


def test_hedges_g_matches_the_hand_formula():
    a, b = [3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0]
    # means 4 and 2.5; variances 1 and 5/3; pooled var (2*1 + 3*5/3) / 5 = 7/5; df = 5
    d = 1.5 / math.sqrt(7 / 5)
    assert hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 5 - 1)))
    assert np.isnan(hedges_g([1.0, 1.0], [1.0, 1.0]))


@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # the constant arm b
def test_probability_of_improvement_counts_ties_as_half():
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0]
    # pairs: (1,2) x2 lose, (2,2) x2 tie, (3,2) x2 win -> (2 + 0.5 * 2) / 6
    result = compare(a, b)
    assert result["p_improvement"] == pytest.approx(0.5)
    assert result["p_improvement_ci_low"] <= 0.5 <= result["p_improvement_ci_high"]
    assert compare([0.9, 0.91], [0.8, 0.81])["p_improvement"] == 1.0


def test_bootstrap_is_deterministic_given_the_seed(arms):
    treatment, control = arms
    assert compare(treatment, control, rng=3) == compare(treatment, control, rng=3)
    gen_a, gen_b = np.random.default_rng(9), np.random.default_rng(9)
    assert cell_summary(treatment, rng=gen_a) == cell_summary(treatment, rng=gen_b)


def test_cell_summary_statistics_and_small_n():
    x = np.array([0.90, 0.91, 0.93, 0.92])
    s = cell_summary(x)
    assert (s["n"], s["mean"], s["median"]) == (4, pytest.approx(0.915), pytest.approx(0.915))
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    t_ci = stats.t.interval(0.95, df=3, loc=x.mean(), scale=stats.sem(x))
    assert (s["t_ci_low"], s["t_ci_high"]) == pytest.approx(t_ci)
    assert x.min() <= s["boot_ci_low"] < s["mean"] < s["boot_ci_high"] <= x.max()
    one = cell_summary([0.9])
    assert one["mean"] == 0.9 and np.isnan(one["std"]) and np.isnan(one["boot_ci_low"])
    assert cell_summary([])["n"] == 0
    assert np.isnan(compare([0.9], [0.8, 0.7])["welch_p"])


def test_diverged_runs_are_excluded_but_counted():
    runs = planted_runs({"hybrid": 0.02, "diffstride": 0.0}, n=6, study="s", dataset="cifar10")
    diverged = runs["variant"].eq("hybrid") & runs["seed"].isin([0, 1])
    runs.loc[diverged, ["status", "test_accuracy"]] = ["diverged", 0.1]
    table = summarise(runs, by=["study", "dataset", "variant"]).set_index("variant")
    hybrid = table.loc["hybrid"]
    counts = hybrid[["n_runs", "n", "n_diverged", "n_excluded"]].tolist()
    assert counts == [6, 4, 2, 2]
    kept = runs.loc[runs["variant"].eq("hybrid") & ~diverged, "test_accuracy"]
    assert hybrid["mean"] == pytest.approx(kept.mean())
    assert table.loc["diffstride", "n_diverged"] == 0
    assert summarise(runs, by="variant")["n_diverged"].tolist() == [0, 2]

    result = compare_runs(runs, treatment={"variant": "hybrid"},
                          control={"variant": "diffstride"}, claimed_delta=0.02)
    assert (result["n_treatment"], result["n_diverged_treatment"], result["n_pairs"]) == (4, 2, 4)
    assert result["mean_treatment"] == pytest.approx(kept.mean())
    with pytest.raises(ValueError, match="selects no runs"):
        compare_runs(runs, treatment={"variant": "spectral"}, control={"variant": "diffstride"})


def test_sweep_matches_library_calls_and_holm():
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
    default = groups[1]
    raw = [stats.ttest_ind(done.loc[done["smoothness"] == lvl, "test_accuracy"], default,
                           equal_var=False).pvalue for lvl in pairwise.index]
    np.testing.assert_allclose(pairwise["welch_p"], raw)
    np.testing.assert_allclose(pairwise["p_adjusted"], multipletests(raw, method="holm")[1])
    assert pairwise.loc[4, "p_adjusted"] < 0.05 and pairwise.loc[16, "delta"] < 0
    with pytest.raises(ValueError, match="default smoothness=3"):
        sweep(runs, "smoothness", default=3)
