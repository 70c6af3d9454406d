"""analysis.figures from planted run and history tables: every file written and valid, legible
at a column's width, and a note instead of a crash where a study has no data."""

import contextlib
import io

import matplotlib
import matplotlib.collections
import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.figures import (
    COLUMN_WIDTH,
    learning_curves_figure,
    main,
    pooling_figure,
    stride_figure,
    sweep_figure,
    t_band,
)
from analysis.verdicts import VERDICT_COLOURS, forest_figure
from analysis.stats import cell_summary

EPOCHS, SEEDS = 5, 3
LAYERS = ("stem_pool", "layer2.0.pool")
CONFIG = {
    "analysis": {"metric": "test_accuracy"},
    "comparisons": {"hybrid_vs_diffstride": {
        "study": "pooling", "treatment": {"variant": "hybrid"},
        "control": {"variant": "diffstride"}, "by": ["dataset.name", "train.recipe"],
        "paper": {"cifar10": {"treatment": 0.9334, "control": 0.924}},
        "reference": {"source": "README", "where": {"train.recipe": "hybrid-paper"},
                      "cifar10": {"diffstride": 0.942}}}},
    "sweeps": {
        "smoothness": {"study": "smoothness", "axis": "model.smoothness", "default": "4",
                       "by": ["dataset.name", "variant"]},
        "placement": {"study": "placement", "axis": "model.downsample_at",
                      "default": "stem+layer2", "by": ["dataset.name", "model.head_pool"]},
        "init_stride": {"study": "init_stride", "axis": "model.init_stride",
                        "default": "1+1+2+2+2", "by": ["dataset.name", "variant"]},
    },
}
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


def planted() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs of three studies (variant, smoothness and placement effects planted, seed 0) and
    their histories: accuracy rising to the final value, DiffStride strides drifting."""
    rng = np.random.default_rng(0)
    cells = []
    for dataset, base in (("cifar10", 0.92), ("cifar100", 0.70)):
        for recipe in ("hybrid-paper", "official-diffstride"):
            for variant, gain in (("strided", -0.01), ("diffstride", 0.0), ("hybrid", 0.01)):
                cells.append(("pooling", dataset, recipe, variant, "4", "stem+layer2",
                              "none", base + gain))
        for r, gain in (("1", -0.01), ("4", 0.0), ("16", -0.02)):
            for variant in ("diffstride", "hybrid"):
                cells.append(("smoothness", dataset, "hybrid-paper", variant, r, "stem+layer2",
                              "none", base + gain))
        for placement, gain in (("stem+layer2", 0.0), ("layer2", -0.01)):
            for head in ("none", "spectral"):
                cells.append(("placement", dataset, "hybrid-paper", "diffstride", "4",
                              placement, head, base + gain + 0.005 * (head == "spectral")))
    runs, histories = [], []
    for study, dataset, recipe, variant, r, placement, head, acc in cells:
        for seed in range(SEEDS):
            run_id = f"{len(runs):016x}"
            final = acc + rng.normal(0, 0.004)
            runs.append({"run_id": run_id, "studies": study, "variant": variant, "seed": seed,
                         "dataset.name": dataset, "train.recipe": recipe,
                         "model.smoothness": r, "model.downsample_at": placement,
                         "model.head_pool": head, "status": "completed",
                         "test_accuracy": final, "flops": 5.5e8 * (1 + 0.1 * (variant ==
                                                                          "hybrid")),
                         "params": 11e6})
            learned = variant in ("diffstride", "hybrid")
            for epoch in range(1, EPOCHS + 1):
                row = {"run_id": run_id, "epoch": epoch, "test_accuracy": final * epoch / EPOCHS}
                for k, layer in enumerate(LAYERS):
                    stride = 2.0 + k * 0.3 * epoch / EPOCHS if learned else np.nan
                    row[f"stride/{layer}/v"], row[f"stride/{layer}/h"] = stride, stride - 0.1
                histories.append(row)
    runs = pd.DataFrame(runs)
    runs.loc[0, ["status", "test_accuracy"]] = ["diverged", np.nan]
    runs.loc[1, ["status", "test_accuracy"]] = ["missing", np.nan]
    return runs, pd.DataFrame(histories)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The CLI run once on the planted tables; its output directory and printed notes."""
    tmp = tmp_path_factory.mktemp("figures")
    runs, history = planted()
    runs.to_csv(tmp / "runs_table.csv", index=False)
    history.to_csv(tmp / "history_table.csv", index=False)
    (tmp / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["--runs-table", str(tmp / "runs_table.csv"), "--history-table",
              str(tmp / "history_table.csv"), "--config", str(tmp / "config.yaml"),
              "--out", str(tmp / "figures")])
    return tmp / "figures", buffer.getvalue()


