"""The reproduction's figures, sized for a paper's column (3.5 in wide, 7 pt text), as PNG
(200 dpi) and PDF.

    python -m analysis.figures --runs-table results/runs_table.csv \\
        --history-table results/history_table.csv --config CONFIG.yaml --out results/figures

writes, under --out, `<name>.png` and `<name>.pdf` for
- `pooling_accuracy`: the metric per variant, every seed a point, mean and t 95% CI, one
  panel per dataset (columns) and recipe (rows) of the pooling study; `<study>_accuracy`
  the same for every other variant study (e.g. `first_release`, `arch`, whose rows are
  recipe and architecture);
- `learning_curves`: mean test accuracy per epoch with its t 95% band, per variant;
- `stride_trajectories`: each DiffStride layer's learned stride per epoch, mean over seeds;
- `accuracy_flops`: mean accuracy (t 95% CI) against mean MFLOPs (± std) per variant;
- one figure per entry of `sweeps`: accuracy against the level with a t 95% band when the
  levels are numbers (e.g. `smoothness`), else a heatmap of mean accuracy with its colour
  bar and each cell's n, levels against the sweep's other `by` column (e.g. `placement`:
  downsample_at x head_pool);
- `claims_forest` (with a claims table, analysis.verdicts): every claim's delta in points
  with its interval, the paper's claimed delta and the verdict in colour.
A figure without data (its study has no runs, no history, no learned strides) is skipped
with a printed note. Statistics come from analysis.stats; only completed runs are drawn,
and a variant's tick label counts its diverged and missing runs. Accuracies are in percent,
differences in percentage points. An interval is drawn only where its cell has enough runs
(stats.INTERVAL_RULE); a figure says which cells it drew without one ("n = 2: no interval").
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from analysis import inference, stats
from analysis.figure_style import (  # noqa: F401  (COLUMN_WIDTH, save_figure: the figures' API too)
    COLUMN_WIDTH, PANEL_HEIGHT, add_no_interval_note, has_interval, paper_style,
    placeholder_figure, save_figure)
from analysis.collect import (
    DATASET, RECIPE, VARIANT, in_study, read_history_table, read_runs_table, study_rows, user_errors,
    variant_studies)
from analysis.claims import (
    analysis_settings, as_cell, claims_table, completed_runs, paper_numbers, reference_number)
from analysis.looks import looks_of
from analysis.tables import POOLING_STUDY, level_order
from analysis.verdicts import forest_figure, forest_rows


def _values(table: pd.DataFrame, column: str) -> list:
    """A column's values in order of first appearance, or [None] when the table lacks it."""
    return list(pd.unique(table[column])) if column in table.columns else [None]


def _where(table: pd.DataFrame, **values) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        if value is not None:
            mask &= (table[column] == value).to_numpy()
    return table[mask]


def _grid(n_rows: int, n_cols: int, *, sharey: bool = False):
    width = COLUMN_WIDTH if n_cols <= 2 else 2 * COLUMN_WIDTH
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, PANEL_HEIGHT * n_rows + 0.4),
                             squeeze=False, layout="constrained", sharey=sharey)
    return fig, axes


def _title(*parts) -> str:
    return " · ".join(str(p) for p in parts if p not in (None, ""))


def _label_grid(axes, rows: Sequence, columns: Sequence, *, xlabel: str, ylabel: str) -> None:
    """Column values as the top row's titles, row values above the first column's y label,
    the x label on the bottom row only: short labels that fit a column's width."""
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            ax.set_title(_title(column) if i == 0 else "")
            ax.set_xlabel(xlabel if i == len(rows) - 1 else "")
            row_label = _title(*row) if isinstance(row, tuple) else _title(row)
            ax.set_ylabel("\n".join(filter(None, [row_label, ylabel])) if j == 0 else "")


def _metric_label(metric: str) -> str:
    return f"{metric.replace('_', ' ')} (%)"


