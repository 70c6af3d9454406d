"""The reproduction's tables, from the run table and the workflow config, as CSV, Markdown and
LaTeX (booktabs).

    python -m analysis.tables --runs-table results/runs_table.csv --config CONFIG.yaml \\
        --out results/tables

writes, under --out, `<name>.csv`, `<name>.md` and `<name>.tex` for
- `claims`: one row per comparison of `comparisons` and combination of its `by` columns:
  the paper's numbers, the treatment arm over seeds, delta with its bootstrap CI, the
  family-adjusted p and the verdict of `analysis.stats.VERDICT_RULE`;
- one table per variant study (`pooling`, and any other study that varies `variant` and is
  no sweep's, e.g. `first_release`, `arch`): accuracy, cost and time per recipe (and the
  study's other axes), dataset and variant;
- one table per entry of `sweeps` (e.g. `smoothness`, `placement`, `init_stride`): each level
  against the sweep's default, per combination of the sweep's `by` columns;
- `status`: runs per study, dataset and status (completed, diverged, missing, corrupt).
A table whose study has no runs, or is absent from the config, is skipped with a note.

Accuracies are fractions in [0, 1] (as in result.json and the config's paper numbers); only
the `accuracy_pct` display column is in percent. The CSV keeps every statistic at full
precision; the .md and .tex files show the columns a reader needs.
"""

from __future__ import annotations

import argparse
import html
import re
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
    group_runs,
    p_column,
    paper_numbers,
    reference_number,
    require_columns,
    select_runs,
)
from analysis.collect import (DATASET, VARIANT, in_study, read_runs_table, status_counts, study_rows,
                              variant_studies)

POOLING_STUDY = "pooling"


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

