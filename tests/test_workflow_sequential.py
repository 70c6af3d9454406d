"""A sequential study through the real workflow: the first stage trained, results planted so
that one comparison row decides at the first look and the other does not, then the looks (a
Snakemake checkpoint each) growing the DAG by the undecided row's next seeds only, locally,
in partial mode and through Slurm; and the paper study's dry run, which plans the first
stage only."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from hybrid.studies import resolve_runs
from test_slurm import TIMEOUT_S, run_snakemake, slurm_cluster_or_skip
from test_workflow import ROOT, TINY, job_counts, snakemake

# The tiny study's pooling cells, two comparisons that share the DiffStride cell, two looks.
CONFIG = copy.deepcopy(TINY)
del CONFIG["studies"]["first_release"], CONFIG["studies"]["smoothness"], CONFIG["sweeps"]
CONFIG["comparisons"]["diffstride_vs_strided"] = {
    "study": "pooling", "treatment": {"variant": "diffstride"}, "control": {"variant": "strided"},
    "by": ["dataset.name", "train.recipe"]}
CONFIG["sequential"] = {"stages": [3, 4]}
# Planted test accuracies of the first stage: the hybrid 30 points above DiffStride (decided
# at once), DiffStride and strided within their spread (undecided).
PLANTED = {"hybrid": [0.80, 0.81, 0.82], "diffstride": [0.50, 0.51, 0.52], "strided": [0.45, 0.55, 0.50]}
ROW_A = "hybrid_vs_diffstride · dataset.name=synthetic · train.recipe=hybrid-paper"
ROW_B = "diffstride_vs_strided · dataset.name=synthetic · train.recipe=hybrid-paper"


def runs_by(config, plan=None):
    return {(run.variant, run.config.seed): run.run_id for run in resolve_runs(copy.deepcopy(config), plan)}


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
    """A working directory whose first stage has trained, its accuracies replaced by PLANTED
    (each file's time kept, so the workflow sees the runs as they finished)."""
    workdir = tmp_path_factory.mktemp("sequential")
    first = runs_by(CONFIG, {})
    assert len(first) == 9
    targets = [f"results/runs/{run}/result.json" for run in first.values()]
    done = snakemake(workdir, CONFIG, *targets, cores=4)
    assert done.returncode == 0, done.stderr[-4000:]
    for (variant, seed), run in first.items():
        path = workdir / "results" / "runs" / run / "result.json"
        stat = path.stat()
        result = json.loads(path.read_text())
        path.write_text(json.dumps({**result, "test_accuracy": PLANTED[variant][seed]}))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return workdir


def copy_of(workdir, tmp_path):
    shutil.copytree(workdir, tmp_path / "study", symlinks=True)
    return tmp_path / "study"


def look(workdir, j):
    return json.loads((workdir / "results" / "sequential" / f"look_{j}.json").read_text())


def trained(output: str) -> int:
    return len(re.findall(r"^(?:local)?rule train:", output, re.M))


@pytest.fixture(scope="module")
def finished(first_stage, tmp_path_factory):
    workdir = copy_of(first_stage, tmp_path_factory.mktemp("finished"))
    done = snakemake(workdir, CONFIG, "--report", "results/report.html", "--report-after-run", cores=4)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir, done.stdout + done.stderr


def test_one_row_stops_at_the_first_look_and_the_other_gets_the_next_seeds(finished):
    workdir, output = finished
    first = look(workdir, 0)
    rows = {row["key"]: row for row in first["rows"]}
    assert (rows[ROW_A]["state"], rows[ROW_A]["verdict"]) == ("stopped", "higher")
    assert (rows[ROW_B]["state"], rows[ROW_B]["verdict"]) == ("continuing", "inconclusive")
    # the DAG grew by exactly the undecided row's next seed: DiffStride (shared) and strided
    grown = runs_by(CONFIG, first["plan"])
    assert set(grown) - set(runs_by(CONFIG, {})) == {("diffstride", 3), ("strided", 3)}
    assert trained(output) == 2, output[-3000:]
    second = {row["key"]: row for row in look(workdir, 1)["rows"]}
    assert (second[ROW_B]["state"], second[ROW_B]["look"], second[ROW_B]["seeds"]) == ("stopped", 1, 4)
    assert second[ROW_A] == rows[ROW_A]  # a stopped row stays as it stopped


def test_the_report_says_what_the_design_did(finished):
    workdir, _ = finished
    results = workdir / "results"
    runs = pd.read_csv(results / "runs.csv")
    assert len(runs) == 11 and sorted(runs.loc[runs["variant"] == "hybrid", "seed"]) == [0, 1, 2]
    design = pd.read_csv(results / "tables" / "sequential.csv").set_index("claim")
    assert design.loc["hybrid_vs_diffstride", ["look", "seeds", "verdict"]].tolist() == [0, 3, "higher"]
    assert design.loc["diffstride_vs_strided", ["look", "seeds"]].tolist() == [1, 4]
    assert (design["alpha_spent"] <= 0.025 + 1e-12).all() and (design["family_size"] == 2).all()
    # the claims read each row at its look: the hybrid row over DiffStride's first 3 seeds
    claims = pd.read_csv(results / "tables" / "claims.csv").set_index("claim")
    assert claims.loc["hybrid_vs_diffstride", "n_control"] == 3
    assert claims.loc["hybrid_vs_diffstride", "verdict"] == "higher"
    cost = pd.read_csv(results / "tables" / "sequential_cost.csv").set_index("study")
    assert cost.loc["pooling", ["runs", "runs_fixed"]].tolist() == [11, 12]
    assert cost.loc["pooling", "gpu_h"] < cost.loc["pooling", "gpu_h_fixed"]
    report = (results / "report.html").read_text()
    assert "sequential design: where each row stopped" in report
    assert "sequential design: GPU-hours" in report


def test_a_finished_sequential_study_plans_no_training(finished):
    workdir, _ = finished
    dry = snakemake(workdir, CONFIG, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "train" not in job_counts(dry.stdout), dry.stdout[-3000:]


def test_raising_the_last_stage_extends_the_study_without_retraining(finished, tmp_path):
    workdir = copy_of(finished[0], tmp_path)
    config = copy.deepcopy(CONFIG)
    config["sequential"]["stages"] = [3, 4, 5]
    done = snakemake(workdir, config, cores=4)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = {row["key"]: row for row in look(workdir, 2)["rows"]}
    # the rows' looks are read again at the new design's levels; only runs beyond seed 3 train
    new = {(v, s) for v, s in runs_by(config, look(workdir, 2)["plan"])} - set(runs_by(CONFIG, look(finished[0], 1)["plan"]))
    assert trained(done.stdout + done.stderr) == len(new)
    assert all(seed == 4 for _, seed in new)
    assert rows[ROW_A]["state"] == "stopped"


def test_a_partial_report_shows_the_row_waiting_for_its_next_stage(first_stage, tmp_path):
    workdir = copy_of(first_stage, tmp_path)
    done = snakemake(workdir, {**CONFIG, "partial": True}, "--report", "results/report.html",
                     "--report-after-run", cores=4)
    assert done.returncode == 0, done.stderr[-4000:]
    assert trained(done.stdout + done.stderr) == 0
    design = pd.read_csv(workdir / "results" / "tables" / "sequential.csv").set_index("claim")
    assert design.loc["hybrid_vs_diffstride", "state"] == "stopped"
    assert design.loc["diffstride_vs_strided", ["state", "look", "unfinished"]].tolist() == ["waiting", 1, 2]
    status = pd.read_csv(workdir / "results" / "run_status.csv").set_index("study")
    assert status.loc["pooling", ["completed", "missing", "total"]].tolist() == [9, 2, 11]
    assert (workdir / "results" / "report.html").exists()


def test_the_sequential_study_runs_through_slurm(first_stage, tmp_path):
    slurm_cluster_or_skip()
    workdir = copy_of(first_stage, tmp_path)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    # the README's command, the tiny study's config in place of the paper study's two files
    command = "snakemake --cores all --profile slurm --configfile config/config.yaml config/sequential.yaml"
    assert command in (ROOT / "README.md").read_text()
    args = [sys.executable, "-m", *command.replace("config/config.yaml config/sequential.yaml", str(path)).split(),
            "--replace-workflow-config", "--directory", str(workdir),
            "--slurm-init-seconds-before-status-checks", "2", "--slurm-status-command", "squeue", "--verbose"]
    proc = run_snakemake(args, TIMEOUT_S)
    assert proc.returncode == 0, f"snakemake --profile slurm failed:\n{proc.stdout[-8000:]}"
    calls = [line for line in proc.stdout.splitlines() if "sbatch call:" in line and "rule_train" in line]
    assert len(calls) == 2, proc.stdout[-4000:]
    later = runs_by(CONFIG, look(workdir, 0)["plan"])
    for key in (("diffstride", 3), ("strided", 3)):
        result = json.loads((workdir / "results" / "runs" / later[key] / "result.json").read_text())
        assert result["slurm_job_id"], f"{key}: trained outside Slurm"
    assert {row["state"] for row in look(workdir, 1)["rows"]} == {"stopped"}


def test_the_paper_study_in_sequential_mode_plans_its_first_stage_only():
    """The README's dry run of the paper study as a sequential design, as written."""
    command = "snakemake -n --configfile config/config.yaml config/sequential.yaml"
    assert command in (ROOT / "README.md").read_text()
    dry = subprocess.run(command.split(), cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"})
    assert dry.returncode == 0, dry.stderr[-3000:]
    paper = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    paper |= yaml.safe_load((ROOT / "config" / "sequential.yaml").read_text())
    first, every = resolve_runs(copy.deepcopy(paper), {}), resolve_runs(copy.deepcopy(paper))
    counts = job_counts(dry.stdout)
    assert counts["train"] == len(first) == 520 < len(every) == 888
    assert counts["look"] == 4
    assert "sequential: 520 runs at the first stage" in dry.stdout + dry.stderr


def test_the_status_counts_the_runs_planned_so_far(finished):
    workdir, _ = finished
    status = subprocess.run([sys.executable, "-m", "hybrid.studies", "config.yaml", "--status"], cwd=workdir,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "sequential: 11 runs planned after look 2 of 2, of 12 at most"
    assert lines[2].split() == ["pooling", "11", "0", "0", "0", "0", "0", "0"]
