"""The paper's claims, tested: the config's `comparisons` against the run table.

Each comparison names a study, a treatment and a control arm ({run-table column: value}), the
`by` columns that split it (one test per dataset and recipe, say), the paper's numbers per
dataset and, optionally, reference numbers (the official DiffStride README's) with the
`where` they were measured under (recipe, block, architecture): they stand beside a row only
when its runs were trained that way. Here they
become the claims table: one row per comparison and `by` combination, with the statistics
and verdict of analysis.stats: rows with a paper number in the confirmatory family, the others
in the exploratory family, each corrected among themselves.
The helpers that read the config (`analysis_settings`, `as_filters`, `select_runs`, ...) are
shared with analysis.tables and analysis.figures.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from analysis import stats
from analysis.collect import DATASET, RECIPE, VARIANT, config_columns, in_study

CLAIM_COLUMNS = ("claim", "dataset", "paper_value", "paper_delta", "mean", "std", "n", "delta",
                 "ci_low", "ci_high", "ci_level", "verdict", "family", "family_size",
                 "failures", "failure_p", "p0_holm", "p_claim_holm", "p_tost_holm", "pi_low",
                 "pi_high", "paper_in_pi")
LABELS = {DATASET: "dataset", RECIPE: "recipe"}  # config keys -> table column names
# The claims table's columns after CLAIM_COLUMNS and the `by` columns, fixed whatever the data,
# as compare_runs and _claim_rows name them; CLAIM_RENAMES gives the table's names where
# they differ.
CLAIM_EXTRAS = (
    "paper_control", "reference_control", "reference_treatment", "treatment_minus_reference",
    "n_control", "mean_control", "std_control", "median_treatment", "median_control",
    "iqm_treatment", "iqm_control", "iqm_delta", "n_runs_treatment", "n_runs_control",
    "n_failed_treatment", "n_failed_control", "n_diverged_treatment", "n_diverged_control",
    "n_collapsed_treatment", "n_collapsed_control", "n_flagged_treatment", "n_flagged_control",
    "n_excluded_treatment", "n_excluded_control", "test", "p0", "p_claim", "p_tost",
    "equivalence_margin", "claim_tolerance", "adjust_method", "paper_treatment_in_pi",
    "paper_control_in_pi", "treatment_pi_low", "treatment_pi_high", "control_pi_low",
    "control_pi_high", "mannwhitney_p", "mannwhitney_method", "mannwhitney_min_p", "n_pairs",
    "pairing", "paired_t_p", "wilcoxon_p", "wilcoxon_min_p", "hedges_g", "p_improvement",
    "p_improvement_ci_low", "p_improvement_ci_high", "pooled_sd", "sd_upper",
    "min_detectable_delta", "seeds_needed", "seeds_needed_sd_upper", "treatment", "control",
    "note")
CLAIM_RENAMES = {"mean_control": "control_mean", "std_control": "control_std",
                 "n_runs_treatment": "n_runs", "n_failed_treatment": "n_failed",
                 "n_diverged_treatment": "n_diverged", "n_collapsed_treatment": "n_collapsed",
                 "n_excluded_treatment": "n_excluded", "n_flagged_treatment": "n_flagged"}
# claims-table column -> compare_family column, for the leading columns
_LEADING = {
    "claim": "claim", "dataset": "dataset", "paper_value": "paper_treatment",
    "paper_delta": "claimed_delta", "mean": "mean_treatment", "std": "std_treatment",
    "n": "n_treatment", "delta": "delta", "ci_low": "delta_ci_low", "ci_high": "delta_ci_high",
    "ci_level": "ci_level", "verdict": "verdict", "family": "family",
    "family_size": "family_size", "failures": "failures", "failure_p": "failure_p",
    "p0_holm": "p0_adjusted", "p_claim_holm": "p_claim_adjusted",
    "p_tost_holm": "p_tost_adjusted", "pi_low": "pair_pi_low", "pi_high": "pair_pi_high",
    "paper_in_pi": "paper_in_pi"}


def p_column(method: str, test: str = "p") -> str:
    """An adjusted-p column's name says its correction: `p_holm`, `p0_fdr_bh`."""
    return f"{test}_{method}"