def palette(variants: Sequence[str]) -> dict[str, tuple]:
    """One colour-blind-safe colour per variant, the same in every figure."""
    return dict(zip(variants, sns.color_palette("colorblind", max(len(variants), 1))))


def t_band(values: pd.Series) -> pd.Series:
    """Mean and t 95% interval of the mean (NaN bounds below 2 values); for curves and bands."""
    x = values.dropna().to_numpy(dtype=float)
    low, high = inference.mean_interval(x)
    return pd.Series({"mean": x.mean() if x.size else np.nan, "low": float(low), "high": float(high),
                      "n": x.size})


def _percent_band(grouped) -> pd.DataFrame:
    """t_band per group (e.g. per epoch or level), mean and bounds in percent, n as counted."""
    band = grouped.apply(t_band).unstack().sort_index()
    return band.assign(**{c: band[c] * 100 for c in ("mean", "low", "high")})


def _fill_band(ax, band: pd.DataFrame, colour) -> None:
    """The t 95% band where its point has enough runs (stats.INTERVAL_RULE), a gap elsewhere."""
    shown = band["n"].map(has_interval).astype(bool)
    if shown.any():
        ax.fill_between(band.index, band["low"].where(shown), band["high"].where(shown),
                        color=colour, alpha=0.2, linewidth=0)


def _legend(fig, ncol: int = 3) -> None:
    """One legend below the panels, each label once."""
    unique = {}
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        unique.update({label: h for h, label in zip(handles, labels) if label not in unique})
    if unique:
        fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=ncol,
                   frameon=False, handlelength=1.5, columnspacing=1.0)


def _tick_label(variant: str, cell: pd.Series) -> str:
    """The variant, and below it the runs it lost: diverged, and missing (or corrupt)."""
    diverged = int(cell["n_diverged"])
    missing = int(cell["n_excluded"]) - diverged
    lost = [f"{diverged} div."] * bool(diverged) + [f"{missing} missing"] * bool(missing)
    return f"{variant}\n({', '.join(lost)})" if lost else variant


def pooling_figure(runs_table: pd.DataFrame, *, study: str = POOLING_STUDY,
                   metric: str = "test_accuracy",
                   config: Mapping | None = None) -> plt.Figure | None:
    """The metric (%) per variant: every completed seed a point, the mean with its t 95% CI
    in black; panels per dataset (columns) and recipe (rows; with the workflow `config`, one
    row per combination of the recipe and the study's other axes, e.g. the architecture).
    With the config, the paper's single runs (red x) and the official reference numbers
    (grey square, only where the panel's runs were trained as the reference was) of the
    study's comparisons stand beside the variants they name."""
    runs = in_study(runs_table, study)
    if VARIANT not in runs.columns or completed_runs(runs, metric).empty:
        return None
    paper, references = paper_numbers(config or {}, study)
    paper_style_ = dict(marker="x", color="tab:red", label="paper (single run)")
    reference_style = dict(marker="s", facecolors="none", edgecolors="0.4", label="official DiffStride")
    colours = palette(_values(runs_table, VARIANT))
    row_columns = study_rows(config or {}, study, runs)
    rows = [tuple(r) for r in runs[row_columns].drop_duplicates().itertuples(index=False)] \
        if row_columns else [()]
    datasets = _values(runs, DATASET)
    rng = np.random.default_rng(0)  # jitter: the same figure from the same runs
    with paper_style():
        fig, axes = _grid(len(rows), len(datasets))
        ns = []
        panels = [(i, row, j, dataset) for i, row in enumerate(rows)
                  for j, dataset in enumerate(datasets)]
        for i, row, j, dataset in panels:
            ax, panel = axes[i, j], _where(runs, **dict(zip(row_columns, row)), **{DATASET: dataset})
            variants = _values(panel, VARIANT)
            summary = stats.summarise(panel, VARIANT, metric).set_index(VARIANT)
            ns += list(summary["n"])
            for x, variant in enumerate(variants):
                arm = _where(panel, **{VARIANT: variant})
                done = completed_runs(arm, metric)[metric] * 100
                ax.scatter(x + rng.uniform(-0.15, 0.15, len(done)), done, s=6, alpha=0.6,
                           color=colours[variant], linewidths=0)
                cell = summary.loc[variant]
                low, high = cell["t_ci_low"] * 100, cell["t_ci_high"] * 100
                mean = cell["mean"] * 100
                if np.isfinite(low) and has_interval(cell["n"]):
                    ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], fmt="D",
                                color="black", ms=3, capsize=2, elinewidth=0.8, zorder=3,
                                label="mean, 95% CI")
                elif np.isfinite(mean):
                    ax.scatter(x, mean, marker="D", s=9, facecolors="white", edgecolors="black",
                               linewidths=0.8, zorder=3, label="mean (no interval)")
                marks = ((paper.get((dataset, variant), np.nan), paper_style_),
                         (reference_number(references, dataset, variant, arm), reference_style))
                for value, style in marks:
                    if np.isfinite(value):
                        ax.scatter(x + 0.3, value * 100, s=12, linewidths=0.8, zorder=4, **style)
            labels = [_tick_label(v, summary.loc[v]) for v in variants]
            ax.set_xticks(range(len(variants)), labels, rotation=45, ha="right")
        _label_grid(axes, rows, datasets, xlabel="", ylabel=_metric_label(metric))
        sns.despine(fig)
        add_no_interval_note(axes[0, 0], ns)
        _legend(fig)
    return fig


