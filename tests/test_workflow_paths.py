"""The workflow where paths need shell quoting: a working directory, results and data root
whose path holds a space and a non-ASCII letter."""

import copy
import re

import pandas as pd

from test_workflow import TINY, snakemake


def test_the_tiny_study_runs_where_the_paths_hold_a_space(tmp_path):
    workdir = tmp_path / "my results é"
    workdir.mkdir()
    config = copy.deepcopy(TINY)
    config["seeds"] = [0]  # one seed per cell: the paths are the point, not the runs
    config["results"] = str(workdir / "results")
    config["base"]["dataset"]["root"] = str(workdir / "data set")
    done = snakemake(workdir, config)
    assert done.returncode == 0, done.stderr[-4000:]

    results = workdir / "results"
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == 5
    for run_id in runs["run_id"]:
        assert (results / "runs" / run_id / "result.json").exists(), run_id
    assert set(pd.read_csv(results / "runs_table.csv")["status"]) == {"completed"}
    assert (results / "tables" / "claims.csv").exists()
    assert (results / "figures" / "claims_forest.png").exists()
    assert (results / "tracking" / "synced.txt").exists()
    # the data job's output went to its log, and the data to the root the config names
    (data_log,) = (results / "logs" / "data").glob("*.log")
    assert data_log.stat().st_size > 0
    assert (workdir / "data set").is_dir()
    # nothing written where a command split a path at its space ("my", "set", "results")
    assert [p.name for p in tmp_path.iterdir()] == ["my results é"]
    assert sorted(p.name for p in workdir.iterdir()) == [".snakemake", "config.yaml", "data set", "results"]


def test_a_results_folder_that_needs_quoting_below_the_working_directory_stops_in_one_line(tmp_path):
    """The training rule's command text is fixed (a changed text retrains every finished
    run), so its paths must need no quoting: a results folder whose own name does is told."""
    config = copy.deepcopy(TINY)
    config["results"] = "my results"
    failed = snakemake(tmp_path, config, "-n")
    assert failed.returncode != 0
    assert re.search(r"results: 'my results' .*quot", failed.stdout + failed.stderr)
    assert not (tmp_path / "my results").exists() and not (tmp_path / "my").exists()
