"""The workflow through the project's Slurm profile, on a real Slurm cluster.

CI brings up a one-node cluster on the test host first (`bash .ci/slurm.sh`) and says so
with HYBRID_TEST_SLURM=1. Only then does the test submit anything: `make test` on a real
cluster's login node must never put the tiny study on the user's default partition. It
runs the tiny study with `--profile slurm`, so every training run is an sbatch job, and
checks that each run finished inside Slurm.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "workflow" / "tiny.yaml"
PROFILE = ROOT / "slurm" / "config.yaml"
TIMEOUT_S = 300
USABLE_STATES = {"idle", "mixed", "allocated", "completing"}
RUNS = 5  # the tiny study at one seed


OPT_IN = "HYBRID_TEST_SLURM"  # set by .ci/run once its own test cluster is up


def slurm_cluster_or_skip() -> None:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"submits jobs: runs only on the test cluster of .ci/slurm.sh, which sets {OPT_IN}=1 "
                    "(.ci/run); set it yourself only on a cluster where test jobs may run")
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm client (sinfo) on PATH; `bash .ci/slurm.sh` starts a test cluster")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip("the Slurm controller did not answer `sinfo` within 10 s")
    states = {s.rstrip("*~#!%$@^-") for s in out.stdout.split()}
    if out.returncode != 0 or not states & USABLE_STATES:
        pytest.skip(f"no Slurm node takes jobs (sinfo: {out.stdout.strip() or out.stderr.strip()!r})")


def run_snakemake(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Snakemake in its own process group; on timeout it is interrupted, so that the
    executor plugin cancels its Slurm jobs, and only then killed."""
    # The rules call `python`: this interpreter's environment, also inside the Slurm jobs
    # (sbatch exports the submitting environment).
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"snakemake --profile slurm ran past {timeout} s:\n{out[-6000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out)


def test_profile_is_out_of_the_box():
    """The profile must run on a cluster with a default partition and no accounts:
    partition, account and GPU model stay commented placeholders."""
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    # the plugin picks sacct or squeue itself; hard-coding one overrode sacct where it works
    assert "slurm-status-command" not in profile
    assert not {"slurm_partition", "slurm_account", "gpu_model"} & set(profile.get("default-resources") or {})
    assert not {"slurm_partition", "slurm_account", "gpu_model"} & set(profile["set-resources"]["train"])
    assert "--signal=TERM@" in profile["set-resources"]["train"]["slurm_extra"]
    assert "train=1" in profile["group-components"]


def test_the_plugin_floor_has_every_key_the_profile_and_tests_use():
    """`slurm-status-command` (which the test cluster needs) first appears in
    snakemake-executor-plugin-slurm 2.0.1; with an older plugin Snakemake stops with
    "unrecognized arguments"."""
    import tomllib

    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    plugin = next(Requirement(d) for d in deps if d.startswith("snakemake-executor-plugin-slurm"))
    assert "2.0.0" not in plugin.specifier and "2.0.1" in plugin.specifier


def test_tiny_study_runs_through_slurm(tmp_path):
    slurm_cluster_or_skip()
    slurm_logs = tmp_path / "slurm_logs"
    config = tmp_path / "tiny.yaml"  # the tiny study at one seed: 5 runs, 5 Slurm jobs
    config.write_text(yaml.safe_dump({**yaml.safe_load(TINY.read_text()), "seeds": [0]}))
    args = [
        sys.executable, "-m", "snakemake",
        "--profile", "slurm",
        "--configfile", str(config), "--replace-workflow-config",
        "--directory", str(tmp_path),
        "--cores", "all",
        # quick polls on the test cluster, logs kept to inspect
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-logdir", str(slurm_logs),
        "--slurm-keep-successful-logs",
        # no accounting database on the test cluster: sacct cannot answer
        "--slurm-status-command", "squeue",
        "--verbose",  # the plugin prints each sbatch call
    ]  # fmt: skip
    proc = run_snakemake(args, TIMEOUT_S)
    assert proc.returncode == 0, f"snakemake --profile slurm failed:\n{proc.stdout[-8000:]}"
    # every training job asked for the advance signal and its own time limit
    train_calls = [line for line in proc.stdout.splitlines() if "sbatch call:" in line and "rule_train" in line]
    assert len(train_calls) == RUNS, proc.stdout[-4000:]
    assert all("--signal=TERM@300" in call and " -t " in call for call in train_calls), train_calls[0]

    results = sorted((tmp_path / "results" / "runs").glob("*/result.json"))
    assert len(results) == RUNS, f"expected the tiny study's {RUNS} runs, found {[p.parent.name for p in results]}"
    job_ids = set()
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "completed", f"{path}: status {result['status']!r}"
        # set by Slurm inside the job: the run trained in a Slurm allocation, not locally
        assert result["slurm_job_id"], f"{path}: no SLURM_JOB_ID, the run did not go through Slurm"
        job_ids.add(result["slurm_job_id"])
    assert len(job_ids) == RUNS, f"one Slurm job per run (group-components train=1), got {sorted(job_ids)}"
    assert any(slurm_logs.rglob("*.log")), f"no Slurm job logs under {slurm_logs}"