def sweep_figure(runs_table: pd.DataFrame, spec: Mapping, *,
                 metric: str = "test_accuracy") -> plt.Figure | None:
    """A sweep: with numeric levels, the metric against the level (mean, t 95% band, seeds
    as faint points, the default dotted), one line per value of the sweep's other `by`
    columns; otherwise a heatmap of the mean, levels against those values. One panel per
    dataset."""
    runs = in_study(runs_table, spec["study"])
    axis = spec["axis"]
    if axis not in runs.columns or completed_runs(runs, metric).empty:
        return None
    hue_columns = [c for c in spec.get("by") or [] if c != DATASET and c in runs.columns]
    runs = runs.assign(_hue=runs[hue_columns].astype(str).agg(" · ".join, axis=1)
                       if hue_columns else "all")
    levels = level_order(pd.unique(runs[axis]))
    try:
        positions = {level: float(level) for level in levels}
    except ValueError:
        return _sweep_heatmap(runs, spec, levels, metric)
    datasets = _values(runs, DATASET)
    hues = list(pd.unique(runs["_hue"]))
    # the variants keep the colours they have in the other figures
    colours = palette(_values(runs_table, VARIANT) if hue_columns == [VARIANT] else hues)
    ns = []
    with paper_style():
        fig, axes = _grid(1, len(datasets))
        for j, dataset in enumerate(datasets):
            ax, panel = axes[0, j], completed_runs(_where(runs, **{DATASET: dataset}), metric)
            for hue in hues:
                done = panel[panel["_hue"] == hue]
                if done.empty:
                    continue
                x = done[axis].map(positions)
                ax.scatter(x, done[metric] * 100, s=4, alpha=0.3, color=colours[hue],
                           linewidths=0)
                band = _percent_band(done[metric].groupby(x))
                ns += list(band["n"])
                ax.plot(band.index, band["mean"], marker="o", color=colours[hue], label=hue)
                _fill_band(ax, band, colours[hue])
            values = sorted(positions.values())
            if values[0] > 0 and values[-1] / values[0] >= 8:
                ax.set_xscale("log", base=2)
            ax.set_xticks(values, [format(v, "g") for v in values])
            ax.minorticks_off()
            default = positions.get(as_cell(spec["default"]))
            if default is not None:
                ax.axvline(default, color="0.5", linestyle=":", linewidth=0.8)
            ax.set_xlabel(axis)
            ax.set_ylabel(_metric_label(metric) if j == 0 else "")
            ax.set_title(_title(dataset))
        sns.despine(fig)
        add_no_interval_note(axes[0, 0], ns)
        _legend(fig)
    return fig