def pooling_table(runs_table: pd.DataFrame, config: Mapping, *, study: str = POOLING_STUDY,
                  rng: stats.Rng = 0) -> pd.DataFrame:
    """Per recipe (and any other key the study varies, e.g. the architecture), dataset and
    variant of `study`: the metric's n, mean, std and t 95% CI over completed runs (with
    diverged and excluded counts), the paper's numbers and the official reference's where
    its recipe and network are the row's, parameters, MFLOPs at the learned strides,
    training hours and throughput (means over completed runs)."""
    _, _, metric = analysis_settings(config)
    runs = in_study(runs_table, study)
    by = [*study_rows(config, study, runs), *(c for c in (DATASET, VARIANT) if c in runs.columns)]
    summary = stats.summarise(runs, by, metric, rng=rng)
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
    columns = [*by, "n", "n_runs", "n_diverged", "n_excluded", "mean", "std", "ci_low",
               "ci_high", "accuracy_pct", "paper", "reference", "params", "mflops",
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


def sweep_table(runs_table: pd.DataFrame, spec: Mapping, *, metric: str = "test_accuracy",
                method: str = "holm", rng: stats.Rng = 0) -> pd.DataFrame:
    """One row per combination of the sweep's `by` columns and level of its `axis`: n, mean,
    std and t 95% CI over completed runs, delta against the `default` level with Welch's p
    adjusted across the non-default levels (`p_holm` or `p_fdr_bh`), and the group's
    Kruskal-Wallis and one-way ANOVA p (stats.sweep). A group whose default level has no
    completed run gets NaN statistics and a `note`."""
    runs = in_study(runs_table, spec["study"])
    axis, default, by = spec["axis"], as_cell(spec["default"]), list(spec.get("by") or [])
    require_columns(runs, [axis, *by], f"sweep of study {spec['study']!r}")
    p_col = p_column(method)
    rows = []
    for labels, group in group_runs(runs, by):
        summary = stats.summarise(group, axis, metric, rng=rng).set_index(axis)
        try:
            result, note = stats.sweep(group, axis, default, metric=metric, method=method), ""
            pairwise = result["pairwise"].set_index(axis)
        except ValueError as err:
            result = {"kruskal_p": np.nan, "anova_p": np.nan}
            pairwise, note = pd.DataFrame(columns=["delta", "welch_p", "p_adjusted"]), str(err)
        for level in level_order(pd.unique(group[axis])):
            cell, is_default = summary.loc[level], level == default
            pair = pairwise.loc[level] if level in pairwise.index else {}
            delta = 0.0 if is_default and not note else pair.get("delta", np.nan)
            rows.append({
                **labels, axis: level, "default": is_default,
                **{k: int(cell[k]) for k in ("n", "n_runs", "n_diverged", "n_excluded")},
                "mean": cell["mean"], "std": cell["std"],
                "ci_low": cell["t_ci_low"], "ci_high": cell["t_ci_high"],
                "accuracy_pct": _pct(cell["mean"], cell["std"]), "delta": delta,
                "welch_p": pair.get("welch_p", np.nan), p_col: pair.get("p_adjusted", np.nan),
                "kruskal_p": result["kruskal_p"], "anova_p": result["anova_p"], "note": note})
    return pd.DataFrame(rows).rename(columns=LABELS)


def status_table(runs_table: pd.DataFrame) -> pd.DataFrame:
    """Runs per study, dataset and status (collect.status_counts) under the tables' names."""
    return status_counts(runs_table).rename(columns=LABELS)


# -- writing --------------------------------------------------------------------------------

def format_cell(value: object) -> str:
    """A cell for Markdown or LaTeX: 4 significant digits, integers whole, NaN as n/a."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    def row(cells):
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns]
    body = [row(format_cell(v) for v in values) for values in df.itertuples(index=False)]
    return "\n".join([row(df.columns), row(align).replace(r"\|", "|"), *body]) + "\n"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "±": r"$\pm$"}


def tex_escape(text: str) -> str:
    return re.sub("|".join(map(re.escape, _TEX_SPECIAL)), lambda m: _TEX_SPECIAL[m.group()],
                  text)


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs tabular (\\toprule, \\midrule, \\bottomrule), numbers right-aligned."""
    spec = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    def row(cells):
        return " & ".join(tex_escape(str(c)) for c in cells) + r" \\"
    body = [row(format_cell(v) for v in values) for values in df.itertuples(index=False)]
    return "\n".join([rf"\begin{{tabular}}{{{spec}}}", r"\toprule", row(df.columns),
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


def write_table(df: pd.DataFrame, stem: str | Path, *, columns: Sequence[str] | None = None,
                note: str | None = None) -> list[Path]:
    """Write `stem`.csv (every column, full precision), `stem`.md, `stem`.tex and
    `stem`.html (`columns` only, if given, and `note` below the table: a paragraph, a LaTeX
    comment). The HTML page is what the Snakemake report shows."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = df[[c for c in columns if c in df.columns]] if columns else df
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex", ".html")]
    df.to_csv(paths[0], index=False)
    paths[1].write_text(to_markdown(shown) + (f"\n{note}\n" if note else ""))
    comment = "".join(f"% {line}\n" for line in (note or "").splitlines())
    paths[2].write_text(to_latex(shown) + comment)
    paths[3].write_text(to_html(shown, stem.name, note))
    return paths


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:12px;color:#222}"
    "table{border-collapse:collapse}th,td{padding:3px 8px;text-align:right;white-space:nowrap}"
    "th{border-bottom:1px solid #444;text-align:center}tr:nth-child(even){background:#f4f5f7}"
    "td:first-child,th:first-child{text-align:left}p{max-width:60em;line-height:1.4}"
)


def to_html(df: pd.DataFrame, title: str, note: str | None = None) -> str:
    """A standalone page: the table as the Markdown shows it, and the note below."""
    table = df.map(format_cell).to_html(index=False, border=0, escape=True)
    note_html = f"<p>{html.escape(note)}</p>" if note else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{table}{note_html}</body></html>\n")


def make_tables(runs_table: pd.DataFrame, config: Mapping, out: str | Path, *,
                pooling_study: str = POOLING_STUDY) -> dict[str, list[Path]]:
    """Every table the config asks for, written under `out`; notes on skipped ones printed."""
    out = Path(out)
    _, method, metric = analysis_settings(config)
    written = {"status": write_table(status_table(runs_table), out / "status",
                                     note="Runs per study, dataset and status.")}
    if config.get("comparisons"):
        shown = [*claim_columns(method), "recipe", "n_diverged", "paper_control",
                 "reference_control", "note"]
        written["claims"] = write_table(claims_table(runs_table, config), out / "claims",
                                        columns=shown, note=claims_note(config))
    else:
        print("note: the config has no comparisons; claims table skipped")
    for study in variant_studies(config) or [pooling_study]:
        if skip := _in_config_study(runs_table, config, study):
            print(f"note: {skip}; {study} table skipped")
            continue
        table = pooling_table(runs_table, config, study=study)
        axes = table.columns[:list(table.columns).index("n")]  # recipe, the study's axes, dataset, variant
        shown = [*axes, "accuracy_pct", "n", "n_runs", "n_diverged", "paper", "reference", "params",
                 "mflops", "train_time_h"]
        note = (f"{metric} mean ± std (%) over the n completed runs of n_runs (the others "
                "diverged, are missing or corrupt); paper: the hybrid paper's single runs; "
                "reference: the official DiffStride numbers, shown only where the rows' runs "
                "were trained as the reference was (its recipe, block and architecture).")
        written[study] = write_table(table, out / study, columns=shown, note=note)
    for name, spec in (config.get("sweeps") or {}).items():
        if skip := _in_config_study(runs_table, config, spec["study"]):
            print(f"note: {skip}; sweep table {name!r} skipped")
            continue
        shown = [*[LABELS.get(c, c) for c in spec.get("by") or []], spec["axis"], "default",
                 "accuracy_pct", "n", "n_runs", "n_diverged", "delta", p_column(method),
                 "kruskal_p", "anova_p", "note"]
        note = (f"{metric} per level of {spec['axis']} (default {as_cell(spec['default'])}); "
                f"delta and Welch p against the default, {method}-adjusted across the levels; "
                "Kruskal-Wallis and ANOVA p across all levels of the group.")
        written[name] = write_table(sweep_table(runs_table, spec, metric=metric, method=method),
                                    out / name, columns=shown, note=note)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-table", required=True, type=Path,
                        help="runs_table.csv from analysis.collect")
    parser.add_argument("--config", required=True, type=Path, help="the workflow config YAML")
    parser.add_argument("--out", required=True, type=Path, help="directory for the tables")
    parser.add_argument("--pooling-study", default=POOLING_STUDY,
                        help=f"study of the pooling-variants table (default {POOLING_STUDY})")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text()) or {}
    written = make_tables(read_runs_table(args.runs_table), config, args.out,
                          pooling_study=args.pooling_study)
    print(f"wrote {len(written)} tables to {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
