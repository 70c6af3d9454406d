"""Sequential studies on the studies' side (hybrid/studies/stages.py): which cells grow stage by
stage, the runs of a plan, the config's checks and the cost of the design."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.claims import planned_families
from analysis.sequential import SPENDING_KINDS
from hybrid.studies import resolve_runs, runs_table
from hybrid.studies.checks import ConfigError, check_config
from hybrid.studies.cost import run_gpu_hours
from hybrid.studies.stages import SPENDING, comparison_rows, first_stage, sequential_hours

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "tests" / "workflow" / "tiny.yaml").read_text())
PAPER = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SEQUENTIAL = yaml.safe_load((ROOT / "config" / "sequential.yaml").read_text())


def tiny(stages=(3, 5, 8)) -> dict:
    """The tiny study with a second comparison sharing the DiffStride cell, sequential."""
    config = copy.deepcopy(TINY)
    config["comparisons"]["diffstride_vs_strided"] = {
        "study": "pooling", "treatment": {"variant": "diffstride"}, "control": {"variant": "strided"},
        "by": ["dataset.name", "train.recipe"]}
    config["sequential"] = {"stages": list(stages)}
    return config


def seeds_by_cell(runs, study="pooling"):
    out = {}
    for run in runs:
        if study in run.studies:
            out.setdefault((run.variant, run.config.model.smoothness), set()).add(run.config.seed)
    return out


def test_a_comparison_s_cells_grow_by_stage_and_the_others_keep_their_seeds():
    config = tiny()
    every = resolve_runs(copy.deepcopy(config))  # no plan: every run the design may train
    assert seeds_by_cell(every)[("hybrid", 4.0)] == set(range(8))
    assert seeds_by_cell(every)[("strided", 4.0)] == set(range(8))
    # the smoothness study is no comparison's: its fixed seeds, in the first stage and at the last
    first = resolve_runs(copy.deepcopy(config), {})
    for runs in (every, first):
        assert seeds_by_cell(runs, "smoothness") == {("diffstride", 2.0): {0, 1}, ("diffstride", 4.0): {0, 1}}
    assert {cell: seeds for cell, seeds in seeds_by_cell(first).items()} == {
        ("strided", 4.0): {0, 1, 2}, ("diffstride", 4.0): {0, 1, 2}, ("hybrid", 4.0): {0, 1, 2}}
    # a run shared with the smoothness study is the same run, in both studies
    shared = [run for run in first if run.studies == ["pooling", "smoothness"]]
    assert {run.config.seed for run in shared} == {0, 1} and all(run.cells for run in shared)


def test_a_plan_adds_seeds_to_its_cells_only_and_never_renames_a_run():
    config = tiny()
    first = {run.run_id: run for run in resolve_runs(copy.deepcopy(config), {})}
    strided = next(run for run in first.values() if run.variant == "strided")
    (cell,) = strided.cells
    assert cell.startswith("pooling:")
    grown = {run.run_id: run for run in resolve_runs(copy.deepcopy(config), {cell: 5})}
    assert set(first) < set(grown)  # a seed is a seed: every first-stage run keeps its id
    added = [grown[r] for r in set(grown) - set(first)]
    assert sorted(run.config.seed for run in added) == [3, 4] and {run.variant for run in added} == {"strided"}


def test_every_cell_has_one_key_for_all_its_seeds():
    runs = resolve_runs(tiny())
    keys = {}
    for run in runs:
        for cell in run.cells:
            keys.setdefault(cell, set()).add(run.variant)
    assert sorted(v for (v,) in keys.values()) == ["diffstride", "hybrid", "strided"]


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["sequential"].update(stages=[3, 3, 5]), "sequential.stages: [3, 3, 5] must be seeds per arm"),
    (lambda c: c["sequential"].update(stages=[2, 4]), "sequential.stages.0: 2 is less than the minimum of 3"),
    (lambda c: c["sequential"].update(spending="linear"), "sequential.spending: 'linear' is not one of"),
    (lambda c: c.pop("comparisons") and c.pop("sweeps"), "sequential: a sequential study stops comparisons"),
    (lambda c: c["comparisons"]["hybrid_vs_diffstride"]["control"].update(seed=0),
     "comparisons.hybrid_vs_diffstride.control.seed: in a sequential study"),
])
def test_a_bad_sequential_section_is_refused_naming_the_key(edit, message):
    config = tiny()
    edit(config)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_config(config)


def test_the_schema_knows_the_analysis_spending_functions():
    assert SPENDING == SPENDING_KINDS


def test_the_studies_form_the_rows_the_analysis_forms():
    """The cost counts the comparison rows the looks will look at: the same rows, by family."""
    config = {**PAPER, **SEQUENTIAL}
    runs = check_config(config)
    rows = comparison_rows(config, runs)
    families = {f: sum(r["family"] == f for r in rows) for f in ("confirmatory", "exploratory")}
    assert families == planned_families(pd.DataFrame(runs_table(runs)), config) == {
        "confirmatory": 16, "exploratory": 14}
    # each row has two cells, or more where a comparison pools several
    assert all(len(row["cells"]) >= 2 for row in rows)


def test_the_design_costs_between_its_first_and_its_last_stage():
    config = tiny()
    runs = resolve_runs(copy.deepcopy(config))
    hours = sequential_hours(config, runs, lambda c: run_gpu_hours(c))
    first = resolve_runs(copy.deepcopy(config), {})
    assert hours["minimum"] == pytest.approx(sum(run_gpu_hours(r.config) for r in first))
    assert hours["maximum"] == pytest.approx(sum(run_gpu_hours(r.config) for r in runs))
    assert hours["minimum"] < hours["expected"] < hours["maximum"]


def test_the_readme_s_cost_command_prints_the_sequential_range_it_quotes():
    command = "python -m hybrid.studies config/config.yaml config/sequential.yaml --cost"
    readme = (ROOT / "README.md").read_text()
    assert command in readme
    done = subprocess.run([sys.executable, *command.split()[1:]], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("Sequential (stages [3, 5, 8, 12], obrien-fleming spending): 520 runs at the first "
                           "stage, 888 at most"), line
    hours = {name: float(value) for name, value in re.findall(r"(minimum|expected|maximum) ([0-9.]+)", line)}
    assert hours["minimum"] < hours["expected"] < hours["maximum"]
    quoted = re.search(r"For\s+the paper study at the H100 rates: (\d+), (\d+) and (\d+) GPU-hours", readme)
    assert quoted, "the README quotes the paper study's sequential cost"
    for name, value in zip(("minimum", "expected", "maximum"), quoted.groups()):
        assert float(value) == pytest.approx(hours[name], rel=0.02), name


@pytest.mark.parametrize("config", [tiny(), {**PAPER, **SEQUENTIAL}], ids=["tiny", "paper"])
def test_the_first_stage_read_off_every_run_is_the_first_stage_plan(config):
    """The workflow takes the first stage from the runs it resolved once (stages.first_stage)."""
    every = resolve_runs(copy.deepcopy(config))
    planned = resolve_runs(copy.deepcopy(config), {})
    assert [r.run_id for r in first_stage(every, config["sequential"]["stages"])] == [r.run_id for r in planned]
