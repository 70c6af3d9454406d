"""Statistics of the reproduction: pure functions from accuracies and tidy run tables to numbers.

In the spirit of rliable: no plotting, no file I/O, nothing that needs a GPU. The input table
has one row per training run with at least `seed`, `status` ("completed" or "diverged") and the
metric (`test_accuracy`, final-epoch accuracy in [0, 1]) plus axis columns such as `study`,
`dataset`, `variant`. Statistics use completed runs only, and every summary reports how many
runs it excluded. The tests and intervals are analysis.inference's (scipy calls and cited
formulas); the verdict is analysis.verdict_rule's, one interval per row read against 0,
the equivalence margin and the claim's tolerance band, a rule that the tables and the
simulations behind `seeds_needed` share. Simulations take a seed, so the same inputs give
the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import inference
from analysis.inference import CONFIDENCE
from analysis.verdict_rule import (  # noqa: F401  (the rule's names are stats' API too)
    ALPHA,
    CLAIM_TOLERANCE,
    COLLAPSE_GAP,
    COLLAPSE_RULE,
    EQUIVALENCE_MARGIN,
    MAX_SEEDS,
    MIN_RUNS_FOR_INTERVAL,
    POWER,
    POWER_KEYS,
    SIMULATIONS,
    VERDICT_RULE,
    collapsed,
    failure_p,
    failures_text,
    family_level,
    labels,
    power_figures,
    reproduced_rate,
    sd_upper,
    seeds_for_power,
    seeds_needed,
    welch_interval,
)

OUTLIER_Z = 3.5  # robust z beyond which a run is flagged (Iglewicz and Hoaglin's 3.5)
OUTLIER_MIN_GAP = 0.01  # ... and at least this far from its cell's median
ADJUSTED = {"p0": "p0_adjusted", "p_claim": "p_claim_adjusted", "p_tost": "p_tost_adjusted"}

INTERVAL_RULE = (
    f"An interval (a mean's t 95% interval, a band, a delta's Welch interval) is drawn only "
    f"where every cell it describes has at least {MIN_RUNS_FOR_INTERVAL} completed runs: at "
    "2 runs the t quantile is 12.7, and the interval would span tens of points, so it is "
    "left out (the figure says 'n = 2: no interval'), never clipped. The CSV tables keep "
    "every interval the statistics computed."
)


def outlier_rule(z: float = OUTLIER_Z, min_gap: float = OUTLIER_MIN_GAP) -> str:
    """The outlier rule's text for these settings (`analysis.outlier_z`, `outlier_min_gap`)."""
    return (f"A completed run is flagged when its metric lies more than {z:g} robust SDs "
            f"(1.4826 x the median absolute deviation) and more than {min_gap:g} from the "
            "median of its cell (the runs that differ only in seed; cells of 3 or more "
            "completed runs). Flagged runs stay in every statistic; they are listed, counted, and "
            "the median and interquartile mean stand beside each mean. A flagged run that "
            "also collapsed (far below its arm, analysis.collapse_gap) is a failure: the "
            "claims' intervals leave it out and count it.")


OUTLIER_RULE = outlier_rule()


# -- cells ----------------------------------------------------------------------------------

