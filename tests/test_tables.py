"""analysis.tables on planted run tables: known effects and noise, drawn from a fixed seed."""

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests

from analysis import stats
from analysis.tables import (
    CLAIM_COLUMNS,
    claims_note,
    claims_table,
    main,
    make_tables,
    outliers_table,
    pooling_table,
    sweep_table,
    to_html,
    to_markdown,
    write_table,
)
from analysis.verdicts import VERDICT_COLOURS, verdict_display, verdict_table

N, SD = 10, 0.005
CONFIG = {
    "analysis": {"alpha": 0.05, "correction": "holm", "metric": "test_accuracy"},
    "comparisons": {"hybrid_vs_diffstride": {
        "study": "pooling", "treatment": {"variant": "hybrid"},
        "control": {"variant": "diffstride"}, "by": ["dataset.name", "train.recipe"],
        "paper": {"cifar10": {"treatment": 0.9334, "control": 0.924},
                  "cifar100": {"treatment": 0.7382, "control": 0.706}},
        "reference": {"source": "official DiffStride README", "where": {"train.recipe": "hybrid-paper"},
                      "cifar10": {"strided": 0.9106, "spectral": 0.9349, "diffstride": 0.9420},
                      "cifar100": {"strided": 0.6575, "spectral": 0.7286,
                                   "diffstride": 0.7608}}}},
    "sweeps": {
        "smoothness": {"study": "smoothness", "axis": "model.smoothness", "default": 4.0,  # "4" in runs.csv
                       "by": ["dataset.name", "variant"]},
        "placement": {"study": "placement", "axis": "model.downsample_at",
                      "default": ["stem", "layer2"], "by": ["dataset.name"]}},
}