def _sweep_heatmap(runs: pd.DataFrame, spec: Mapping, levels: list[str],
                   metric: str) -> plt.Figure:
    datasets = _values(runs, DATASET)
    hues = list(pd.unique(runs["_hue"]))
    cells = {}
    for dataset in datasets:
        grouped = completed_runs(_where(runs, **{DATASET: dataset}), metric).groupby(
            [spec["axis"], "_hue"])[metric]
        cells[dataset] = [grouped.agg(how).unstack("_hue").reindex(index=levels, columns=hues)
                          for how in ("mean", "size")]
    with paper_style():
        fig, axes = _grid(1, len(datasets), sharey=True)
        for j, dataset in enumerate(datasets):
            ax = axes[0, j]
            mean, count = cells[dataset][0] * 100, cells[dataset][1].fillna(0).astype(int)
            labels = [[f"{m:.1f}\nn={c}" if np.isfinite(m) else "" for m, c in zip(mr, cr)]
                      for mr, cr in zip(mean.to_numpy(), count.to_numpy())]
            # a colour bar per data set: their accuracies differ more than the levels do
            sns.heatmap(mean, ax=ax, annot=np.array(labels, dtype=object), fmt="",
                        cmap="viridis", cbar=True, cbar_kws={"shrink": 0.9, "pad": 0.03},
                        annot_kws={"size": 7}, linewidths=0.5, linecolor="white")
            ax.collections[0].colorbar.set_label(
                f"mean {metric.replace('_', ' ')} (%)" if j == len(datasets) - 1 else "")
            ax.set_title(_title(dataset))
            ax.set_xlabel(" · ".join(c for c in spec.get("by") or [] if c != DATASET))
            ax.set_ylabel(spec["axis"] if j == 0 else "")
            ax.tick_params(length=0)
            ax.tick_params(axis="y", labelrotation=0)
            if j:
                ax.tick_params(labelleft=False)
        fig.suptitle(f"mean {metric.replace('_', ' ')} (%) and completed runs (n) per cell",
                     fontsize=7)
    return fig


def _history_of(runs_table: pd.DataFrame, history_table: pd.DataFrame, study: str,
                metric: str) -> pd.DataFrame:
    """The epochs of the study's completed runs, with recipe, dataset and variant."""
    runs = completed_runs(in_study(runs_table, study), metric)
    keys = ["run_id", *[c for c in (RECIPE, DATASET, VARIANT) if c in runs.columns]]
    return history_table.merge(runs[keys], on="run_id", how="inner")


def _panels(axes, table: pd.DataFrame, recipes, datasets):
    """(axis, rows of that recipe and dataset) for every panel of a recipe x dataset grid."""
    for i, recipe in enumerate(recipes):
        for j, dataset in enumerate(datasets):
            yield axes[i, j], _where(table, **{RECIPE: recipe, DATASET: dataset})