def cell_summary(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """n, mean, std (ddof=1), median, interquartile mean and the Student t interval of the
    mean. Quantities that need more runs than there are (std and CI below n = 2) are NaN."""
    x = np.asarray(values, dtype=float)
    out = {"n": x.size, "mean": np.nan, "std": np.nan, "median": np.nan, "iqm": np.nan,
           "t_ci_low": np.nan, "t_ci_high": np.nan}
    if x.size:
        out.update(mean=x.mean(), median=np.median(x), iqm=float(inference.iqm(x)))
    if x.size >= 2:
        low, high = inference.mean_interval(x, confidence)
        out.update(std=x.std(ddof=1), t_ci_low=float(low), t_ci_high=float(high))
    return out


def _completed(df: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, int, int]:
    """The completed runs with a metric value, plus counts of diverged and all excluded runs."""
    missing = {"seed", "status", metric} - set(df.columns)
    if missing:
        raise KeyError(f"run table lacks columns {sorted(missing)}; has {list(df.columns)}. "
                       "Collect results with seed, status and the metric per run.")
    keep = (df["status"] == "completed") & df[metric].notna()
    return df[keep], int((df["status"] == "diverged").sum()), int((~keep).sum())


def _n_flagged(rows: pd.DataFrame) -> int:
    return int(rows["outlier"].fillna(False).astype(bool).sum()) if "outlier" in rows else 0


def summarise(df: pd.DataFrame, by: str | Sequence[str],
              metric: str = "test_accuracy") -> pd.DataFrame:
    """One row per cell of `by` (e.g. study x dataset x variant): cell_summary of the completed
    runs' `metric`, plus n_runs, n_diverged, n_excluded (diverged, other statuses, or a
    completed run without a metric value) and n_flagged (runs `outlier_flags` marked)."""
    by = [by] if isinstance(by, str) else list(by)
    rows = []
    for key, cell in df.groupby(by, sort=True, dropna=False):
        done, n_diverged, n_excluded = _completed(cell, metric)
        rows.append({**dict(zip(by, key)), "n_runs": len(cell), "n_diverged": n_diverged,
                     "n_excluded": n_excluded, "n_flagged": _n_flagged(done),
                     **cell_summary(done[metric])})
    return pd.DataFrame(rows)


def flag_outliers(values: Sequence[float], *, z: float = OUTLIER_Z,
                  min_gap: float = OUTLIER_MIN_GAP) -> np.ndarray:
    """Which values OUTLIER_RULE flags within one cell (none below 3 values)."""
    x = np.asarray(values, dtype=float)
    if x.size < 3:
        return np.zeros(x.size, dtype=bool)
    return (np.abs(inference.robust_z(x)) > z) & (np.abs(x - np.median(x)) > min_gap)


def outlier_flags(df: pd.DataFrame, cells: Sequence[str], metric: str = "test_accuracy", *,
                  z: float = OUTLIER_Z, min_gap: float = OUTLIER_MIN_GAP) -> pd.DataFrame:
    """Per completed run: its cell's median and n, its robust z and whether it is flagged
    (OUTLIER_RULE), indexed like `df`; runs that are not completed get flagged = False."""
    done, _, _ = _completed(df, metric)
    out = pd.DataFrame({"cell_median": np.nan, "cell_n": 0, "robust_z": np.nan,
                        "outlier": False}, index=df.index)
    for _, cell in done.groupby(list(cells), sort=False, dropna=False):
        x = cell[metric].to_numpy(dtype=float)
        out.loc[cell.index, "cell_median"] = np.median(x)
        out.loc[cell.index, "cell_n"] = x.size
        out.loc[cell.index, "robust_z"] = inference.robust_z(x) if x.size >= 3 else np.nan
        out.loc[cell.index, "outlier"] = flag_outliers(x, z=z, min_gap=min_gap)
    return out


# -- one comparison -------------------------------------------------------------------------

def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a - mean b) / pooled SD, times the small-sample correction 1 - 3 / (4 df - 1),
    df = n_a + n_b - 2. NaN when either arm has fewer than 2 values or the pooled SD is 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    sd = _pooled_sd(a, b)
    if not sd > 0:
        return np.nan
    dof = a.size + b.size - 2
    return (1 - 3 / (4 * dof - 1)) * (a.mean() - b.mean()) / sd


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or b.size < 2:
        return np.nan
    dof = a.size + b.size - 2
    return float(np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / dof))


def _no_spread(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.ptp(a) == 0 and np.ptp(b) == 0)


def two_sample_p(a: np.ndarray, b: np.ndarray, *, shift: float = 0.0,
                 alternative: str = "two-sided") -> float:
    """Welch's p of mean(a) - mean(b) = shift, or the exact permutation p where neither arm
    varies (Welch's standard error is then 0 and its p a meaningless 0)."""
    if _no_spread(a, b):
        return inference.permutation_p(a, b, shift=shift, alternative=alternative)
    return float(inference.welch(a, b, shift=shift, alternative=alternative).pvalue)