@pytest.mark.parametrize("name", ["pooling_accuracy", "learning_curves", "stride_trajectories",
                                  "accuracy_flops", "smoothness", "placement", "claims_forest"])
def test_cli_writes_valid_png_and_pdf(written, name):
    out, _ = written
    for suffix, magic in MAGIC.items():
        data = (out / f"{name}{suffix}").read_bytes()
        assert data.startswith(magic) and len(data) > 1000


def test_study_without_runs_gets_a_placeholder_and_a_note(written):
    # The workflow declares every figure, so a figure without data is a placeholder that
    # says so, not a missing file.
    out, printed = written
    assert "note: no data for figure 'init_stride'; wrote a placeholder" in printed
    assert (out / "init_stride.png").read_bytes().startswith(MAGIC[".png"])
    assert "wrote 8 figures" in printed  # the seven of the studies and the claims' forest plot


def test_figures_fit_a_column_with_legible_text():
    runs, history = planted()
    for fig in (pooling_figure(runs), stride_figure(runs, history),
                sweep_figure(runs, CONFIG["sweeps"]["placement"])):
        fig.canvas.draw()
        assert fig.get_figwidth() == COLUMN_WIDTH
        sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
        assert sizes and min(sizes) >= 7
    assert matplotlib.get_backend().lower() == "agg"


def test_pooling_figure_draws_every_completed_seed_and_counts_diverged():
    runs, _ = planted()
    fig = pooling_figure(runs, config=CONFIG)
    axes = fig.axes
    assert len(axes) == 4  # 2 datasets x 2 recipes
    first = axes[0]  # cifar10, hybrid-paper: strided lost a seed to divergence, one is missing
    scatters = [c for c in first.collections
                if isinstance(c, matplotlib.collections.PathCollection)]  # not the CI bars
    seeds = sum(len(c.get_offsets()) for c in scatters if c.get_label().startswith("_"))
    assert seeds == 3 * SEEDS - 2
    labels = [t.get_text() for t in first.get_xticklabels()]
    assert labels == ["strided\n(1 div., 1 missing)", "diffstride", "hybrid"]
    paper = [c.get_offsets()[0][1] for c in scatters if c.get_label() == "paper (single run)"]
    assert sorted(paper) == pytest.approx([92.4, 93.34])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    # strided on cifar10 kept 1 of 3 seeds: its mean stands without an interval, and says so
    assert sorted(legend) == ["mean (no interval)", "mean, 95% CI",
                              "n = 1: no interval (intervals need n ≥ 3)", "official DiffStride",
                              "paper (single run)"]
    assert not [c for c in axes[1].collections  # cifar100: the config has no numbers
                if c.get_label() in ("paper (single run)", "official DiffStride")]


def test_empty_inputs_give_no_figure():
    runs, history = planted()
    assert pooling_figure(runs, study="absent") is None
    no_strides = history.drop(columns=[c for c in history if c.startswith("stride/")])
    assert stride_figure(runs, no_strides) is None


def test_bands_are_the_t_intervals_of_the_tables():
    x = pd.Series([0.90, 0.91, 0.93, 0.92, np.nan])
    band, cell = t_band(x), cell_summary(x.dropna())
    assert (band["mean"], band["low"], band["high"], band["n"]) == pytest.approx(
        (cell["mean"], cell["t_ci_low"], cell["t_ci_high"], 4))
    assert np.isnan(t_band(pd.Series([0.9]))["low"])


