"""The paper's claims, tested: the config's `comparisons` against the run table.

Each comparison names a study, a treatment and a control arm ({run-table column: value}), the
`by` columns that split it (one test per dataset and recipe, say), the paper's numbers per
dataset and, optionally, reference numbers (the official DiffStride README's) with the
`where` they were measured under (recipe, block, architecture): they stand beside a row only
when its runs were trained that way. Here they
become the claims table: one row per comparison and `by` combination, with the statistics
and verdict of analysis.stats, every row in one family for the multiple-testing correction.
The helpers that read the config (`analysis_settings`, `as_filters`, `select_runs`, ...) are
shared with analysis.tables and analysis.figures.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis import stats
from analysis.collect import DATASET, RECIPE, VARIANT, in_study

CLAIM_COLUMNS = ("claim", "dataset", "paper_value", "paper_delta", "mean", "std", "n", "delta",
                 "ci_low", "ci_high", "p_holm", "verdict")
LABELS = {DATASET: "dataset", RECIPE: "recipe"}  # config keys -> table column names
# The claims table's columns after CLAIM_COLUMNS and the `by` columns, as compare_runs and
# _claim_rows name them; CLAIM_RENAMES gives the table's names where they differ.
CLAIM_EXTRAS = (
    "paper_control", "reference_control", "reference_treatment", "treatment_minus_reference",
    "n_control", "mean_control", "std_control", "n_diverged_treatment", "n_excluded_treatment",
    "n_diverged_control", "n_excluded_control", "welch_p", "claim_p", "claim_p_adjusted",
    "adjust_method", "delta_t_ci_low", "delta_t_ci_high", "mannwhitney_p", "n_pairs",
    "paired_t_p", "wilcoxon_p", "hedges_g", "p_improvement", "p_improvement_ci_low",
    "p_improvement_ci_high", "pooled_sd", "min_detectable_delta", "seeds_needed",
    "treatment", "control", "note")
CLAIM_RENAMES = {"mean_control": "control_mean", "std_control": "control_std",
                 "n_diverged_treatment": "n_diverged", "n_excluded_treatment": "n_excluded"}


def p_column(method: str) -> str:
    """The adjusted-p column's name says its correction: `p_holm`, `p_fdr_bh`."""
    return f"p_{method}"


def claim_columns(method: str = "holm") -> list[str]:
    """The claims table's leading columns; the p column is named after the correction."""
    return [p_column(method) if c == "p_holm" else c for c in CLAIM_COLUMNS]


def analysis_settings(config: Mapping) -> tuple[float, str, str]:
    """(alpha, correction, metric) from the config's `analysis` section, with defaults."""
    section = config.get("analysis") or {}
    return (float(section.get("alpha", 0.05)), str(section.get("correction", "holm")),
            str(section.get("metric", "test_accuracy")))


