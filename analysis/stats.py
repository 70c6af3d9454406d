"""Statistics of the reproduction: pure functions from accuracies and tidy run tables to numbers.

In the spirit of rliable: no plotting, no file I/O, nothing that needs a GPU. The input table
has one row per training run with at least `seed`, `status` ("completed" or "diverged") and the
metric (`test_accuracy`, final-epoch accuracy in [0, 1]) plus axis columns such as `study`,
`dataset`, `variant`. Statistics use completed runs only, and every summary reports how many
runs it excluded. Every test is a scipy / statsmodels call; every bootstrap takes a seed or a
`numpy.random.Generator`, so the same inputs give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

CONFIDENCE = 0.95
POWER = 0.80
N_RESAMPLES = 2000
PRIMARY_TEST = "welch_p"  # H0: delta = 0; compare_family adjusts it, verdict reads it
CLAIM_TEST = "claim_p"  # H0: delta = claimed delta; adjusted and read the same way

VERDICT_RULE = (
    "delta = mean(treatment) - mean(control) over completed runs. Two two-sided Welch t-tests, "
    "each adjusted across the family of comparisons (Holm unless stated): p0 tests delta = 0, "
    "p_claim tests delta = the claimed delta. 'reproduced' if adjusted p0 < alpha, delta has "
    "the sign of the claimed delta, and the bootstrap 95% CI of delta excludes 0 on that side "
    "(this takes precedence: a significant gain smaller than claimed is still 'reproduced', "
    "and p_claim tells whether its size is). 'contradicted' if adjusted p_claim < alpha and "
    "delta falls short of the claimed delta (the claimed size is implausible), or adjusted "
    "p0 < alpha with the sign opposite to the claim. A claimed delta of 0 is 'contradicted' by "
    "adjusted p0 < alpha and never 'reproduced'. 'inconclusive' otherwise, including when an "
    "arm has fewer than 2 completed runs."
)

Rng = int | np.random.Generator | None


def cell_summary(values: Sequence[float], *, rng: Rng = 0,
                 n_resamples: int = N_RESAMPLES) -> dict[str, float]:
    """n, mean, std (ddof=1), median, t-based and percentile-bootstrap 95% CIs of the mean.

    Quantities that need more runs than there are (std and CIs below n = 2) are NaN.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    out = {"n": n, "mean": np.nan, "std": np.nan, "median": np.nan,
           "t_ci_low": np.nan, "t_ci_high": np.nan, "boot_ci_low": np.nan, "boot_ci_high": np.nan}
    if n == 0:
        return out
    out.update(mean=x.mean(), median=np.median(x))
    if n < 2:
        return out
    t_ci = stats.ttest_1samp(x, 0.0).confidence_interval(CONFIDENCE)
    boot = stats.bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=CONFIDENCE,
                           method="percentile", rng=rng).confidence_interval
    out.update(std=x.std(ddof=1), t_ci_low=t_ci.low, t_ci_high=t_ci.high,
               boot_ci_low=boot.low, boot_ci_high=boot.high)
    return out


def _completed(df: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int, int]:
    """The completed runs with a metric value, plus counts of diverged and all excluded runs."""
    missing = {"seed", "status", metric} - set(df.columns)
    if missing:
        raise KeyError(f"run table lacks columns {sorted(missing)}; has {list(df.columns)}. "
                       "Collect results with seed, status and the metric per run.")
    keep = (df["status"] == "completed") & df[metric].notna()
    return df[keep], int((df["status"] == "diverged").sum()), int((~keep).sum())