def _paired(treatment: np.ndarray, control: np.ndarray, treatment_seeds: Sequence[int] | None,
            control_seeds: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """The two arms restricted to their shared seeds, ordered by seed, and how they were
    paired. Pairing is skipped, and said, when an arm repeats a seed (a comparison whose `by`
    leaves out an axis has several runs per seed)."""
    if treatment_seeds is None or control_seeds is None:
        return np.empty(0), np.empty(0), "no seeds given"
    arms = []
    for name, values, seeds in (("treatment", treatment, treatment_seeds),
                                ("control", control, control_seeds)):
        seeds = np.asarray(seeds)
        if seeds.size != values.size:
            raise ValueError(f"{name}_seeds must list one seed per {name} value; got "
                             f"{seeds.size} seeds for {values.size} values.")
        if np.unique(seeds).size != seeds.size:
            return (np.empty(0), np.empty(0), f"pairing skipped: the {name} arm repeats seeds "
                    "(its `by` leaves out an axis?)")
        arms.append(pd.Series(values, index=seeds))
    shared = sorted(set(arms[0].index) & set(arms[1].index))
    return arms[0][shared].to_numpy(), arms[1][shared].to_numpy(), "by seed"


def _paired_tests(a: np.ndarray, b: np.ndarray, pairing: str) -> dict[str, object]:
    out = {"n_pairs": a.size, "pairing": pairing, "paired_t_p": np.nan, "wilcoxon_p": np.nan,
           "wilcoxon_min_p": inference.min_p_wilcoxon(a.size)}
    if a.size >= 2 and np.ptp(a - b) > 0:
        out["paired_t_p"] = stats.ttest_rel(a, b).pvalue
        out["wilcoxon_p"] = inference.wilcoxon_p(a, b)
    return out


COMPARE_KEYS = (
    "n_treatment", "n_control", "n_collapsed_treatment", "n_collapsed_control",
    "mean_treatment", "mean_control", "std_treatment", "std_control",
    "median_treatment", "median_control", "iqm_treatment", "iqm_control", "claimed_delta",
    "equivalence_margin", "claim_tolerance", "delta", "iqm_delta", "delta_ci_low",
    "delta_ci_high", "ci_level", "family", "family_size", "verdict", "test", "p0", "p_claim",
    "p_tost", "mannwhitney_p", "mannwhitney_method", "mannwhitney_min_p", "n_pairs",
    "pairing", "paired_t_p", "wilcoxon_p", "wilcoxon_min_p", "hedges_g", "p_improvement",
    "p_improvement_ci_low", "p_improvement_ci_high", "pair_pi_low", "pair_pi_high",
    "treatment_pi_low", "treatment_pi_high", "control_pi_low", "control_pi_high", "pooled_sd",
    "sd_upper", "min_detectable_delta", "seeds_needed", "seeds_needed_sd_upper")


def compare(treatment: Sequence[float], control: Sequence[float], *,
            treatment_seeds: Sequence[int] | None = None,
            control_seeds: Sequence[int] | None = None, alpha: float = ALPHA,
            claimed_delta: float | None = None, margin: float = EQUIVALENCE_MARGIN,
            tolerance: float = CLAIM_TOLERANCE, collapse_gap: float = COLLAPSE_GAP,
            rng: int = 0) -> dict[str, object]:
    """One comparison of treatment against control accuracies (delta = treatment - control),
    read as a family of one (compare_family re-reads rows in their family); the keys are
    COMPARE_KEYS whatever the data (NaN where there are too few runs).

    Collapsed runs (verdict_rule.COLLAPSE_RULE) are counted and left out of everything.
    Then: the arms' n, mean, std, median and interquartile mean; delta with the Welch
    interval at 1 - alpha that decides the `verdict` (VERDICT_RULE); the raw p0, p_claim and
    p_tost, for reference (`test` says Welch or, where neither arm varies, permutation);
    Mann-Whitney p (`mannwhitney_method` says how it was computed) and the smallest p its
    sizes allow; paired t and Wilcoxon over runs paired by seed; Hedges' g;
    P(treatment > control) with Newcombe's interval; 95% prediction intervals for one
    treatment run, one control run and one treatment-minus-control pair (the yardsticks for
    the paper's single runs); the power figures of `power_figures`.
    """
    a_all, b_all = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    gone_a, gone_b = collapsed(a_all, collapse_gap), collapsed(b_all, collapse_gap)
    a, b = a_all[~gone_a], b_all[~gone_b]
    claim = np.nan if claimed_delta is None else float(claimed_delta)
    out = dict.fromkeys(COMPARE_KEYS, np.nan)
    out.update(n_treatment=a.size, n_control=b.size, n_collapsed_treatment=int(gone_a.sum()),
               n_collapsed_control=int(gone_b.sum()), claimed_delta=claim,
               equivalence_margin=margin, claim_tolerance=tolerance, test="",
               mannwhitney_method="", family=family_name(claim), family_size=1)
    for arm, x in (("treatment", a), ("control", b)):
        summary = cell_summary(x)
        out.update({f"{k}_{arm}": summary[k] for k in ("mean", "std", "median", "iqm")})
    out["delta"] = out["mean_treatment"] - out["mean_control"]
    out["iqm_delta"] = out["iqm_treatment"] - out["iqm_control"]
    for name, s, x in (("treatment", treatment_seeds, a_all), ("control", control_seeds, b_all)):
        if s is not None and np.size(s) != x.size:
            raise ValueError(f"{name}_seeds must list one seed per {name} value; got "
                             f"{np.size(s)} seeds for {x.size} values.")
    seeds = [None if s is None else np.asarray(s)[~gone] for s, gone in
             ((treatment_seeds, gone_a), (control_seeds, gone_b))]
    out.update(_paired_tests(*_paired(a, b, *seeds)))
    if a.size and b.size:
        out["mannwhitney_min_p"] = inference.min_p_mannwhitney(a.size, b.size)
    decided = decide(out, alpha=alpha, family_size=1)
    out.update({k: str(v) if k == "verdict" else float(v) for k, v in decided.items()})
    if a.size < 2 or b.size < 2:
        return out
    out["test"] = "permutation" if _no_spread(a, b) else "welch"
    out["p0"] = two_sample_p(a, b)
    if np.isfinite(claim):
        out["p_claim"] = two_sample_p(a, b, shift=claim)
    out["p_tost"] = max(two_sample_p(a, b, shift=-margin, alternative="greater"),
                        two_sample_p(a, b, shift=margin, alternative="less"))
    if out["test"] == "welch":
        out["pair_pi_low"], out["pair_pi_high"] = map(float, inference.pair_prediction_interval(a, b))
    for arm, x in (("treatment", a), ("control", b)):
        out[f"{arm}_pi_low"], out[f"{arm}_pi_high"] = map(float, inference.prediction_interval(x))
    theta = inference.superiority(a, b)
    low, high = inference.superiority_interval(theta, a.size, b.size)
    out.update(mannwhitney_p=inference.mannwhitney_p(a, b),
               mannwhitney_method=inference.mannwhitney_method(a, b),
               hedges_g=hedges_g(a, b), p_improvement=float(theta),
               p_improvement_ci_low=float(low), p_improvement_ci_high=float(high),
               pooled_sd=_pooled_sd(a, b))
    return out


def compare_runs(df: pd.DataFrame, *, treatment: Mapping[str, object],
                 control: Mapping[str, object], metric: str = "test_accuracy",
                 **compare_kwargs) -> dict[str, object]:
    """compare() on two arms of a run table, each selected by {column: value}, paired by seed,
    using completed runs and reporting n_diverged / n_excluded / n_flagged per arm."""
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
        arms[name] = rows
    t, c = (_completed(arms[name], metric)[0] for name in ("treatment", "control"))
    result = compare(t[metric], c[metric], treatment_seeds=t["seed"], control_seeds=c["seed"],
                     **compare_kwargs)
    return (result | arm_counts(arms["treatment"], metric, "treatment")
            | arm_counts(arms["control"], metric, "control"))


def arm_counts(rows: pd.DataFrame, metric: str, arm: str) -> dict[str, int]:
    """n_diverged_<arm>, n_excluded_<arm> and n_flagged_<arm> of an arm's runs."""
    done, n_diverged, n_excluded = _completed(rows, metric)
    return {f"n_diverged_{arm}": n_diverged, f"n_excluded_{arm}": n_excluded,
            f"n_flagged_{arm}": _n_flagged(done)}


# -- verdicts: one interval per row, in its family ------------------------------------------

def family_name(claimed_delta) -> np.ndarray | str:
    """'confirmatory' where the row has a paper number (a claimed delta), else 'exploratory'."""
    return np.where(np.isfinite(np.asarray(claimed_delta, dtype=float)), "confirmatory",
                    "exploratory")[()]


def decide(rows: Mapping | pd.DataFrame, *, alpha: float = ALPHA,
           family_size=1) -> dict[str, np.ndarray]:
    """ci_level, the deciding interval (delta_ci_low, delta_ci_high) and the verdict of rows
    (a compare() result, or a table of them) in families of `family_size`: VERDICT_RULE."""
    get = (lambda k: np.asarray(rows[k], dtype=float))
    level = family_level(alpha, family_size) * np.ones_like(get("delta"))
    low, high = welch_interval(get("mean_treatment"), get("std_treatment"), get("n_treatment"),
                               get("mean_control"), get("std_control"), get("n_control"), level)
    verdict_ = labels(low, high, get("claimed_delta"), get("equivalence_margin"),
                      get("claim_tolerance"))
    return {"ci_level": level[()], "delta_ci_low": low[()], "delta_ci_high": high[()],
            "verdict": verdict_[()]}


def verdict(result: Mapping[str, float], *, alpha: float = ALPHA) -> str:
    """The verdict of one compare() result by VERDICT_RULE, in its `family_size`."""
    return str(decide(result, alpha=alpha, family_size=result.get("family_size", 1))["verdict"])


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
                   method: str = "holm", alpha: float = ALPHA, rng: int = 0) -> pd.DataFrame:
    """The comparisons (rows of compare() results) read in their families (VERDICT_RULE):
    `family` (confirmatory: rows with a claimed delta; exploratory: the rest), `family_size`
    (the family's rows whose arms each have MIN_RUNS_FOR_INTERVAL runs), the Bonferroni
    interval at `ci_level` and the `verdict` it decides; p0, p_claim and p_tost adjusted by
    `method` within each family (`*_adjusted`, for reference); the failures of each arm
    (`failures`, Fisher's `failure_p`); the power figures at the family's size."""
    table = pd.DataFrame(list(comparisons) if not isinstance(comparisons, pd.DataFrame)
                         else comparisons).reset_index(drop=True)
    for arm in ("treatment", "control"):
        for count in ("n_diverged", "n_collapsed"):
            if f"{count}_{arm}" not in table:
                table[f"{count}_{arm}"] = 0
    table["family"] = family_name(table["claimed_delta"].astype(float))
    eligible = ((table["n_treatment"] >= MIN_RUNS_FOR_INTERVAL)
                & (table["n_control"] >= MIN_RUNS_FOR_INTERVAL))
    table["family_size"] = eligible.groupby(table["family"]).transform("sum").astype(int)
    for key, value in decide(table, alpha=alpha, family_size=table["family_size"]).items():
        table[key] = value
    for raw, adjusted in ADJUSTED.items():
        values = table[raw] if raw in table else pd.Series(np.nan, index=table.index)
        table[adjusted] = values.astype(float).groupby(table["family"]).transform(
            lambda p: pd.Series(adjust(p, method), index=p.index))
    table["adjust_method"] = method
    table = pd.concat([table, failure_columns(table)], axis=1)
    power = [power_figures(row["n_treatment"], row["n_control"], row["pooled_sd"], alpha=alpha,
                           claimed_delta=row["claimed_delta"], family_size=row["family_size"],
                           margin=row["equivalence_margin"], tolerance=row["claim_tolerance"],
                           rng=rng) for row in table.to_dict("records")]
    for key in POWER_KEYS:
        table[key] = [figures[key] for figures in power]
    return table


