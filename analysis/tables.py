"""The reproduction's tables, from the run table and the workflow config, as CSV, Markdown and
LaTeX (booktabs).

    python -m analysis.tables --runs-table results/runs_table.csv --config CONFIG.yaml \\
        --out results/tables

writes, under --out, `<name>.csv`, `<name>.md` and `<name>.tex` for
- `claims`: one row per comparison of `comparisons` and combination of its `by` columns:
  the paper's numbers, the treatment arm over seeds, delta with the Welch interval
  (Bonferroni over the row's family: confirmatory rows have a paper number, exploratory
  rows do not) that decides the verdict of `analysis.stats.VERDICT_RULE`, both arms' runs,
  failures (diverged, collapsed) and flagged runs, and the seeds the rule needs;
- one table per variant study (`pooling`, and any other study that varies `variant` and is
  no sweep's, e.g. `first_release`, `arch`): accuracy, cost and time per recipe (and the
  study's other axes), dataset and variant;
- one table per entry of `sweeps` (e.g. `smoothness`, `placement`, `init_stride`): each level
  against the sweep's default, per combination of the sweep's `by` columns;
- `verdicts` (with comparisons): the short table of the claims (analysis.verdicts): delta and
  its interval in percentage points, the paper's delta, the verdict, n per arm;
- `status`: runs per study, dataset and status (completed, diverged, missing, corrupt).
A table whose study has no runs, or is absent from the config, is skipped with a note.
Beside them, for the report: `runs.html` (every run, sortable and filterable, from
analysis.report) and `landing.html` (the forest plot and the verdict table that the
report's landing page embeds).

The CSV keeps every statistic at full precision, accuracies as fractions in [0, 1] (as in
result.json and the config's paper numbers; the verdict table's `*_pp` columns are in
points). What a reader sees (.md, .tex, .html) is in percent for accuracies and percentage
points for differences, each such column's name ending in (%) or (pp), and shows only the
columns a reader needs.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis import stats
from analysis.claims import (  # noqa: F401  (claims_table and CLAIM_COLUMNS: tables' API too)
    CLAIM_COLUMNS,
    LABELS,
    analysis_settings,
    as_cell,
    claim_columns,
    claims_note,
    claims_table,
    flag_runs,
    group_runs,
    p_column,
    paper_numbers,
    reference_number,
    require_columns,
    select_runs,
)
from analysis.collect import (DATASET, VARIANT, in_study, read_runs_table, status_counts, study_rows,
                              user_errors, variant_studies)
from analysis.looks import SEQUENTIAL_VERDICTS, looks_of, sequential_tables
from analysis.runs_page import runs_page
from analysis.table_files import (  # noqa: F401  (the writers: tables' API too)
    DISPLAY_NAMES,
    HTML_STYLE,
    format_cell,
    html_table,
    tex_escape,
    to_html,
    to_latex,
    to_markdown,
    with_units,
    write_table,
)
from analysis.verdicts import VERDICT_NOTE, family_titles, landing_fragment, verdict_display, verdict_table

POOLING_STUDY = "pooling"
LANDING_NOTE = ("delta: treatment minus control, final-epoch test accuracy, in percentage "
                "points (pp), with the Welch interval that decided its verdict (Bonferroni "
                "over the row's family, at the level shown), drawn where both arms have at "
                "least 3 runs that did not fail; paper delta: the paper's single-run claim; "
                "n: runs per arm that did not fail; failed: diverged or collapsed runs.")
# The claims table's displayed columns in the reader's units (the CSV keeps fractions).
CLAIM_UNITS = {"paper_delta": "pp", "delta": "pp", "ci_low": "pp", "ci_high": "pp",
               "pi_low": "pp", "pi_high": "pp", "paper_value": "%", "mean": "%", "std": "pp",
               "iqm_delta": "pp", "reference_control": "%"}


def _pct(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if np.isfinite(std) else "")


def _in_config_study(runs_table: pd.DataFrame, config: Mapping, study: str) -> str | None:
    """Why a study's table is skipped, or None when it has runs."""
    studies = config.get("studies")
    if isinstance(studies, Mapping) and study not in studies:
        return f"study {study!r} is not in the config's studies"
    if in_study(runs_table, study).empty:
        return f"no run belongs to study {study!r}"
    return None