def as_cell(value: object) -> str:
    """A config value as runs.csv spells it (the rule of hybrid.studies.axis_value, which the
    analysis may not import): lists "+"-joined, a (vertical, horizontal) pair inside a list
    "VxH", a mapping "key=value" pairs "+"-joined, whole floats of at least 1 without ".0"
    (a default of 4.0 matches the column's "4"), anything else str()."""
    if isinstance(value, Mapping):
        return "+".join(f"{k}={as_cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return "+".join("x".join(as_cell(x) for x in v) if isinstance(v, (list, tuple)) else as_cell(v)
                        for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return str(value)


def as_filters(filters: Mapping[str, object]) -> dict[str, object]:
    """An arm's {column: value} from the config, values spelled as in runs.csv."""
    return {column: int(value) if column == "seed" else as_cell(value)
            for column, value in filters.items()}


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """A KeyError naming `what` (a comparison, a sweep) and the columns the table lacks."""
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise KeyError(f"{what} names columns {absent} that the run table lacks; its columns "
                       f"are {list(table.columns)}. Fix the config or regenerate runs.csv.")


def select_runs(table: pd.DataFrame, where: Mapping[str, object]) -> pd.DataFrame:
    """The rows whose every `where` column holds its value."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def group_runs(table: pd.DataFrame, by: Sequence[str]):
    """(labels dict, rows) per combination of `by`, in order of first appearance."""
    if not by:
        yield {}, table
        return
    for key, rows in table.groupby(list(by), sort=False, dropna=False):
        yield dict(zip(by, key if isinstance(key, tuple) else (key,))), rows


def completed_runs(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The completed runs that have a `metric` value: what analysis.stats compares."""
    return rows[(rows["status"] == "completed") & rows[metric].notna()]


def completed_values(rows: pd.DataFrame, metric: str) -> pd.Series:
    return completed_runs(rows, metric)[metric]


def claims_table(runs_table: pd.DataFrame, config: Mapping, *, rng: stats.Rng = 0,
                 n_resamples: int = stats.N_RESAMPLES) -> pd.DataFrame:
    """One row per comparison of `config["comparisons"]` and combination of its `by` columns.

    The leading columns are `claim_columns(method)`: the paper's treatment number and claimed
    delta (treatment - control) for the row's dataset; mean, std and n of the treatment arm's
    completed runs; delta and its bootstrap 95% CI (stats.compare); the p of delta = 0
    adjusted across all rows by the config's correction (`p_holm`, or `p_fdr_bh`); the verdict
    (stats.VERDICT_RULE). Appended: the other `by` columns, the control arm, the official
    reference numbers (`reference_control` beside the paper's control) where the row's runs
    hold the reference's `where` (its recipe, block, architecture), every other
    statistic of stats.compare_runs, and a `note`. A dataset without a `paper` entry (e.g. the
    demo's synthetic data) has no claimed delta: its delta and p are still reported, and its
    verdict is "inconclusive", as stats.verdict rules for a missing claim.
    """
    alpha, method, metric = analysis_settings(config)
    rows = []
    for name, spec in (config.get("comparisons") or {}).items():
        rows += _claim_rows(runs_table, name, spec, metric=metric, alpha=alpha, rng=rng,
                            n_resamples=n_resamples)
    if not rows:
        return pd.DataFrame(columns=claim_columns(method))
    family = stats.compare_family(rows, method=method, alpha=alpha)
    leading = {
        "claim": "claim", "dataset": "dataset", "paper_value": "paper_treatment",
        "paper_delta": "claimed_delta", "mean": "mean_treatment", "std": "std_treatment",
        "n": "n_treatment", "delta": "delta", "ci_low": "delta_ci_low",
        "ci_high": "delta_ci_high", p_column(method): "p_adjusted", "verdict": "verdict"}
    table = pd.DataFrame({new: family[old] for new, old in leading.items()})
    comparisons = (config.get("comparisons") or {}).values()
    labels = [c for c in dict.fromkeys(c for spec in comparisons for c in spec.get("by") or [])
              if c != DATASET]
    extra = [*labels, *CLAIM_EXTRAS]
    extra += [c for c in family.columns if c not in extra and c not in leading.values()]
    extra = [c for c in extra if c in family.columns]
    return pd.concat([table, family[extra].rename(columns=CLAIM_RENAMES | LABELS)], axis=1)


def _claim_rows(runs_table: pd.DataFrame, name: str, spec: Mapping, *, metric: str,
                alpha: float, rng: stats.Rng, n_resamples: int) -> list[dict]:
    runs = in_study(runs_table, spec["study"]) if "study" in spec else runs_table
    if runs.empty:
        warnings.warn(f"comparison {name!r}: no run belongs to study {spec.get('study')!r}; "
                      "the comparison is left out of the claims table.", stacklevel=3)
        return []
    treatment, control = as_filters(spec["treatment"]), as_filters(spec["control"])
    by = list(spec.get("by") or [])
    require_columns(runs, [*by, *treatment, *control], f"comparison {name!r}")
    arms = runs[runs.index.isin(select_runs(runs, treatment).index)
                | runs.index.isin(select_runs(runs, control).index)]
    paper, reference = spec.get("paper") or {}, spec.get("reference") or {}
    rows = []
    for labels, group in group_runs(arms, by):
        dataset = labels.get(DATASET, "+".join(pd.unique(group[DATASET])) if DATASET in group
                             else "")
        claim = paper.get(dataset)
        claimed = None if claim is None else claim["treatment"] - claim["control"]
        arm_t, arm_c = select_runs(group, treatment), select_runs(group, control)
        t_values, c_values = completed_values(arm_t, metric), completed_values(arm_c, metric)
        kwargs = dict(alpha=alpha, claimed_delta=claimed, rng=rng, n_resamples=n_resamples)
        notes = [] if claim is not None else [f"no paper number for {dataset}: no claim to test"]
        if arm_t.empty or arm_c.empty:
            notes.append(f"{'treatment' if arm_t.empty else 'control'} has no runs here")
            result = stats.compare(t_values, c_values, **kwargs)
        else:
            try:
                result = stats.compare_runs(group, treatment=treatment, control=control,
                                            metric=metric, **kwargs)
            except ValueError as err:
                raise ValueError(f"comparison {name!r} at {labels}: {err}") from err
        numbers = reference_numbers(reference)
        applies = reference_applies(reference, group)
        if numbers and not applies:
            notes.append("reference numbers are for " + _describe(reference.get("where") or {}))
        refs = {v: acc for (d, v), acc in numbers.items() if d == dataset} if applies else {}
        reference_control = refs.get(control.get(VARIANT), np.nan)
        rows.append({
            "claim": name, "dataset": dataset, **{k: v for k, v in labels.items() if k != DATASET},
            **result,
            "paper_treatment": np.nan if claim is None else claim["treatment"],
            "std_treatment": t_values.std(ddof=1) if len(t_values) > 1 else np.nan,
            "std_control": c_values.std(ddof=1) if len(c_values) > 1 else np.nan,
            "paper_control": np.nan if claim is None else claim["control"],
            "reference_control": reference_control,
            "reference_treatment": refs.get(treatment.get(VARIANT), np.nan),
            "treatment_minus_reference": result["mean_treatment"] - reference_control,
            "treatment": _describe(treatment), "control": _describe(control),
            "note": "; ".join(notes)})
    return rows


def _describe(where: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def claims_note(config: Mapping) -> str:
    """What the claims table's columns and verdicts mean, for the .md and .tex files."""
    alpha, method, _ = analysis_settings(config)
    sources = {(spec.get("reference") or {}).get("source") for spec in
               (config.get("comparisons") or {}).values()} - {None}
    return (f"Verdict rule (alpha = {alpha}, correction {method}): {stats.VERDICT_RULE} "
            "paper_value: the paper's single run of the treatment; paper_delta: its claimed "
            "treatment - control. reference_control: " + ("; ".join(sorted(sources)) or "none")
            + ".")


def reference_numbers(reference: Mapping) -> dict[tuple[str, str], float]:
    """{(dataset, variant): accuracy} of a comparison's `reference` (its other keys, `source`
    and `where`, say where the numbers come from)."""
    return {(dataset, variant): acc for dataset, accs in reference.items()
            if dataset not in ("source", "where") and isinstance(accs, Mapping)
            for variant, acc in accs.items()}


def reference_applies(reference: Mapping, runs: pd.DataFrame) -> bool:
    """Whether a comparison's reference numbers describe these runs: there are runs, and
    every one holds the reference's `where` ({run-table column: value}, e.g. its recipe,
    block and architecture). A reference measured under another recipe or network is not a
    baseline for these runs, so its numbers are left out rather than shown beside them."""
    where = as_filters(reference.get("where") or {})
    if runs.empty or not where or any(c not in runs.columns for c in where):
        return False
    return len(select_runs(runs, where)) == len(runs)


def paper_numbers(config: Mapping, study: str) -> tuple[dict, list[tuple[Mapping, dict]]]:
    """({(dataset, variant): paper accuracy}, [(reference, {(dataset, variant): accuracy})])
    from the comparisons of `study` whose arms select a variant (one source of truth: the
    config); each reference keeps its spec, for `reference_applies`."""
    paper, references = {}, []
    for spec in (config.get("comparisons") or {}).values():
        if spec.get("study") != study:
            continue
        for dataset, numbers in (spec.get("paper") or {}).items():
            for arm in ("treatment", "control"):
                variant = (spec.get(arm) or {}).get(VARIANT)
                if variant is not None and arm in numbers:
                    paper[(dataset, as_cell(variant))] = numbers[arm]
        reference = spec.get("reference") or {}
        numbers = reference_numbers(reference)
        if numbers and all(r is not reference for r, _ in references):
            references.append((reference, numbers))
    return paper, references


def reference_number(references: list[tuple[Mapping, dict]], dataset: str, variant: str,
                     runs: pd.DataFrame) -> float:
    """The reference accuracy of (dataset, variant) that applies to `runs`, else NaN."""
    for reference, numbers in references:
        if (dataset, variant) in numbers and reference_applies(reference, runs):
            return numbers[(dataset, variant)]
    return np.nan