def summarise(df: pd.DataFrame, by: str | Sequence[str], metric: str = "test_accuracy", *,
              rng: Rng = 0) -> pd.DataFrame:
    """One row per cell of `by` (e.g. study x dataset x variant): cell_summary of the completed
    runs' `metric`, plus n_runs, n_diverged and n_excluded (diverged, other statuses, or a
    completed run without a metric value)."""
    by = [by] if isinstance(by, str) else list(by)
    gen = np.random.default_rng(rng)
    rows = []
    for key, cell in df.groupby(by, sort=True, dropna=False):
        done, n_diverged, n_excluded = _completed(cell, metric)
        rows.append({**dict(zip(by, key)), "n_runs": len(cell), "n_diverged": n_diverged,
                     "n_excluded": n_excluded, **cell_summary(done[metric], rng=gen)})
    return pd.DataFrame(rows)


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or b.size < 2:
        return np.nan
    dof = a.size + b.size - 2
    return math.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / dof)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a - mean b) / pooled SD, times the small-sample correction 1 - 3 / (4 df - 1),
    df = n_a + n_b - 2. NaN when either arm has fewer than 2 values or the pooled SD is 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sd = _pooled_sd(a, b)
    if not sd > 0:
        return np.nan
    dof = a.size + b.size - 2
    return (1 - 3 / (4 * dof - 1)) * (a.mean() - b.mean()) / sd