# -- pooling study --------------------------------------------------------------------------

def pooling_table(runs_table: pd.DataFrame, config: Mapping, *,
                  study: str = POOLING_STUDY) -> pd.DataFrame:
    """Per recipe (and any other key the study varies, e.g. the architecture), dataset and
    variant of `study`: the metric's n, mean, std, t 95% CI, median and interquartile mean
    over completed runs (with diverged, excluded and flagged counts), the paper's numbers and the official reference's where
    its recipe and network are the row's, parameters, MFLOPs at the learned strides,
    training hours and throughput (means over completed runs)."""
    metric = analysis_settings(config).metric
    runs = in_study(flag_runs(runs_table, config), study)
    by = [*study_rows(config, study, runs), *(c for c in (DATASET, VARIANT) if c in runs.columns)]
    summary = stats.summarise(runs, by, metric)
    done = runs[runs["status"] == "completed"]
    wanted = {"params": ("params", "median", 1), "mflops": ("flops", "mean", 1e6),
              "mflops_std": ("flops", "std", 1e6), "train_time_h": ("train_time_s", "mean", 3600),
              "images_per_s": ("images_per_s", "mean", 1)}
    table = summary
    for name, (column, how, unit) in wanted.items():
        if column in done.columns:
            values = done.groupby(by, dropna=False)[column].agg(how) / unit
            table = table.merge(values.rename(name).reset_index(), on=by, how="left")
        else:
            table[name] = np.nan
    paper, references = paper_numbers(config, study)
    records = table.to_dict("records")
    key = [(r.get(DATASET, ""), r.get(VARIANT, "")) for r in records]
    table["accuracy_pct"] = [_pct(m, s) for m, s in zip(table["mean"], table["std"])]
    table["paper"] = [paper.get(k, np.nan) for k in key]
    table["reference"] = [reference_number(references, *k, select_runs(runs, {c: r[c] for c in by}))
                          for k, r in zip(key, records)]
    table = table.rename(columns={"t_ci_low": "ci_low", "t_ci_high": "ci_high"})
    columns = [*by, "n", "n_runs", "n_diverged", "n_excluded", "n_flagged", "mean", "std",
               "ci_low", "ci_high", "median", "iqm", "accuracy_pct", "paper", "reference", "params", "mflops",
               "mflops_std", "train_time_h", "images_per_s"]
    return _in_run_order(table[columns], runs, by).rename(columns=LABELS)