def planted(cells: list[dict], n: int = N, seed: int = 0) -> pd.DataFrame:
    """n completed runs per cell, accuracy = cell's `acc` + N(0, SD); the other keys are
    run-table columns (config values as strings, as runs.csv has them)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cell in cells:
        axes = {k: v for k, v in cell.items() if k != "acc"}
        for s in range(n):
            rows.append({"run_id": f"{len(rows):016x}", "studies": "pooling", "variant": "",
                         "dataset.name": "cifar10", "train.recipe": "hybrid-paper",
                         **axes, "seed": s, "status": "completed",
                         "test_accuracy": cell["acc"] + rng.normal(0, SD),
                         "params": 11e6, "flops": 5.5e8 + rng.normal(0, 1e6),
                         "train_time_s": 3600.0, "images_per_s": 5000.0})
    return pd.DataFrame(rows)


@pytest.fixture
def pooling_runs() -> pd.DataFrame:
    """cifar10: hybrid +0.94 points over diffstride (the claim); cifar100: no effect (claim
    +3.22); synthetic: +2 points but no paper number; plus a strided baseline."""
    cells = [{"dataset.name": d, "variant": v, "acc": base + gain}
             for d, base, gain in (("cifar10", 0.92, 0.0094), ("cifar100", 0.70, 0.0),
                                   ("synthetic", 0.5, 0.02))
             for v, gain in (("strided", -0.01), ("diffstride", 0.0), ("hybrid", gain))]
    runs = planted(cells)
    diverged = runs.index[(runs["variant"] == "hybrid") & (runs["dataset.name"] == "cifar100")]
    runs.loc[diverged[:1], ["status", "test_accuracy"]] = ["diverged", np.nan]
    return runs


def test_claims_table_columns_verdicts_and_paper_numbers(pooling_runs):
    table = claims_table(pooling_runs, CONFIG).set_index("dataset", drop=False)
    assert list(table.columns[:len(CLAIM_COLUMNS)]) == list(CLAIM_COLUMNS)
    assert list(table.index) == ["cifar10", "cifar100", "synthetic"]
    # cifar100's true delta is 0 against a claim of +3.22: the band is excluded, and at
    # 9-10 seeds the interval is not yet inside +-0.5 points
    assert table["verdict"].to_dict() == {"cifar10": "reproduced",
                                          "cifar100": "not the claimed size",
                                          "synthetic": "higher"}
    assert table["family"].to_dict() == {"cifar10": "confirmatory", "cifar100": "confirmatory",
                                         "synthetic": "exploratory"}
    assert table["family_size"].tolist() == [2, 2, 1]
    assert table.loc["cifar10", "ci_level"] == pytest.approx(1 - 0.05 / 2)
    assert table.loc["cifar10", "paper_value"] == 0.9334
    assert table.loc["cifar10", "paper_delta"] == pytest.approx(0.9334 - 0.924)
    assert table.loc["cifar100", "paper_delta"] == pytest.approx(0.7382 - 0.706)
    assert table.loc["cifar10", "reference_control"] == 0.9420
    assert table.loc["cifar100", "paper_control"] == 0.706
    assert np.isnan(table.loc["synthetic", "paper_delta"])
    assert "no paper number for synthetic" in table.loc["synthetic", "note"]
    assert (table["claim"] == "hybrid_vs_diffstride").all()
    assert (table["recipe"] == "hybrid-paper").all()


def test_claims_arm_statistics_match_the_runs(pooling_runs):
    table = claims_table(pooling_runs, CONFIG).set_index("dataset")
    for dataset in table.index:
        arm = pooling_runs[(pooling_runs["dataset.name"] == dataset)
                           & (pooling_runs["variant"] == "hybrid")
                           & (pooling_runs["status"] == "completed")]["test_accuracy"]
        control = pooling_runs[(pooling_runs["dataset.name"] == dataset)
                               & (pooling_runs["variant"] == "diffstride")]["test_accuracy"]
        row = table.loc[dataset]
        assert (row["n"], row["mean"], row["std"]) == (
            len(arm), pytest.approx(arm.mean()), pytest.approx(arm.std(ddof=1)))
        assert row["delta"] == pytest.approx(arm.mean() - control.mean())
        assert row["ci_low"] < row["delta"] < row["ci_high"]
    assert (table.loc["cifar100", "n"], table.loc["cifar100", "n_diverged"]) == (N - 1, 1)
    assert table.loc["cifar10", "delta"] == pytest.approx(0.0094, abs=0.005)


def test_claims_p_is_adjusted_within_each_family(pooling_runs):
    table = claims_table(pooling_runs, CONFIG)
    confirmatory = table["family"] == "confirmatory"
    expected = multipletests(table.loc[confirmatory, "p0"], method="holm")[1]
    np.testing.assert_allclose(table.loc[confirmatory, "p0_holm"], expected)
    assert table.loc[~confirmatory, "p0_holm"].tolist() == table.loc[~confirmatory, "p0"].tolist()
    fdr = {**CONFIG, "analysis": {**CONFIG["analysis"], "correction": "fdr_bh"}}
    table = claims_table(pooling_runs, fdr)
    assert "p0_holm" not in table.columns and table.columns[16] == "p0_fdr_bh"
    np.testing.assert_allclose(table.loc[confirmatory, "p_tost_fdr_bh"],
                               multipletests(table.loc[confirmatory, "p_tost"], method="fdr_bh")[1])


def test_claims_with_an_arm_without_runs_is_inconclusive(pooling_runs):
    runs = pooling_runs[~((pooling_runs["variant"] == "hybrid")
                          & (pooling_runs["dataset.name"] == "cifar100"))]
    table = claims_table(runs, CONFIG).set_index("dataset")
    assert table.loc["cifar100", "verdict"] == "inconclusive"
    assert table.loc["cifar100", "n"] == 0
    assert "treatment has no runs" in table.loc["cifar100", "note"]
    assert table.loc["cifar10", "verdict"] == "reproduced"
    # the columns do not depend on the data: an empty arm keeps n_diverged and the rest
    assert list(claims_table(runs, CONFIG).columns) == list(claims_table(pooling_runs, CONFIG).columns)
    assert table.loc["cifar100", "n_diverged"] == 0


def test_the_paper_single_run_delta_is_read_against_a_prediction_interval(pooling_runs):
    table = claims_table(pooling_runs, CONFIG).set_index("dataset")
    cifar10, cifar100 = table.loc["cifar10"], table.loc["cifar100"]
    assert cifar10["pi_low"] < 0.0094 < cifar10["pi_high"] and cifar10["paper_in_pi"] is True
    assert cifar100["paper_in_pi"] is False  # +3.22 points from one pair of runs like ours
    assert table.loc["synthetic", "paper_in_pi"] is None
    assert (cifar10["pi_high"] - cifar10["pi_low"]) > (cifar10["ci_high"] - cifar10["ci_low"])
    assert cifar10["paper_treatment_in_pi"] in (True, False)
    note = claims_note(CONFIG, table.reset_index())
    # in percentage points, as every number a reader sees
    assert "hybrid_vs_diffstride (cifar100, hybrid-paper): the paper's single-run delta +3.22 pp " \
           "lies outside" in note
    assert "(cifar10, hybrid-paper): the paper's single-run delta +0.94 pp lies inside" in note


def test_a_by_that_leaves_out_an_axis_still_gives_verdicts(pooling_runs):
    """Two recipes per arm under `by: [dataset.name]`: two runs per seed per arm."""
    runs = pd.concat([pooling_runs, pooling_runs.assign(**{"train.recipe": "official-diffstride"})],
                     ignore_index=True)
    config = {**CONFIG, "comparisons": {"c": {**CONFIG["comparisons"]["hybrid_vs_diffstride"],
                                              "by": ["dataset.name"]}}}
    table = claims_table(runs, config).set_index("dataset")
    assert table.loc["cifar10", "n"] == 2 * N and table.loc["cifar10", "verdict"] == "reproduced"
    assert table.loc["cifar10", "n_pairs"] == 0
    assert "pairing skipped" in table.loc["cifar10", "note"]


def test_a_collapsed_run_is_flagged_listed_and_noted(pooling_runs):
    runs = pooling_runs.copy()
    hybrid = runs.index[(runs["variant"] == "hybrid") & (runs["dataset.name"] == "cifar10")]
    runs.loc[hybrid[4], "test_accuracy"] = 0.10
    table = claims_table(runs, CONFIG).set_index("dataset")
    assert table.loc["cifar10", "n_flagged"] == 1
    assert "1 flagged treatment run(s)" in table.loc["cifar10", "note"]
    assert "1 collapsed treatment run(s) left out" in table.loc["cifar10", "note"]
    assert (table.loc["cifar10", "n"], table.loc["cifar10", "n_collapsed"]) == (N - 1, 1)
    assert table.loc["cifar10", "verdict"] == "reproduced"  # one collapse does not decide
    assert table.loc["cifar10", "iqm_delta"] == pytest.approx(0.0094, abs=0.005)
    outliers = outliers_table(runs, CONFIG)
    assert outliers["run_id"].tolist() == [runs.loc[hybrid[4], "run_id"]]
    assert outliers.loc[0, "robust_z"] < -10
    pooled = pooling_table(runs, CONFIG).set_index(["dataset", "variant"])
    assert pooled.loc[("cifar10", "hybrid"), "n_flagged"] == 1
    assert pooled.loc[("cifar10", "hybrid"), "median"] > 0.92


def test_pooling_table_per_variant(pooling_runs):
    table = pooling_table(pooling_runs, CONFIG).set_index(["dataset", "variant"])
    assert list(table.index.get_level_values("variant")[:3]) == ["strided", "diffstride",
                                                                 "hybrid"]
    row = table.loc[("cifar10", "hybrid")]
    assert row["paper"] == 0.9334 and np.isnan(row["reference"])
    assert table.loc[("cifar10", "diffstride"), "paper"] == 0.924
    assert table.loc[("cifar100", "strided"), "reference"] == 0.6575
    assert row["n"] == N and row["mflops"] == pytest.approx(550, abs=1)
    assert row["train_time_h"] == 1.0
    assert row["accuracy_pct"] == f"{100 * row['mean']:.2f} ± {100 * row['std']:.2f}"
    assert table.loc[("cifar100", "hybrid"), ["n", "n_diverged"]].tolist() == [N - 1, 1]


def test_reference_numbers_stand_only_beside_runs_trained_as_they_were(pooling_runs):
    # The official README's numbers come from its own recipe and network: a row of another
    # recipe gets none (and a note saying why), a row of that recipe gets them.
    official = pooling_runs.assign(**{"train.recipe": "official-diffstride"})
    runs = pd.concat([pooling_runs, official], ignore_index=True)
    config = {**CONFIG, "comparisons": {"hybrid_vs_diffstride": {
        **CONFIG["comparisons"]["hybrid_vs_diffstride"],
        "reference": {**CONFIG["comparisons"]["hybrid_vs_diffstride"]["reference"],
                      "where": {"train.recipe": "official-diffstride", "model.block": "preact"}}}}}
    runs["model.block"] = "preact"
    claims = claims_table(runs, config).set_index(["dataset", "recipe"])
    assert claims.loc[("cifar10", "official-diffstride"), "reference_control"] == 0.9420
    assert np.isnan(claims.loc[("cifar10", "hybrid-paper"), "reference_control"])
    assert "reference numbers are for train.recipe=official-diffstride, model.block=preact" in \
        claims.loc[("cifar10", "hybrid-paper"), "note"]
    table = pooling_table(runs, config).set_index(["recipe", "dataset", "variant"])
    assert table.loc[("official-diffstride", "cifar10", "diffstride"), "reference"] == 0.9420
    assert np.isnan(table.loc[("hybrid-paper", "cifar10", "diffstride"), "reference"])
    # A run of another network under the same recipe is no match either.
    runs.loc[runs["train.recipe"] == "official-diffstride", "model.block"] = "postact"
    claims = claims_table(runs, config).set_index(["dataset", "recipe"])
    assert np.isnan(claims.loc[("cifar10", "official-diffstride"), "reference_control"])


def test_a_variant_study_splits_by_its_other_axes(pooling_runs):
    resnet56 = pooling_runs.assign(**{"model.arch": "resnet56", "test_accuracy": pooling_runs["test_accuracy"] - 0.1})
    runs = pd.concat([pooling_runs.assign(**{"model.arch": "resnet18"}), resnet56], ignore_index=True)
    runs["studies"] = "arch"
    config = {**CONFIG, "studies": {"arch": {"vary": {"model.arch": ["resnet18", "resnet56"],
                                                      "variant": ["diffstride", "hybrid"]}}}}
    table = pooling_table(runs, config, study="arch").set_index(["model.arch", "dataset", "variant"])
    assert list(table.columns[:1]) == ["recipe"]
    gap = table.loc[("resnet18", "cifar10", "hybrid"), "mean"] - table.loc[("resnet56", "cifar10", "hybrid"), "mean"]
    assert gap == pytest.approx(0.1)


def smoothness_runs() -> pd.DataFrame:
    levels = {"1": 0.0, "2": 0.0, "4": 0.0, "16": -0.02}
    cells = [{"model.smoothness": r, "variant": v, "acc": 0.9 + gain}
             for r, gain in levels.items() for v in ("diffstride", "hybrid")]
    return planted(cells, n=5).assign(studies="smoothness")


def test_sweep_table_levels_deltas_and_tests():
    runs = smoothness_runs()
    spec = CONFIG["sweeps"]["smoothness"]
    table = sweep_table(runs, spec)
    hybrid = table[table["variant"] == "hybrid"].set_index("model.smoothness")
    assert list(hybrid.index) == ["1", "2", "4", "16"]  # numeric order
    assert hybrid.loc["4", "default"] and hybrid.loc["4", "delta"] == 0.0
    assert np.isnan(hybrid.loc["4", "p_holm"])
    expected = stats.sweep(runs[runs["variant"] == "hybrid"], "model.smoothness", "4",
                           order=["1", "2", "4", "16"])
    pairwise = expected["pairwise"].set_index("model.smoothness")
    np.testing.assert_allclose(hybrid.loc[pairwise.index, "p"], pairwise["p"])
    np.testing.assert_allclose(hybrid.loc[pairwise.index, "delta"], pairwise["delta"])
    # one family: the whole table's level-vs-default p's, both variants' groups together
    np.testing.assert_allclose(table["p_holm"].dropna(),
                               multipletests(table["p"].dropna(), method="holm")[1])
    assert (hybrid["kruskal_p"] == expected["kruskal_p"]).all()
    assert (hybrid["trend_p"] == expected["trend_p"]).all()
    trend_ps = table.drop_duplicates("variant")["trend_p"]
    np.testing.assert_allclose(table.drop_duplicates("variant")["trend_p_holm"],
                               multipletests(trend_ps, method="holm")[1])
    assert hybrid.loc["16", "delta"] < -0.01 and hybrid.loc["16", "p_holm"] < 0.05
    assert (hybrid["n"] == 5).all() and (table["note"] == "").all()
    unordered = sweep_table(runs, {**spec, "ordered": False})
    assert unordered["trend_p"].isna().all()


def test_sweep_without_completed_default_gets_a_note():
    runs = smoothness_runs()
    runs.loc[runs["model.smoothness"] == "4", "status"] = "diverged"
    table = sweep_table(runs, CONFIG["sweeps"]["smoothness"])
    assert table["note"].str.contains("has no completed runs").all()
    assert table["delta"].isna().all()
    assert table.loc[table["model.smoothness"] == "4", "n_diverged"].tolist() == [5, 5]


def test_write_table_gives_csv_markdown_and_booktabs(tmp_path):
    df = pd.DataFrame({"model.head_pool": ["none", "spectral_50%"], "mean": [0.93341, np.nan],
                       "n": [10, 3], "accuracy_pct": ["93.34 ± 0.12", "n/a"]})
    paths = write_table(df, tmp_path / "sub" / "demo", columns=["model.head_pool", "mean"],
                        note="a note")
    assert [p.name for p in paths] == ["demo.csv", "demo.md", "demo.tex", "demo.html"]
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]), df.replace("n/a", np.nan),
                                  check_dtype=False)
    tex = paths[2].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{lr}"):
        assert rule in tex
    assert r"spectral\_50\%" in tex and r"model.head\_pool" in tex and "% a note" in tex
    md = paths[1].read_text().splitlines()
    assert md[:4] == ["| model.head_pool | mean |", "| --- | ---: |", "| none | 0.9334 |",
                      "| spectral_50% | n/a |"]
    assert md[-1] == "a note"
    page = paths[3].read_text()  # what the report shows: the same cells, the note below
    assert page.startswith("<!DOCTYPE html>") and "<td>spectral_50%</td>" in page and "<p>a note</p>" in page
    assert r"93.34 $\pm$ 0.12" in write_table(df, tmp_path / "all")[2].read_text()
    assert "a\\|b" in to_markdown(pd.DataFrame({"x": ["a|b"]}))


def test_cli_writes_every_table_and_notes_skipped_studies(tmp_path, pooling_runs, capsys):
    runs = pd.concat([pooling_runs, smoothness_runs()], ignore_index=True)
    runs["model.smoothness"] = runs["model.smoothness"].fillna("4")
    runs["model.downsample_at"] = "stem+layer2"
    runs.loc[3, "status"] = "missing"
    runs.to_csv(tmp_path / "runs_table.csv", index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    main(["--runs-table", str(tmp_path / "runs_table.csv"), "--config",
          str(tmp_path / "config.yaml"), "--out", str(tmp_path / "tables")])
    out = capsys.readouterr().out
    assert "no run belongs to study 'placement'; sweep table 'placement' skipped" in out
    for name in ("claims", "pooling", "smoothness", "status"):
        for suffix in (".csv", ".md", ".tex", ".html"):
            assert (tmp_path / "tables" / f"{name}{suffix}").stat().st_size > 0
    assert not (tmp_path / "tables" / "placement.csv").exists()
    claims = pd.read_csv(tmp_path / "tables" / "claims.csv")
    assert list(claims.columns[:len(CLAIM_COLUMNS)]) == list(CLAIM_COLUMNS)
    markdown = (tmp_path / "tables" / "claims.md").read_text()
    assert "Verdict rule" in markdown and " ".join(stats.VERDICT_RULE.split()) in markdown
    header = markdown.splitlines()[0]
    for shown in ("verdict", "ci_level", "family", "family_size", "p0_holm", "p_claim_holm",
                  "p_tost_holm", "paper_in_pi", "delta (pp)", "ci_low (pp)", "paper_value (%)",
                  "mean (%)", "n", "n_control", "n_failed", "n_failed_control", "n_diverged",
                  "n_diverged_control", "n_collapsed", "n_collapsed_control", "n_flagged",
                  "n_flagged_control", "failure_p", "seeds_needed", "seeds_needed_sd_upper"):
        assert f"| {shown} |" in header  # both arms' counts in every rendering
        assert shown.replace("%", r"\%").replace("_", r"\_") in \
            (tmp_path / "tables" / "claims.tex").read_text()
        assert f"<th>{shown}</th>" in (tmp_path / "tables" / "claims.html").read_text()
    assert "Confirmatory family: 2 rows" in markdown and "exploratory family: 1 rows" in markdown
    verdicts = pd.read_csv(tmp_path / "tables" / "verdicts.csv")
    assert len(verdicts) == len(claims) and "delta_pp" in verdicts.columns
    assert (tmp_path / "tables" / "landing.html").read_text().count("<img") == 1
    runs_html = (tmp_path / "tables" / "runs.html").read_text()
    assert runs_html.count("<tr") == len(runs) + 1  # every run and the heading
    assert "holm-adjusted across every level of every group" in \
        (tmp_path / "tables" / "smoothness.md").read_text()
    assert (tmp_path / "tables" / "outliers.csv").exists()
    status = pd.read_csv(tmp_path / "tables" / "status.csv").set_index(["study", "dataset"])
    assert status.loc[("pooling", "cifar10"), ["completed", "missing"]].tolist() == [29, 1]


def test_what_a_reader_sees_is_in_percent_and_points(tmp_path, pooling_runs):
    """The CSV keeps fractions; the Markdown, LaTeX and HTML show percent and points, each
    such column's name saying its unit."""
    runs = pd.concat([pooling_runs, smoothness_runs()], ignore_index=True)
    runs["model.smoothness"] = runs["model.smoothness"].fillna("4")
    written = make_tables(runs, {k: v for k, v in CONFIG.items() if k != "sweeps"}
                          | {"sweeps": {"smoothness": CONFIG["sweeps"]["smoothness"]}},
                          tmp_path / "tables")
    claims_csv = pd.read_csv(written["claims"][0])
    claims_md = written["claims"][1].read_text().splitlines()
    header = [c.strip() for c in claims_md[0].strip("|").split("|")]
    cifar10 = [c.strip() for c in claims_md[2].strip("|").split("|")]
    row = claims_csv.iloc[0]
    assert row["dataset"] == "cifar10" and abs(row["delta"]) < 0.05  # a fraction in the CSV
    assert float(cifar10[header.index("delta (pp)")]) == pytest.approx(100 * row["delta"], abs=0.01)
    assert float(cifar10[header.index("mean (%)")]) == pytest.approx(100 * row["mean"], abs=0.01)
    assert float(cifar10[header.index("paper_delta (pp)")]) == pytest.approx(0.94)
    pooling_md = written["pooling"][1].read_text().splitlines()[0]
    assert "mean ± std (%)" in pooling_md and "median (%)" in pooling_md
    sweep_md = written["smoothness"][1].read_text().splitlines()[0]
    assert "delta (pp)" in sweep_md and "median (%)" in sweep_md
    for path in (written["claims"][3], written["verdicts"][3]):  # the report's HTML pages
        page = path.read_text()
        assert "(pp)" in page