def claim_columns(method: str = "holm") -> list[str]:
    """The claims table's leading columns; the adjusted p columns are named after the
    correction."""
    return [c.replace("_holm", f"_{method}") for c in CLAIM_COLUMNS]


@dataclass(frozen=True)
class AnalysisSettings:
    """The config's `analysis` section, with its defaults."""
    alpha: float = stats.ALPHA
    correction: str = "holm"  # or fdr_bh
    metric: str = "test_accuracy"
    equivalence_margin: float = stats.EQUIVALENCE_MARGIN
    claim_tolerance: float = stats.CLAIM_TOLERANCE
    collapse_gap: float = stats.COLLAPSE_GAP
    outlier_z: float = stats.OUTLIER_Z
    outlier_min_gap: float = stats.OUTLIER_MIN_GAP


def analysis_settings(config: Mapping) -> AnalysisSettings:
    """The config's `analysis` section as AnalysisSettings (defaults for absent keys)."""
    section = config.get("analysis") or {}
    known = {f.name: f.type for f in fields(AnalysisSettings)}
    unknown = set(section) - set(known)
    if unknown:
        raise KeyError(f"analysis section has unknown keys {sorted(unknown)}; known keys are "
                       f"{sorted(known)}.")
    return AnalysisSettings(**{k: (str(v) if known[k] == "str" else float(v))
                               for k, v in section.items()})


def flag_runs(runs_table: pd.DataFrame, config: Mapping) -> pd.DataFrame:
    """The run table with stats.outlier_flags' columns (`outlier`, `robust_z`, `cell_median`,
    `cell_n`) by cell: the runs that differ only in seed (collect.config_columns). A table
    that has them already is returned as it is."""
    settings = analysis_settings(config)
    if "outlier" in runs_table:
        return runs_table
    if runs_table.empty:
        return runs_table.assign(outlier=pd.Series(dtype=bool))
    flags = stats.outlier_flags(runs_table, config_columns(runs_table), settings.metric,
                                z=settings.outlier_z, min_gap=settings.outlier_min_gap)
    return pd.concat([runs_table.drop(columns=flags.columns, errors="ignore"), flags], axis=1)


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