def _in_run_order(table: pd.DataFrame, runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Rows ordered as their values first appear in runs.csv (the config's order)."""
    order = {c: {v: i for i, v in enumerate(pd.unique(runs[c]))} for c in by}
    keys = pd.DataFrame({c: table[c].map(order[c]) for c in by})
    return table.iloc[np.lexsort([keys[c] for c in reversed(by)])].reset_index(drop=True)


# -- sweeps ---------------------------------------------------------------------------------

def level_order(levels: Sequence[str]) -> list[str]:
    """Sweep levels numerically when they are all numbers, else in the given order."""
    levels = list(dict.fromkeys(levels))
    try:
        return sorted(levels, key=float)
    except (TypeError, ValueError):
        return levels


def is_ordered(spec: Mapping, levels: Sequence[str]) -> bool:
    """Whether a sweep's levels are ordered (a trend test applies): the spec's `ordered`,
    else whether every level is a number."""
    if "ordered" in spec:
        return bool(spec["ordered"])
    try:
        [float(level) for level in levels]
    except (TypeError, ValueError):
        return False
    return True


def sweep_table(runs_table: pd.DataFrame, spec: Mapping, *, metric: str = "test_accuracy",
                method: str = "holm") -> pd.DataFrame:
    """One row per combination of the sweep's `by` columns and level of its `axis`: n, mean,
    std, t 95% CI and median over completed runs, delta against the `default` level with its
    raw p (stats.two_sample_p) and that p adjusted by `method` across every non-default
    level of every group in the table (`p_holm` or `p_fdr_bh`: the table is one family),
    the group's Kruskal-Wallis and one-way ANOVA p and, for an ordered axis (is_ordered),
    the group's trend per level step with its p adjusted across the table's groups
    (`trend_p_holm`). A group whose default level has no completed run gets NaN
    statistics and a `note`."""
    runs = in_study(flag_runs(runs_table, {"analysis": {"metric": metric}}), spec["study"])
    axis, default, by = spec["axis"], as_cell(spec["default"]), list(spec.get("by") or [])
    require_columns(runs, [axis, *by], f"sweep of study {spec['study']!r}")
    order = level_order(pd.unique(runs[axis]))
    ordered = is_ordered(spec, order)
    rows, trend_ps = [], []
    for labels, group in group_runs(runs, by):
        summary = stats.summarise(group, axis, metric).set_index(axis)
        try:
            result = stats.sweep(group, axis, default, metric=metric,
                                 order=order if ordered else None)
            pairwise, note = result["pairwise"].set_index(axis), ""
        except ValueError as err:
            result = {k: np.nan for k in ("kruskal_p", "anova_p", "trend_per_level", "trend_p")}
            pairwise, note = pd.DataFrame(columns=["delta", "p"]), str(err)
        trend_ps.append(result["trend_p"])
        for level in level_order(pd.unique(group[axis])):
            cell, is_default = summary.loc[level], level == default
            pair = pairwise.loc[level] if level in pairwise.index else {}
            rows.append({
                **labels, axis: level, "default": is_default,
                **{k: int(cell[k]) for k in ("n", "n_runs", "n_diverged", "n_excluded",
                                             "n_flagged")},
                "mean": cell["mean"], "std": cell["std"], "median": cell["median"],
                "ci_low": cell["t_ci_low"], "ci_high": cell["t_ci_high"],
                "accuracy_pct": _pct(cell["mean"], cell["std"]),
                "delta": 0.0 if is_default and not note else pair.get("delta", np.nan),
                "p": pair.get("p", np.nan), "kruskal_p": result["kruskal_p"],
                "anova_p": result["anova_p"], "trend_per_level": result["trend_per_level"],
                "trend_p": result["trend_p"], "group": len(trend_ps) - 1, "note": note})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = _with_compute(table, runs, [*by, axis])
    table.insert(table.columns.get_loc("kruskal_p"), p_column(method),
                 stats.adjust(table["p"], method))
    trend_adjusted = stats.adjust(trend_ps, method)
    table.insert(table.columns.get_loc("note"), p_column(method, "trend_p"),
                 trend_adjusted[table.pop("group")])
    return table.rename(columns=LABELS)


# What each level's nets compute: FLOPs of one image and the last stage's map, at the
# initial strides (from the config) and at the learned ones (at the end of training). A
# sweep of R compares nets of very different cost: on 32 px DiffStride at R 8 or 16 starts
# without downsampling (a 32x32 last map, where R 4 keeps 18x18 and a strided net 4x4).
COMPUTE = {"mflops_initial": ("initial_cost/flops", 1e6), "final_map_initial": ("initial_cost/final_map", None),
           "mflops_learned": ("flops", 1e6), "final_map_learned": ("cost/final_map", None)}


def _with_compute(table: pd.DataFrame, runs: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """`table` with COMPUTE's columns beside each cell (mean MFLOPs; the most common map
    over the cell's completed runs), where the result files hold them."""
    completed = runs[runs["status"] == "completed"] if "status" in runs else runs
    for name, (column, unit) in COMPUTE.items():
        if column not in completed or completed[column].isna().all():
            continue
        cells = completed.groupby(cell, sort=False, dropna=False)[column]
        values = cells.mean() / unit if unit else cells.agg(lambda v: v.mode().iloc[0] if v.notna().any() else "")
        table = table.merge(values.rename(name).reset_index(), on=cell, how="left")
    return table


def outliers_table(runs_table: pd.DataFrame, config: Mapping) -> pd.DataFrame:
    """The runs stats.OUTLIER_RULE flags, with their cell's median, robust z and size."""
    flagged = flag_runs(runs_table, config)
    metric = analysis_settings(config).metric
    columns = [c for c in ("run_id", "name", "studies", "seed", metric, "cell_median",
                           "robust_z", "cell_n") if c in flagged.columns]
    return flagged.loc[flagged["outlier"].fillna(False).astype(bool), columns].reset_index(drop=True)


def status_table(runs_table: pd.DataFrame) -> pd.DataFrame:
    """Runs per study, dataset and status (collect.status_counts) under the tables' names."""
    return status_counts(runs_table).rename(columns=LABELS)


def make_tables(runs_table: pd.DataFrame, config: Mapping, out: str | Path, *,
                pooling_study: str = POOLING_STUDY,
                candidates: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Every table the config asks for, written under `out`; notes on skipped ones printed.
    A sequential study's `candidates` (every run its design may train) weigh its GPU-hours
    against the fixed design's."""
    out = Path(out)
    settings = analysis_settings(config)
    method, metric = settings.correction, settings.metric
    runs_table = flag_runs(runs_table, config)
    written = {"status": write_table(status_table(runs_table), out / "status",
                                     note="Runs per study, dataset and status."),
               "outliers": write_table(outliers_table(runs_table, config), out / "outliers",
                                       units={metric: "%", "cell_median": "%"},
                                       note=stats.outlier_rule(settings.outlier_z,
                                                                 settings.outlier_min_gap))}
    claims = None
    if config.get("comparisons"):
        looks = looks_of(runs_table, config)
        claims = claims_table(runs_table, config, looks)
        if looks is not None:
            written.update(sequential_tables(runs_table, looks, candidates, out))
        verdicts = verdict_table(claims)
        display = verdict_display(verdicts)
        written["verdicts"] = write_table(verdicts, out / "verdicts", display=display,
                                          note=VERDICT_NOTE + ("" if looks is None else
                                                               " " + SEQUENTIAL_VERDICTS))
        # one table per family under its heading (which names it: no family column)
        sections = "".join(
            f"<h4>{title}</h4>{html_table(display[display['family'] == family].drop(columns='family'))}"
            for family, title in family_titles(claims).items())
        (out / "landing.html").write_text(landing_fragment(claims, sections, note=LANDING_NOTE + (
            "" if looks is None else " " + SEQUENTIAL_VERDICTS)))
        shown = ["claim", "dataset", "recipe", "paper_delta", "delta", "ci_low", "ci_high",
                 "ci_level", "verdict", "family", "family_size", "n", "n_control",
                 "n_failed", "n_failed_control", "n_diverged", "n_diverged_control",
                 "n_collapsed", "n_collapsed_control", "n_flagged", "n_flagged_control",
                 "failure_p", "seeds_needed", "seeds_needed_sd_upper",
                 *(p_column(method, t) for t in ("p0", "p_claim", "p_tost")),
                 "pi_low", "pi_high", "paper_in_pi", "paper_value", "mean", "std",
                 "iqm_delta", "reference_control", "note"]
        written["claims"] = write_table(claims, out / "claims", columns=shown,
                                        units=CLAIM_UNITS, note=claims_note(config, claims))
    else:
        print("note: the config has no comparisons; claims table skipped")
        (out / "landing.html").write_text(landing_fragment(None, "", note=""))
    (out / "runs.html").write_text(runs_page(runs_table, config))
    for study in variant_studies(config) or [pooling_study]:
        if skip := _in_config_study(runs_table, config, study):
            print(f"note: {skip}; {study} table skipped")
            continue
        table = pooling_table(runs_table, config, study=study)
        axes = table.columns[:list(table.columns).index("n")]  # recipe, the study's axes, dataset, variant
        shown = [*axes, "accuracy_pct", "median", "iqm", "n", "n_runs", "n_diverged",
                 "n_flagged", "paper", "reference", "params", "mflops", "train_time_h"]
        units = {"median": "%", "iqm": "%", "paper": "%", "reference": "%"}
        note = (f"{metric} mean ± std (%) over the n completed runs of n_runs (the others "
                "diverged, are missing or corrupt), with the median and interquartile mean "
                "(iqm), all in percent as are paper and reference (the CSV keeps fractions); "
                "n_flagged: runs far from their cell (see the outliers table); paper: "
                "the hybrid paper's single runs; reference: the official DiffStride numbers, "
                "shown only where the rows' runs were trained as the reference was (its "
                "recipe, block and architecture).")
        written[study] = write_table(table, out / study, columns=shown, units=units, note=note)
    for name, spec in (config.get("sweeps") or {}).items():
        if skip := _in_config_study(runs_table, config, spec["study"]):
            print(f"note: {skip}; sweep table {name!r} skipped")
            continue
        table = sweep_table(runs_table, spec, metric=metric, method=method)
        ordered = table["trend_p"].notna().any()
        shown = [*[LABELS.get(c, c) for c in spec.get("by") or []], spec["axis"], "default",
                 "accuracy_pct", "median", "n", "n_runs", "n_diverged", "n_flagged", "delta",
                 p_column(method), *(["trend_per_level", p_column(method, "trend_p")]
                                     if ordered else []), "kruskal_p", "anova_p",
                 *(c for c in COMPUTE if c in table), "note"]
        written[name] = write_table(table, out / name, columns=shown,
                                    units={"median": "%", "delta": "pp",
                                           "trend_per_level": "pp"},
                                    note=sweep_note(spec, settings, ordered))
    return written


def sweep_note(spec: Mapping, settings, ordered: bool) -> str:
    """What a sweep table's columns mean, naming the configured correction."""
    method = settings.correction
    return (f"{settings.metric} per level of {spec['axis']} (default "
            f"{as_cell(spec['default'])}), in percent; delta against the default in "
            "percentage points (the CSV keeps fractions) with Welch's p (an exact "
            f"permutation p where neither level varies), {method}-adjusted across every level "
            f"of every group in this table (one family, so the table's familywise error "
            f"stays at {settings.alpha:g}; a family of its own, apart from the claims' "
            "confirmatory and exploratory families); Kruskal-Wallis and ANOVA p across all "
            "levels of a group, uncorrected" + (
                f"; trend_per_level: the least-squares change in {settings.metric} (points) per "
                f"level step, its p {method}-adjusted across the table's groups (the trend "
                "family of this table)" if ordered else "") + "; mflops and final_map: one "
            "image's forward FLOPs (millions) and the last stage's map at the initial strides "
            "and at the learned ones, so that levels of very different cost are seen as such.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-table", required=True, type=Path,
                        help="runs_table.csv from analysis.collect")
    parser.add_argument("--config", required=True, type=Path, help="the workflow config YAML")
    parser.add_argument("--out", required=True, type=Path, help="directory for the tables")
    parser.add_argument("--candidates", type=Path, default=None,
                        help="a sequential study's candidates.csv (every run its design may train)")
    parser.add_argument("--pooling-study", default=POOLING_STUDY,
                        help=f"study of the pooling-variants table (default {POOLING_STUDY})")
    args = parser.parse_args(argv)
    with user_errors(parser):
        config = yaml.safe_load(args.config.read_text()) or {}
        candidates = (pd.read_csv(args.candidates, dtype=str, keep_default_na=False)
                      if args.candidates else None)
        written = make_tables(read_runs_table(args.runs_table), config, args.out,
                              pooling_study=args.pooling_study, candidates=candidates)
        print(f"wrote {len(written)} tables to {args.out}: {', '.join(written)}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