def _prob_improvement(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Fraction of pairs (a_i, b_j) with a_i > b_j, ties 1/2; vectorised over resamples."""
    a, b = np.moveaxis(a, axis, -1)[..., :, None], np.moveaxis(b, axis, -1)[..., None, :]
    return (a > b).mean(axis=(-2, -1)) + 0.5 * (a == b).mean(axis=(-2, -1))


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def _paired(treatment: np.ndarray, control: np.ndarray, treatment_seeds: Sequence[int] | None,
            control_seeds: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The two arms restricted to their shared seeds, ordered by seed (empty without seeds)."""
    if treatment_seeds is None or control_seeds is None:
        return np.empty(0), np.empty(0)
    arms = []
    for name, values, seeds in (("treatment", treatment, treatment_seeds),
                                ("control", control, control_seeds)):
        seeds = np.asarray(seeds)
        if seeds.size != values.size or np.unique(seeds).size != seeds.size:
            raise ValueError(f"{name}_seeds must list one distinct seed per {name} value; got "
                             f"{seeds.tolist()} for {values.size} values.")
        arms.append(pd.Series(values, index=seeds))
    shared = sorted(set(arms[0].index) & set(arms[1].index))
    return arms[0][shared].to_numpy(), arms[1][shared].to_numpy()


def compare(treatment: Sequence[float], control: Sequence[float], *,
            treatment_seeds: Sequence[int] | None = None,
            control_seeds: Sequence[int] | None = None, alpha: float = 0.05,
            claimed_delta: float | None = None, rng: Rng = 0,
            n_resamples: int = N_RESAMPLES) -> dict[str, float]:
    """One comparison of treatment against control accuracies (delta = treatment - control).

    Returns means; delta with a bootstrap 95% CI (each arm resampled independently) and the
    Welch t CI; Welch's t p of delta = 0 (`welch_p`, the primary test) and of delta =
    claimed_delta (`claim_p`); Mann-Whitney U p; paired t and Wilcoxon p on the runs paired by
    shared seed (NaN with fewer than 2 pairs); Hedges' g; P(treatment > control) with a
    bootstrap CI; and the power figures of `_power_figures`. Statistics needing two runs per
    arm are NaN below that.
    """
    a, b = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    gen = np.random.default_rng(rng)
    out = {"n_treatment": a.size, "n_control": b.size,
           "mean_treatment": a.mean() if a.size else np.nan,
           "mean_control": b.mean() if b.size else np.nan,
           "claimed_delta": np.nan if claimed_delta is None else float(claimed_delta)}
    out["delta"] = out["mean_treatment"] - out["mean_control"]
    nan_keys = ("delta_ci_low", "delta_ci_high", "delta_t_ci_low", "delta_t_ci_high",
                "welch_p", "claim_p", "mannwhitney_p", "hedges_g",
                "p_improvement", "p_improvement_ci_low", "p_improvement_ci_high", "pooled_sd",
                "min_detectable_delta", "seeds_needed")
    out.update(dict.fromkeys(nan_keys, np.nan))
    out.update(_paired_tests(*_paired(a, b, treatment_seeds, control_seeds)))
    if a.size < 2 or b.size < 2:
        return out

    def boot_ci(statistic):
        ci = stats.bootstrap((a, b), statistic, n_resamples=n_resamples, vectorized=True,
                             confidence_level=CONFIDENCE, method="percentile",
                             rng=gen).confidence_interval
        return ci.low, ci.high

    u = stats.mannwhitneyu(a, b, alternative="two-sided")
    out["delta_ci_low"], out["delta_ci_high"] = boot_ci(_mean_difference)
    out["p_improvement_ci_low"], out["p_improvement_ci_high"] = boot_ci(_prob_improvement)
    welch = stats.ttest_ind(a, b, equal_var=False)
    out["delta_t_ci_low"], out["delta_t_ci_high"] = welch.confidence_interval(CONFIDENCE)
    if claimed_delta is not None:
        out["claim_p"] = stats.ttest_ind(a - claimed_delta, b, equal_var=False).pvalue
    out.update(welch_p=welch.pvalue, mannwhitney_p=u.pvalue,
               p_improvement=u.statistic / (a.size * b.size), hedges_g=hedges_g(a, b))
    out.update(_power_figures(a.size, b.size, _pooled_sd(a, b), alpha, claimed_delta))
    return out


def _power_figures(n_treatment: int, n_control: int, sd: float, alpha: float,
                   claimed_delta: float | None) -> dict[str, float]:
    """pooled_sd; min_detectable_delta: the accuracy difference a two-sided two-sample t-test
    detects with 80% power at these n's; seeds_needed: n per arm to detect `claimed_delta`
    with 80% power. Both NaN when the pooled SD is 0 (or the claim is missing or 0)."""
    out = {"pooled_sd": sd, "min_detectable_delta": np.nan, "seeds_needed": np.nan}
    if not sd > 0:
        return out
    power = TTestIndPower()
    common = {"alpha": alpha, "alternative": "two-sided"}
    effect = power.solve_power(nobs1=n_treatment, ratio=n_control / n_treatment, power=POWER,
                               **common)
    out["min_detectable_delta"] = float(effect) * sd
    if claimed_delta:
        # statsmodels' noncentral t turns NaN beyond ~6 SDs, so larger effects are clipped to 6:
        # exact below, an upper bound above (6 SDs already needs only 2 seeds at alpha = 0.05)
        needed = {"effect_size": min(abs(claimed_delta) / sd, 6.0), "ratio": 1.0, **common}
        if power.power(nobs1=2, **needed) >= POWER:  # the root finder fails below n = 2
            out["seeds_needed"] = 2
        else:
            out["seeds_needed"] = math.ceil(float(power.solve_power(power=POWER, **needed)))
    return out


def _paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    out = {"n_pairs": a.size, "paired_t_p": np.nan, "wilcoxon_p": np.nan}
    if a.size >= 2:
        out["paired_t_p"] = stats.ttest_rel(a, b).pvalue
        if np.any(a != b):
            out["wilcoxon_p"] = stats.wilcoxon(a, b).pvalue
    return out


def compare_runs(df: pd.DataFrame, *, treatment: Mapping[str, object],
                 control: Mapping[str, object], metric: str = "test_accuracy",
                 **compare_kwargs) -> dict[str, float]:
    """compare() on two arms of a run table, each selected by {column: value}, paired by seed,
    using completed runs and reporting n_diverged / n_excluded per arm."""
    arms = {}
    for name, where in (("treatment", treatment), ("control", control)):
        rows = df
        for column, value in where.items():
            if column not in df.columns:
                raise KeyError(f"{name} selects on column {column!r}, which the run table "
                               f"lacks; columns are {list(df.columns)}.")
            rows = rows[rows[column] == value]
        if rows.empty:
            raise ValueError(f"{name} {dict(where)} selects no runs; check the comparison's "
                             "names against the run table.")
        arms[name] = _completed(rows, metric)
    (t, t_div, t_exc), (c, c_div, c_exc) = arms["treatment"], arms["control"]
    result = compare(t[metric], c[metric], treatment_seeds=t["seed"], control_seeds=c["seed"],
                     **compare_kwargs)
    return {**result, "n_diverged_treatment": t_div, "n_excluded_treatment": t_exc,
            "n_diverged_control": c_div, "n_excluded_control": c_exc}


def adjust(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Family-wise ("holm") or false-discovery-rate ("fdr_bh") adjusted p-values via statsmodels.

    NaN p-values (comparisons without enough runs) stay NaN and do not count in the family.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method=method)[1]
    return out


def compare_family(comparisons: pd.DataFrame | Sequence[Mapping[str, object]], *,
                   method: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """The comparisons (rows of compare() results) with `p_adjusted` and `claim_p_adjusted`:
    `welch_p` and `claim_p` each adjusted across the family by `method`, and a `verdict` per
    row from its own `claimed_delta`."""
    table = pd.DataFrame(list(comparisons) if not isinstance(comparisons, pd.DataFrame)
                         else comparisons).reset_index(drop=True)
    table["p_adjusted"] = adjust(table[PRIMARY_TEST], method)
    claim_p = table[CLAIM_TEST] if CLAIM_TEST in table else np.full(len(table), np.nan)
    table["claim_p_adjusted"] = adjust(claim_p, method)
    table["adjust_method"] = method
    table["verdict"] = [verdict(row, claimed_delta=row.get("claimed_delta"), alpha=alpha)
                        for row in table.to_dict("records")]
    return table


def verdict(result: Mapping[str, float], *, claimed_delta: float | None,
            alpha: float = 0.05) -> str:
    """"reproduced", "contradicted" or "inconclusive" for one compare() result; see VERDICT_RULE.

    Reads `p_adjusted` / `claim_p_adjusted` when compare_family has set them, else the raw
    `welch_p` / `claim_p` (a family of one). `claim_p` must have been computed for the same
    `claimed_delta`. Without a claimed delta (None or NaN) the verdict is "inconclusive".
    """
    p = result.get("p_adjusted", result[PRIMARY_TEST])
    p_claim = result.get("claim_p_adjusted", result.get(CLAIM_TEST, np.nan))
    low, high, delta = result["delta_ci_low"], result["delta_ci_high"], result["delta"]
    if claimed_delta is None or not np.isfinite(claimed_delta) or not np.isfinite(p):
        return "inconclusive"
    significant = p < alpha
    if claimed_delta == 0:
        return "contradicted" if significant else "inconclusive"
    sign = np.sign(claimed_delta)
    if significant and np.sign(delta) == sign and (low > 0 if sign > 0 else high < 0):
        return "reproduced"
    if p_claim < alpha and (delta < claimed_delta if sign > 0 else delta > claimed_delta):
        return "contradicted"
    if significant and np.sign(delta) == -sign:
        return "contradicted"
    return "inconclusive"


def sweep(df: pd.DataFrame, axis: str, default: object, *, metric: str = "test_accuracy",
          method: str = "holm") -> dict[str, object]:
    """Effect of one sweep axis (e.g. smoothness 1, 2, 4, 8, 16) within one study and dataset.

    Returns Kruskal-Wallis and one-way ANOVA p across the levels (NaN with fewer than two
    levels), n_diverged / n_excluded, and `pairwise`: per level, Welch's t-test against the
    `default` level with p adjusted across the non-default levels by `method`.
    """
    done, n_diverged, n_excluded = _completed(df, metric)
    groups = {level: g[metric].to_numpy() for level, g in done.groupby(axis, sort=True)}
    if default not in groups:
        raise ValueError(f"default {axis}={default!r} has no completed runs; levels with "
                         f"completed runs are {list(groups)}.")
    samples = list(groups.values())
    several = len(samples) >= 2
    rows = [{axis: level, "n": x.size, "mean": x.mean(),
             "delta": x.mean() - groups[default].mean(),
             "welch_p": stats.ttest_ind(x, groups[default], equal_var=False).pvalue}
            for level, x in groups.items() if level != default]
    pairwise = pd.DataFrame(rows, columns=[axis, "n", "mean", "delta", "welch_p"])
    pairwise["p_adjusted"] = adjust(pairwise["welch_p"], method)
    return {"axis": axis, "default": default, "levels": list(groups),
            "kruskal_p": stats.kruskal(*samples).pvalue if several else np.nan,
            "anova_p": stats.f_oneway(*samples).pvalue if several else np.nan,
            "n_diverged": n_diverged, "n_excluded": n_excluded, "pairwise": pairwise}
