"""What the Snakemake report shows beyond the tables and figures: category numbers that never
clash, the runs page (every run, a filter, sorting, offline), the landing page's verdicts and
its seeds per study taken from the config."""

import copy
import re
import subprocess
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.report import FIXED_STUDIES, report_categories
from analysis.runs_page import runs_page
from analysis.tables import html_table
from analysis.verdicts import landing_fragment, verdict_display, verdict_table

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
TINY = yaml.safe_load((ROOT / "tests" / "workflow" / "tiny.yaml").read_text())
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


def numbers(categories: dict) -> list[int]:
    return [int(name.split(".")[0]) for name in categories.values()]


def test_the_paper_config_numbers_claims_studies_runs_in_order():
    categories = report_categories(PAPER)
    assert list(categories) == ["claims", *FIXED_STUDIES, "runs"]
    # 12 categories: zero-padded, so that "12. Runs" sorts after "02. ..."
    assert categories["claims"] == "01. Claims" and categories["runs"] == "12. Runs"
    assert categories["init_stride"] == "10. Initial strides"


def test_a_new_study_and_sweep_get_their_own_number_and_runs_stay_last():
    config = copy.deepcopy(PAPER)
    config["studies"]["stride_lr"] = {"vary": {"dataset.name": ["cifar10"],
                                               "variant": ["diffstride"],
                                               "train.stride_lr": [0.1, 1.0]}}
    config["studies"]["heads"] = {"vary": {"dataset.name": ["cifar10"],
                                           "variant": ["hybrid", "diffstride"]}}
    config["sweeps"]["stride_lr"] = {"study": "stride_lr", "axis": "train.stride_lr",
                                     "default": "1.0", "by": ["dataset.name"]}
    categories = report_categories(config)
    names = list(categories.values())
    assert len(set(names)) == len(names) and numbers(categories) == list(range(1, 15))
    assert categories["stride_lr"] == "12. stride_lr" and categories["heads"] == "13. heads"  # config order
    assert categories["runs"] == "14. Runs" and categories["claims"] == "01. Claims"
    # the report lists categories alphabetically: the padded numbers keep this order
    assert sorted(names) == names


@pytest.mark.parametrize("config", [TINY, DEMO], ids=["tiny", "demo"])
def test_a_smaller_config_numbers_only_what_it_has(config):
    categories = report_categories(config)
    assert numbers(categories) == list(range(1, len(categories) + 1))
    assert list(categories)[0] == "claims" and list(categories)[-1] == "runs"
    assert sorted(categories.values()) == list(categories.values())


def test_without_comparisons_there_is_no_claims_category():
    config = {k: v for k, v in TINY.items() if k != "comparisons"}
    categories = report_categories(config)
    assert "claims" not in categories and categories["pooling"] == "1. Pooling variants"


def planted_runs(n: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    statuses = ["completed"] * (n - 3) + ["diverged", "missing", "corrupt"]
    return pd.DataFrame({
        "run_id": [f"{i:016x}" for i in range(n)], "name": [f"run{i}" for i in range(n)],
        "studies": "pooling", "variant": ["hybrid", "diffstride"] * (n // 2) + ["strided"] * (n % 2),
        "seed": [i % 5 for i in range(n)], "dataset.name": "cifar10",
        "train.recipe": "hybrid-paper", "status": statuses,
        "test_accuracy": [0.9 + rng.normal(0, 0.003) if s == "completed" else np.nan
                          for s in statuses],
        "params": 11e6, "flops": 5.5e8})


def test_the_runs_page_has_every_run_a_filter_and_no_external_fetch():
    runs = planted_runs()
    page = runs_page(runs, {})
    assert page.count("<tr") == len(runs) + 1
    for run_id in runs["run_id"]:
        assert f"<td>{run_id}</td>" in page
    assert "<input id='filter'" in page and "addEventListener" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page  # offline
    assert "test accuracy (%)" in page
    value = 100 * runs.loc[0, "test_accuracy"]
    assert f">{value:.2f}</td>" in page  # accuracies in percent
    assert page.count("<tr class='diverged'>") == 1 and page.count("<tr class='missing'>") == 1


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_runs_page_filters_in_a_browser(tmp_path):
    """The page's own script run by Chromium: `status=diverged` leaves one run."""
    page = runs_page(planted_runs(), {}).replace(
        "update();\n</script>",
        "input.value = 'status=diverged'; update();\n</script>")
    path = tmp_path / "runs.html"
    path.write_text(page)
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
         path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "1 of 25 runs" in dom.stdout
    assert len(re.findall(r"<tr[^>]* hidden", dom.stdout)) == 24


def test_the_landing_fragment_holds_the_forest_plot_and_the_coloured_verdicts():
    claims = pd.DataFrame({
        "claim": ["a_vs_b"], "dataset": ["cifar10"], "paper_in_pi": [True],
        "recipe": ["hybrid-paper"], "paper_control": [0.92], "delta": [0.0094],
        "ci_low": [0.005], "ci_high": [0.014], "paper_delta": [0.0094],
        "verdict": ["reproduced"], "n": [5], "n_control": [5]})
    display = verdict_display(verdict_table(claims))
    fragment = landing_fragment(claims, html_table(display), note="a note")
    assert fragment.count("<img") == 1 and "data:image/png;base64," in fragment
    assert "background:#009E73" in fragment and ">reproduced</span>" in fragment
    assert "+0.94" in fragment and "5 / 5" in fragment
    assert fragment.isascii()  # read by docutils whatever the locale
    assert "No verdicts" in landing_fragment(None, "", note="")


def render_landing_text(config: dict) -> str:
    """workflow/report/workflow.rst through Jinja as Snakemake renders it (categories
    stand-in: objects with a name)."""
    class Category:
        def __init__(self, name):
            self.name = name

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    text = (ROOT / "workflow" / "report" / "workflow.rst").read_text()
    categories = {Category(name): {} for name in report_categories(config).values()}
    return env.from_string(text).render(snakemake=type("S", (), {"config": config}),
                                        categories=categories)


def test_the_landing_text_gives_each_studys_seeds_from_the_config():
    text = render_landing_text(DEMO)
    assert "pooling 3," in text and "first_release 2," in text and "init_stride 2." in text
    assert "3 seeds per grid point" not in text
    assert "`1. Claims`_" in text  # a link to the category
    assert "tables/landing.html" in text  # the verdicts embedded