def claims_table(runs_table: pd.DataFrame, config: Mapping,
                 looks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per comparison of `config["comparisons"]` and combination of its `by` columns.

    The leading columns are `claim_columns(method)`: the paper's treatment number and claimed
    delta (treatment - control) for the row's dataset; mean, std and n of the treatment arm's
    runs that did not fail; delta and the Welch interval that decides the verdict
    (stats.VERDICT_RULE: Bonferroni over the row's family, at `ci_level`); the `family`
    (confirmatory: rows with a paper number; exploratory: the rest) and its size; each
    arm's failures (diverged or collapsed) and Fisher's p between them; p0, p_claim and
    p_tost adjusted within the family by the config's correction (for reference; they
    decide nothing); the 95% prediction interval of one treatment-minus-control pair
    and whether the paper's single-run delta lies in it. Then the other `by` columns and
    CLAIM_EXTRAS: the control arm, robust summaries, flagged runs, the official reference
    numbers (`reference_control` beside the paper's control) where the row's runs hold the
    reference's `where` (its recipe, block, architecture), every other statistic of
    stats.compare_runs, and a `note`. The columns are the same whatever the data. A dataset
    without a `paper` entry (e.g. the demo's synthetic data) has no claimed delta: its
    verdict says only what the data show (higher, lower, no effect, inconclusive).

    A sequential study passes its `looks` (analysis.looks.replay): each row is then read
    at the look where it stopped, over its arms' seeds of that stage only, and its
    interval, level, family size and verdict are that look's repeated interval's.
    """
    settings = analysis_settings(config)
    method = settings.correction
    comparisons = config.get("comparisons") or {}
    labels = [c for c in dict.fromkeys(c for spec in comparisons.values()
                                       for c in spec.get("by") or []) if c != DATASET]
    columns = [*claim_columns(method), *(LABELS.get(c, c) for c in labels),
               *(CLAIM_RENAMES.get(c, c) for c in CLAIM_EXTRAS)]
    flagged = flag_runs(runs_table, config)
    rows = []
    stops = None if looks is None else looks.set_index("key")
    for name, spec in comparisons.items():
        rows += _claim_rows(flagged, name, spec, settings, stops)
    if not rows:
        return pd.DataFrame(columns=columns)
    family = stats.compare_family(rows, method=method, alpha=settings.alpha)
    if stops is not None:  # each row at its look: the repeated interval decides
        at = stops.loc[[row["key"] for row in rows]]
        for ours, theirs in (("family_size", "family_size"), ("ci_level", "ci_level"),
                             ("delta_ci_low", "ci_low"), ("delta_ci_high", "ci_high"),
                             ("verdict", "verdict")):
            family[ours] = at[theirs].to_numpy()
    family["paper_in_pi"] = _inside(family["claimed_delta"], family["pair_pi_low"],
                                    family["pair_pi_high"])
    for arm in ("treatment", "control"):
        family[f"paper_{arm}_in_pi"] = _inside(family[f"paper_{arm}"], family[f"{arm}_pi_low"],
                                               family[f"{arm}_pi_high"])
    leading = {new.replace("_holm", f"_{method}"): old for new, old in _LEADING.items()}
    table = family.rename(columns={old: new for new, old in leading.items()} | CLAIM_RENAMES
                          | LABELS).reindex(columns=columns)
    # the confirmatory family first, then the exploratory one: two sections of one table,
    # each in the config's order
    order = np.argsort((table["family"] != "confirmatory").to_numpy(), kind="stable")
    return table.iloc[order].reset_index(drop=True)


def planned_families(runs_table: pd.DataFrame, config: Mapping) -> dict[str, int]:
    """The claims table's rows before any run has finished, by family: {"confirmatory":
    rows with a paper number, "exploratory": the rest}. The workflow prints it when it
    starts, so a dry run shows the size each confirmatory row is corrected over."""
    sizes = {"confirmatory": 0, "exploratory": 0}
    for name, spec in (config.get("comparisons") or {}).items():
        for _, _, dataset in comparison_groups(runs_table, name, spec):
            sizes["confirmatory" if dataset in (spec.get("paper") or {}) else "exploratory"] += 1
    return sizes


def comparison_groups(runs_table: pd.DataFrame, name: str, spec: Mapping):
    """(labels, rows of both arms, dataset) per combination of the comparison's `by`
    columns, over the runs of its study; nothing (and a warning) where the study has none."""
    runs = in_study(runs_table, spec["study"]) if "study" in spec else runs_table
    if runs.empty:
        warnings.warn(f"comparison {name!r}: no run belongs to study {spec.get('study')!r}; "
                      "the comparison is left out of the claims table.", stacklevel=3)
        return
    treatment, control = as_filters(spec["treatment"]), as_filters(spec["control"])
    by = list(spec.get("by") or [])
    require_columns(runs, [*by, *treatment, *control], f"comparison {name!r}")
    arms = runs[runs.index.isin(select_runs(runs, treatment).index)
                | runs.index.isin(select_runs(runs, control).index)]
    for labels, group in group_runs(arms, by):
        dataset = labels.get(DATASET, "+".join(pd.unique(group[DATASET])) if DATASET in group
                             else "")
        yield labels, group, dataset


def _inside(value: pd.Series, low: pd.Series, high: pd.Series) -> pd.Series:
    """True / False where value and interval are known, else None (shown as n/a)."""
    known = value.notna() & low.notna() & high.notna()
    inside = (value >= low) & (value <= high)
    return inside.astype(object).where(known, None)


def row_key(claim: str, labels: Mapping[str, object]) -> str:
    """A claims row's name in a sequential study's looks: its comparison and `by` values."""
    return " · ".join([claim, *(f"{k}={v}" for k, v in labels.items())])


def _claim_rows(runs_table: pd.DataFrame, name: str, spec: Mapping,
                settings: AnalysisSettings, stops: pd.DataFrame | None = None) -> list[dict]:
    treatment, control = as_filters(spec["treatment"]), as_filters(spec["control"])
    paper, reference = spec.get("paper") or {}, spec.get("reference") or {}
    metric = settings.metric
    rows = []
    for labels, group, dataset in comparison_groups(runs_table, name, spec):
        claim = paper.get(dataset)
        claimed = None if claim is None else claim["treatment"] - claim["control"]
        arm_t, arm_c = select_runs(group, treatment), select_runs(group, control)
        key, notes = row_key(name, labels), []
        if stops is not None:  # a sequential row reads its seeds at the look it stopped at
            stop = stops.loc[key]
            arm_t, arm_c = arm_t[arm_t["seed"] < stop["seeds"]], arm_c[arm_c["seed"] < stop["seeds"]]
            notes.append(f"sequential: {stop['state']} at look {stop['look'] + 1} of {stop['looks']} "
                         f"({stop['seeds']} seeds per arm, {stop['alpha_spent']:.3g} of its alpha spent)")
        kwargs = dict(alpha=settings.alpha, claimed_delta=claimed,
                      margin=settings.equivalence_margin, tolerance=settings.claim_tolerance,
                      collapse_gap=settings.collapse_gap)
        notes += [] if claim is not None else [f"no paper number for {dataset}: no claim to test"]
        if arm_t.empty or arm_c.empty:
            notes.append(f"{'treatment' if arm_t.empty else 'control'} has no runs here")
        done_t, done_c = completed_runs(arm_t, metric), completed_runs(arm_c, metric)
        result = stats.compare(done_t[metric], done_c[metric], treatment_seeds=done_t["seed"],
                               control_seeds=done_c["seed"], **kwargs)
        result |= stats.arm_counts(arm_t, metric, "treatment") | stats.arm_counts(arm_c, metric,
                                                                                 "control")
        notes += _result_notes(result, settings.alpha)
        numbers = reference_numbers(reference)
        applies = reference_applies(reference, group)
        if numbers and not applies:
            notes.append("reference numbers are for " + _describe(reference.get("where") or {}))
        refs = {v: acc for (d, v), acc in numbers.items() if d == dataset} if applies else {}
        reference_control = refs.get(control.get(VARIANT), np.nan)
        paper_t = np.nan if claim is None else claim["treatment"]
        paper_c = np.nan if claim is None else claim["control"]
        rows.append({
            "key": key, "claim": name, "dataset": dataset, **{k: v for k, v in labels.items() if k != DATASET},
            **result, "paper_treatment": paper_t, "paper_control": paper_c,
            "reference_control": reference_control,
            "reference_treatment": refs.get(treatment.get(VARIANT), np.nan),
            "treatment_minus_reference": result["mean_treatment"] - reference_control,
            "treatment": _describe(treatment), "control": _describe(control),
            "note": "; ".join(notes)})
    return rows


def _result_notes(result: Mapping, alpha: float) -> list[str]:
    """What a reader must know to read a row: paired tests skipped, the permutation test
    standing in for Welch, rank tests that cannot reach alpha, flagged runs."""
    notes = []
    if result["pairing"] not in ("by seed", "no seeds given"):
        notes.append(result["pairing"])
    if result["test"] == "permutation":
        notes.append("neither arm varies: no interval, so no label (p0, p_claim and p_tost "
                     "are exact permutation tests)")
    for arm in ("treatment", "control"):
        if result.get(f"n_collapsed_{arm}"):
            notes.append(f"{result[f'n_collapsed_{arm}']} collapsed {arm} run(s) left out of "
                         "the interval and counted as failures")
    for test, label, size in (("mannwhitney", "Mann-Whitney", f"{result['n_treatment']} vs "
                               f"{result['n_control']} runs"),
                              ("wilcoxon", "Wilcoxon", f"{result['n_pairs']} pairs")):
        floor = result[f"{test}_min_p"]
        if np.isfinite(floor) and floor >= alpha:
            notes.append(f"{label} over {size} cannot reach p < {alpha:g} (its smallest p is "
                         f"{floor:.3g})")
    for arm in ("treatment", "control"):
        if result.get(f"n_flagged_{arm}"):
            notes.append(f"{result[f'n_flagged_{arm}']} flagged {arm} run(s) (see outliers)")
    return notes


def _describe(where: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items())


def claims_note(config: Mapping, table: pd.DataFrame | None = None) -> str:
    """What the claims table's columns and verdicts mean, and, per row with a paper number,
    a sentence on the paper's single-run delta against our prediction interval."""
    settings = analysis_settings(config)
    sources = {(spec.get("reference") or {}).get("source") for spec in
               (config.get("comparisons") or {}).values()} - {None}
    text = (f"Verdict rule (alpha = {settings.alpha:g}, equivalence margin e = "
            f"{settings.equivalence_margin:g}, claim tolerance m = {settings.claim_tolerance:g}, "
            f"collapse gap {settings.collapse_gap:g}): {stats.VERDICT_RULE} "
            f"{stats.COLLAPSE_RULE} {family_sentence(table)}"
            f"The p-value columns are {settings.correction}-adjusted within each family. "
            f"{COVERAGE_NOTE} "
            "Accuracies are in percent (%), differences in percentage points (pp); claims.csv "
            "keeps both as fractions. "
            "paper_value: the paper's single run of the treatment; paper_delta: its claimed "
            "treatment - control; pi_low, pi_high: the 95% prediction interval of one "
            "treatment-minus-control pair of runs like ours, the yardstick for a single-run "
            "delta; paper_in_pi: whether the paper's delta lies in it. seeds_needed and "
            "seeds_needed_sd_upper: the seeds per arm the rule needs for an 80% chance of "
            "'reproduced' if the true delta were the claimed one, at the pooled SD and at its "
            "upper 95% bound (sd_upper), in the row's family. reference_control: "
            + ("; ".join(sorted(sources)) or "none") + ".")
    return "\n".join([text, *single_run_sentences(table)] if table is not None else [text])


COVERAGE_NOTE = (
    "The intervals' coverage assumes roughly normal runs: measured by simulation at 5 "
    "seeds, a nominal 95% Welch interval covers 88-90% on skewed runs and 14-41% when 5% "
    "of runs collapse, which is why collapsed runs are failures and not data.")


def family_sentence(table: pd.DataFrame | None) -> str:
    """'Confirmatory family: 14 rows (Bonferroni over 14); exploratory family: 10 rows.'"""
    if table is None or table.empty or "family" not in table:
        return ""
    parts = []
    for family in ("confirmatory", "exploratory"):
        rows = table[table["family"] == family]
        if len(rows):
            size = int(rows["family_size"].iloc[0])
            parts.append(f"{family} family: {len(rows)} rows, {size} with an interval "
                         f"(Bonferroni over {size}, each interval at "
                         f"{100 * float(rows['ci_level'].iloc[0]):.3g}%)")
    return "; ".join(parts).capitalize() + ". "


def single_run_sentences(table: pd.DataFrame) -> list[str]:
    """One plain sentence per claims row with a paper delta and a prediction interval."""
    sentences = []
    for row in table.to_dict("records"):
        if row.get("paper_in_pi") is None or pd.isna(row.get("paper_in_pi")):
            continue
        where = ", ".join(str(row[c]) for c in ("dataset", "recipe") if c in row and
                          isinstance(row[c], str) and row[c])
        verb = "lies inside" if row["paper_in_pi"] else "lies outside"
        sentences.append(
            f"{row['claim']} ({where}): the paper's single-run delta "
            f"{100 * row['paper_delta']:+.2f} pp {verb} the range [{100 * row['pi_low']:+.2f}, "
            f"{100 * row['pi_high']:+.2f}] pp where 95% of "
            f"single treatment-minus-control pairs of our runs would fall"
            + ("." if row["paper_in_pi"] else "; one run pair like ours would rarely show it."))
    return sentences


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