def test_the_verdict_table_is_short_in_points_and_coloured(pooling_runs):
    claims = claims_table(pooling_runs, CONFIG)
    table = verdict_table(claims)
    assert list(table["claim"]) == list(claims["claim"])
    assert table["delta_pp"].tolist() == pytest.approx((100 * claims["delta"]).tolist())
    shown = verdict_display(table)
    assert list(shown.columns) == ["claim", "dataset", "recipe", "delta (pp)", "interval (pp)",
                                   "level", "paper delta (pp)", "verdict", "family",
                                   "n (treatment / control)", "failed (treatment / control)"]
    cifar10 = shown.set_index("dataset").loc["cifar10"]
    assert cifar10["paper delta (pp)"] == "+0.94" and cifar10["n (treatment / control)"] == "10 / 10"
    low, high = 100 * claims.set_index("dataset").loc["cifar10", ["ci_low", "ci_high"]]
    assert cifar10["interval (pp)"] == f"[{low:+.2f}, {high:+.2f}]" and cifar10["level"] == "97.5%"
    assert shown.set_index("dataset").loc["cifar100", "n (treatment / control)"] == "9 / 10"
    assert shown.set_index("dataset").loc["cifar100", "failed (treatment / control)"] == \
        "1 of 10 / 0 of 10"
    page = to_html(shown, "verdicts")
    for verdict in set(claims["verdict"]):  # each verdict a badge in its own colour
        assert f"background:{VERDICT_COLOURS[verdict]}" in page
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICT_COLOURS)