def _bands(ax) -> list:
    return [c for c in ax.collections if isinstance(c, matplotlib.collections.PolyCollection)]


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_no_band_where_a_cell_has_fewer_than_3_runs_and_the_figure_says_so():
    runs, history = planted()
    two_seeds = runs[runs["seed"] < 2]
    fig = sweep_figure(two_seeds, CONFIG["sweeps"]["smoothness"])
    assert not any(_bands(ax) for ax in fig.axes)  # nothing drawn, nothing clipped
    assert "n = 2: no interval (intervals need n ≥ 3)" in _legend_texts(fig)
    curves = learning_curves_figure(two_seeds, history)
    assert not any(_bands(ax) for ax in curves.axes)
    assert "n = 2: no interval (intervals need n ≥ 3)" in _legend_texts(curves)
    # with 3 seeds every band is drawn and no note is needed
    full = sweep_figure(runs, CONFIG["sweeps"]["smoothness"])
    assert all(_bands(ax) for ax in full.axes)
    assert not [t for t in _legend_texts(full) if "no interval" in t]
    pooling = pooling_figure(two_seeds)
    errorbars = [c for ax in pooling.axes for c in ax.containers]
    assert not errorbars and "mean (no interval)" in _legend_texts(pooling)


def test_heatmap_has_a_colour_bar_and_n_per_cell():
    runs, _ = planted()
    fig = sweep_figure(runs, CONFIG["sweeps"]["placement"])
    colourbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 2 and "(%)" in colourbars[-1].get_ylabel()  # one per data set
    heatmaps = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    cells = [t.get_text() for t in heatmaps[0].texts]
    # cifar10: every placement x head cell has 3 seeds (the planted table's first rows are
    # pooling runs, so no placement run is lost)
    assert len(cells) == 4 and all(t.endswith("\nn=3") for t in cells)
    mean = runs[(runs["studies"] == "placement") & (runs["dataset.name"] == "cifar10")
                & (runs["model.downsample_at"] == "layer2")
                & (runs["model.head_pool"] == "none")]["test_accuracy"].mean()
    assert f"{100 * mean:.1f}\nn=3" in cells


def test_forest_plot_has_a_row_per_claim_in_verdict_colours_and_points():
    claims = pd.DataFrame({
        "claim": ["a_vs_b", "a_vs_b", "c_vs_b"], "dataset": ["cifar10", "cifar100", "cifar10"],
        "paper_in_pi": [True, False, None], "recipe": ["hybrid-paper"] * 3,
        "paper_control": [0.92, 0.70, 0.92], "delta": [0.0094, 0.001, -0.02],
        "ci_low": [0.005, -0.003, -0.5], "ci_high": [0.014, 0.005, 0.46],
        "paper_delta": [0.0094, 0.0322, np.nan],
        "verdict": ["reproduced", "contradicted", "inconclusive"],
        "n": [5, 5, 2], "n_control": [5, 5, 2], "equivalence_margin": [0.005] * 3})
    fig = forest_figure(claims)
    ax = fig.axes[0]
    rows = dict(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())))
    # one row per claims row, top to bottom in the table's order
    assert [rows[y] for y in sorted(rows, reverse=True)] == [
        "a_vs_b\ncifar10 · hybrid-paper", "a_vs_b\ncifar100 · hybrid-paper",
        "c_vs_b\ncifar10 · hybrid-paper"]
    intervals = [line for line in ax.get_lines() if len(line.get_xdata()) == 2
                 and line.get_ydata()[0] == line.get_ydata()[1]]
    # two rows have 5 runs per arm: their intervals, in points, in their verdict's colour;
    # the third has 2 per arm: no interval, and the figure says so
    assert sorted(tuple(np.round(line.get_xdata(), 6)) for line in intervals) == \
        [(-0.3, 0.5), (0.5, 1.4)]
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in intervals}
    assert colours == {VERDICT_COLOURS["reproduced"].lower(), VERDICT_COLOURS["contradicted"].lower()}
    texts = [t.get_text() for t in ax.texts]
    assert {"reproduced", "contradicted", "inconclusive", "n = 2: no interval"} <= set(texts)
    crosses = [c for c in ax.collections if isinstance(c, matplotlib.collections.PathCollection)
               and c.get_offsets().shape[0] and c.get_facecolor().shape[0] and
               matplotlib.colors.to_hex(c.get_edgecolor()[0] if len(c.get_edgecolor())
                                        else c.get_facecolor()[0]) == "#000000"]
    assert sorted(round(c.get_offsets()[0][0], 6) for c in crosses) == [0.94, 3.22]
    legend = _legend_texts(fig)
    assert {"reproduced", "contradicted", "inconclusive",
            "paper's claimed delta (single run)"} <= set(legend)
    assert "percentage points" in ax.get_xlabel()
    assert forest_figure(claims.iloc[:0]) is None