def failure_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Per row and arm: runs (completed + diverged), failed (diverged + collapsed), the
    `failures` sentence ('treatment: 1 of 10 failed (1 collapsed); control: none of 10
    failed') and Fisher's exact `failure_p` between the arms' failure rates."""
    out = pd.DataFrame(index=table.index)
    for arm in ("treatment", "control"):
        diverged = table[f"n_diverged_{arm}"].fillna(0).astype(int)
        collapsed_ = table[f"n_collapsed_{arm}"].fillna(0).astype(int)
        out[f"n_failed_{arm}"] = diverged + collapsed_
        out[f"n_runs_{arm}"] = table[f"n_{arm}"].fillna(0).astype(int) + out[f"n_failed_{arm}"]
        out[f"failures_{arm}"] = [failures_text(f, n, d, c) for f, n, d, c in zip(
            out[f"n_failed_{arm}"], out[f"n_runs_{arm}"], diverged, collapsed_)]
    out["failures"] = ("treatment: " + out.pop("failures_treatment") + "; control: "
                       + out.pop("failures_control"))
    out["failure_p"] = failure_p(out["n_failed_treatment"], out["n_runs_treatment"],
                                 out["n_failed_control"], out["n_runs_control"])
    return out


# -- sweeps ---------------------------------------------------------------------------------

def trend(levels: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    """Least-squares slope of the metric on the level's rank (0, 1, 2, ... in the axis'
    order) and its two-sided p (scipy's linregress): the change per level step of an
    ordered axis. NaN with fewer than two levels or three runs."""
    x, y = np.asarray(levels, dtype=float), np.asarray(values, dtype=float)
    if np.unique(x).size < 2 or y.size < 3 or np.ptp(y) == 0:
        return {"trend_per_level": np.nan, "trend_p": np.nan}
    fit = stats.linregress(x, y)
    return {"trend_per_level": fit.slope, "trend_p": fit.pvalue}


def sweep(df: pd.DataFrame, axis: str, default: object, *, metric: str = "test_accuracy",
          order: Sequence[object] | None = None) -> dict[str, object]:
    """Effect of one sweep axis (e.g. smoothness 1, 2, 4, 8, 16) within one group.

    Returns Kruskal-Wallis and one-way ANOVA p across the levels (NaN with fewer than two
    levels), n_diverged / n_excluded, `pairwise`: per non-default level, delta and the raw
    two-sample p (two_sample_p) against the `default` level, for the caller to adjust across
    its table; and, when `order` lists the levels of an ordered axis, the `trend` over it.
    """
    done, n_diverged, n_excluded = _completed(df, metric)
    groups = {level: g[metric].to_numpy() for level, g in done.groupby(axis, sort=True)}
    if default not in groups:
        raise ValueError(f"default {axis}={default!r} has no completed runs; levels with "
                         f"completed runs are {list(groups)}.")
    samples = [x for x in groups.values()]
    several = len(samples) >= 2 and all(x.size >= 2 for x in samples)
    base = groups[default]
    rows = [{axis: level, "n": x.size, "mean": x.mean(), "delta": x.mean() - base.mean(),
             "p": two_sample_p(x, base) if x.size >= 2 and base.size >= 2 else np.nan}
            for level, x in groups.items() if level != default]
    result = {"axis": axis, "default": default, "levels": list(groups),
              "kruskal_p": np.nan, "anova_p": np.nan, "n_diverged": n_diverged,
              "n_excluded": n_excluded, "trend_per_level": np.nan, "trend_p": np.nan,
              "pairwise": pd.DataFrame(rows, columns=[axis, "n", "mean", "delta", "p"])}
    if several and np.ptp(np.concatenate(samples)) > 0:
        result.update(kruskal_p=stats.kruskal(*samples).pvalue,
                      anova_p=stats.f_oneway(*samples).pvalue)
    if order is not None:
        rank = {level: i for i, level in enumerate(order)}
        result.update(trend(done[axis].map(rank), done[metric]))
    return result