def test_no_interval_in_the_verdict_table_below_3_runs_per_arm(pooling_runs):
    two = pooling_runs[pooling_runs["seed"] < 2]
    claims = claims_table(two, CONFIG)
    assert claims["ci_low"].isna().all() and (claims["verdict"] == "inconclusive").all()
    shown = verdict_display(verdict_table(claims))
    assert set(shown["interval (pp)"]) <= {"n = 2: no interval", "n = 1: no interval"}  # ...the reader is told why not


def test_a_sweep_shows_what_each_level_computes():
    """At R = 16 DiffStride starts without downsampling: the smoothness table says what each
    level's nets cost, at the initial strides and the learned ones, from the result files."""
    runs = smoothness_runs()
    initial = {"1": (2785.3e6, "8x8"), "2": (4360.1e6, "12x12"), "4": (8451.2e6, "18x18"), "16": (22949.1e6, "32x32")}
    runs["initial_cost/flops"] = runs["model.smoothness"].map(lambda r: initial[r][0])
    runs["initial_cost/final_map"] = runs["model.smoothness"].map(lambda r: initial[r][1])
    runs["flops"] = runs["initial_cost/flops"] / 2
    runs["cost/final_map"] = "4x4"
    table = sweep_table(runs, CONFIG["sweeps"]["smoothness"])
    hybrid = table[table["variant"] == "hybrid"].set_index("model.smoothness")
    assert hybrid.loc["16", "final_map_initial"] == "32x32" and hybrid.loc["4", "final_map_initial"] == "18x18"
    assert hybrid.loc["16", "mflops_initial"] == pytest.approx(22949.1)
    assert hybrid.loc["1", "mflops_learned"] == pytest.approx(2785.3 / 2)
    assert (hybrid["final_map_learned"] == "4x4").all()
    assert list(hybrid.index) == ["1", "2", "4", "16"]  # the merge keeps the table's order
    # results from before these fields: no compute columns, nothing else changes
    assert "mflops_initial" not in sweep_table(smoothness_runs(), CONFIG["sweeps"]["smoothness"])