def learning_curves_figure(runs_table: pd.DataFrame, history_table: pd.DataFrame, *,
                           study: str = POOLING_STUDY,
                           metric: str = "test_accuracy") -> plt.Figure | None:
    """Mean `metric` per epoch with its t 95% band over seeds, one line per variant; panels
    per dataset (columns) and recipe (rows). Completed runs only."""
    history = _history_of(runs_table, history_table, study, metric)
    if history.empty or metric not in history.columns or VARIANT not in history.columns:
        return None
    colours = palette(_values(runs_table, VARIANT))
    recipes, datasets = _values(history, RECIPE), _values(history, DATASET)
    ns = []
    with paper_style():
        fig, axes = _grid(len(recipes), len(datasets))
        for ax, panel in _panels(axes, history, recipes, datasets):
            for variant in _values(panel, VARIANT):
                curve = _percent_band(panel[panel[VARIANT] == variant].groupby("epoch")[metric])
                ns += list(curve["n"])
                ax.plot(curve.index, curve["mean"], color=colours[variant], label=variant)
                _fill_band(ax, curve, colours[variant])
        _label_grid(axes, recipes, datasets, xlabel="epoch", ylabel=_metric_label(metric))
        sns.despine(fig)
        add_no_interval_note(axes[0, 0], ns)
        _legend(fig)
    return fig


def stride_figure(runs_table: pd.DataFrame, history_table: pd.DataFrame, *,
                  study: str = POOLING_STUDY,
                  metric: str = "test_accuracy") -> plt.Figure | None:
    """Each learned stride (history columns `stride/<layer>/<v|h>`) per epoch, mean over the
    seeds of completed runs: colour per layer, solid vertical, dashed horizontal; panels per
    dataset (columns) and recipe x variant (rows)."""
    history = _history_of(runs_table, history_table, study, metric)
    stride_columns = [c for c in history.columns if c.startswith("stride/")]
    if history.empty or not stride_columns:
        return None
    keys = [c for c in (RECIPE, DATASET, VARIANT) if c in history.columns]
    long = (history.melt(id_vars=["epoch", *keys], value_vars=stride_columns,
                         var_name="column", value_name="stride").dropna(subset=["stride"]))
    long[["layer", "dim"]] = long["column"].str.extract(r"^stride/(.+)/([vh])$")
    mean = long.groupby([*keys, "layer", "dim", "epoch"], dropna=False)["stride"].mean()
    mean = mean.reset_index()
    rows = long[[c for c in (RECIPE, VARIANT) if c in keys]].drop_duplicates()
    rows = rows.to_dict("records") if not rows.empty else [{}]
    datasets = _values(long, DATASET)
    layers = list(pd.unique(long["layer"]))  # in the model's order, as history.csv has them
    colours = palette(layers)
    with paper_style():
        fig, axes = _grid(len(rows), len(datasets), sharey=True)
        for i, row in enumerate(rows):
            for j, dataset in enumerate(datasets):
                ax = axes[i, j]
                panel = _where(mean, **row, **{DATASET: dataset})
                for layer, dim in [(layer, dim) for layer in layers for dim in "vh"]:
                    curve = panel[(panel["layer"] == layer) & (panel["dim"] == dim)]
                    if curve.empty:
                        continue
                    ax.plot(curve["epoch"], curve["stride"], color=colours[layer],
                            linestyle="-" if dim == "v" else "--",
                            label=f"{layer} ({'vertical' if dim == 'v' else 'horizontal'})")
        _label_grid(axes, [tuple(row.values()) for row in rows], datasets, xlabel="epoch",
                    ylabel="learned stride")
        sns.despine(fig)
        _legend(fig, ncol=2)
    return fig