def test_the_two_families_are_shown_apart_and_the_forest_plot_draws_the_claims(tmp_path, pooling_runs):
    """Rows with a paper number (confirmatory) and rows without (exploratory) are corrected
    apart, so they are shown apart: the confirmatory section first whatever the config's
    order, a heading per family with its size on the landing page, and the forest plot draws
    the paper's claims (every row only where no row has a paper number)."""
    from analysis.tables import main
    from analysis.verdicts import forest_rows

    exploratory = {"study": "pooling", "treatment": {"variant": "hybrid"}, "control": {"variant": "strided"},
                   "by": ["dataset.name", "train.recipe"]}
    config = {**CONFIG, "comparisons": {"hybrid_vs_strided": exploratory, **CONFIG["comparisons"]}}
    table = claims_table(pooling_runs, config)
    families = table["family"].tolist()
    assert families == sorted(families, key=lambda f: f != "confirmatory") and "exploratory" in families
    assert set(forest_rows(table)["family"]) == {"confirmatory"}
    only_exploratory = claims_table(pooling_runs, {**CONFIG, "comparisons": {"hybrid_vs_strided": exploratory}})
    assert len(forest_rows(only_exploratory)) == len(only_exploratory) > 0

    runs_path = tmp_path / "runs_table.csv"
    pooling_runs.to_csv(runs_path, index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["--runs-table", str(runs_path), "--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "tables")])
    landing = (tmp_path / "tables" / "landing.html").read_text()
    n = {f: families.count(f) for f in ("confirmatory", "exploratory")}
    assert f"Confirmatory claims: the paper's numbers (a family of {n['confirmatory']}" in landing
    assert f"Exploratory comparisons: no paper number (a family of {n['exploratory']}" in landing
    assert landing.index("Confirmatory claims") < landing.index("Exploratory comparisons")