def flops_figure(runs_table: pd.DataFrame, *, study: str = POOLING_STUDY,
                 metric: str = "test_accuracy") -> plt.Figure | None:
    """Per variant, mean `metric` (t 95% CI) against mean MFLOPs per image at the final
    strides (± std over seeds); panels per dataset (columns) and recipe (rows)."""
    runs = completed_runs(in_study(runs_table, study), metric)
    if runs.empty or "flops" not in runs.columns or runs["flops"].isna().all():
        return None
    colours = palette(_values(runs_table, VARIANT))
    recipes, datasets = _values(runs, RECIPE), _values(runs, DATASET)
    with paper_style():
        fig, axes = _grid(len(recipes), len(datasets))
        ns = []
        for ax, panel in _panels(axes, runs, recipes, datasets):
            for variant in _values(panel, VARIANT):
                cell = panel[panel[VARIANT] == variant]
                band, flops = t_band(cell[metric]), cell["flops"] / 1e6
                acc = band[["mean", "low", "high"]] * 100
                ns.append(band["n"])
                yerr = ([[acc["mean"] - acc["low"]], [acc["high"] - acc["mean"]]]
                        if np.isfinite(acc["low"]) and has_interval(band["n"]) else None)
                xerr = flops.std() if has_interval(len(flops.dropna())) else None
                ax.errorbar(flops.mean(), acc["mean"], xerr=xerr, yerr=yerr, fmt="o",
                            color=colours[variant], ms=4, capsize=2, elinewidth=0.8,
                            label=variant)
        _label_grid(axes, recipes, datasets, xlabel="MFLOPs per image",
                    ylabel=_metric_label(metric))
        sns.despine(fig)
        add_no_interval_note(axes[0, 0], ns)
        _legend(fig)
    return fig


def make_figures(runs_table: pd.DataFrame, history_table: pd.DataFrame, config: Mapping,
                 out: str | Path, *, pooling_study: str = POOLING_STUDY,
                 claims: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Every figure, saved under `out`; a placeholder (and a note) where there is no data.
    With comparisons in the config, `claims_forest` from `claims` (the claims table, as
    analysis.tables wrote it), else from the claims table of these runs."""
    metric = analysis_settings(config).metric
    builders = {}
    if config.get("comparisons"):
        builders["claims_forest"] = lambda: forest_figure(
            forest_rows(claims if claims is not None
                        else claims_table(runs_table, config, looks_of(runs_table, config))))
    builders |= {
        "pooling_accuracy": lambda: pooling_figure(runs_table, study=pooling_study,
                                                   metric=metric, config=config),
        "learning_curves": lambda: learning_curves_figure(runs_table, history_table,
                                                          study=pooling_study, metric=metric),
        "stride_trajectories": lambda: stride_figure(runs_table, history_table,
                                                     study=pooling_study, metric=metric),
        "accuracy_flops": lambda: flops_figure(runs_table, study=pooling_study, metric=metric),
    }
    for study in variant_studies(config):
        if study != pooling_study:
            builders[f"{study}_accuracy"] = lambda study=study: pooling_figure(
                runs_table, study=study, metric=metric, config=config)
    for name, spec in (config.get("sweeps") or {}).items():
        builders[name] = lambda spec=spec: sweep_figure(runs_table, spec, metric=metric)
    written = {}
    for name, build in builders.items():
        fig = build()
        if fig is None:  # keep the file (the workflow declares it) and say why it is empty
            print(f"note: no data for figure {name!r}; wrote a placeholder")
            fig = placeholder_figure(f"{name}: no completed runs to plot")
        written[name] = save_figure(fig, Path(out) / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-table", required=True, type=Path,
                        help="runs_table.csv from analysis.collect")
    parser.add_argument("--history-table", required=True, type=Path,
                        help="history_table.csv from analysis.collect")
    parser.add_argument("--config", required=True, type=Path, help="the workflow config YAML")
    parser.add_argument("--out", required=True, type=Path, help="directory for the figures")
    parser.add_argument("--claims-table", type=Path,
                        help="claims.csv from analysis.tables (else computed from the runs)")
    parser.add_argument("--pooling-study", default=POOLING_STUDY,
                        help=f"study of the per-variant figures (default {POOLING_STUDY})")
    args = parser.parse_args(argv)
    with user_errors(parser):
        config = yaml.safe_load(args.config.read_text()) or {}
        written = make_figures(read_runs_table(args.runs_table),
                               read_history_table(args.history_table), config, args.out,
                               pooling_study=args.pooling_study,
                               claims=pd.read_csv(args.claims_table) if args.claims_table
                               else None)
        print(f"wrote {len(written)} figures to {args.out}: {', '.join(written)}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
