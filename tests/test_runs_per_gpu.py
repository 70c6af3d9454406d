"""`resources.runs_per_gpu: k` packs k training runs into one Slurm job that holds one GPU.

The dry run shows the packing, a fake `sbatch` shows what Slurm would be asked for (one GPU,
k runs' CPUs and memory), the test cluster of .ci/slurm.sh runs two CPU runs side by side in
one job, bad values are refused naming the key, and the CUDA MPS helper starts and stops a
private daemon (a fake one here: no GPU) or skips with one line.
"""

import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_slurm import TIMEOUT_S, run_snakemake, slurm_cluster_or_skip

from hybrid.studies.checks import ConfigError, check_config
from hybrid.train import mps

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "tests" / "workflow" / "tiny.yaml").read_text())


def packed_config(tmp_path: Path, *, gpus: int, k: int = 2, small: bool = False, **resources) -> Path:
    """The tiny study (10 runs; `small`: its 2-run study alone), train.device auto."""
    config = copy.deepcopy(TINY)
    config["base"]["train"]["device"] = "auto"
    if small:
        config["studies"] = {"first_release": config["studies"]["first_release"]}
        del config["comparisons"], config["sweeps"]
    config["resources"].update(gpus=gpus, runs_per_gpu=k, **resources)
    path = tmp_path / "packed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_args(config: Path, workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(config),
            "--replace-workflow-config", "--directory", str(workdir), "--cores", "all", *extra]


def dry_run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_dry_run_packs_two_runs_per_group_job_sharing_one_gpu(tmp_path):
    proc = dry_run(snakemake_args(packed_config(tmp_path, gpus=1), tmp_path, "-n"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    groups = out.split("Group job train")[1:]
    assert len(groups) == 5, out[-3000:]  # 10 runs, 2 a job: the size follows runs_per_gpu
    for group in groups:
        members = re.findall(r"^\s+rule train:\n(?:.*\n)*?\s+resources: (.*)$", group, re.MULTILINE)
        assert len(members) == 2, group[:2000]
        # each run's share of the GPU is the string "1", which the group keeps as it is
        assert all(re.search(r"(^|, )gpu=1(,|$)", res) and "mem_mb=1000" in res for res in members), members


FAKE_SBATCH = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
echo "sbatch: error: fake sbatch of tests/test_runs_per_gpu.py" >&2
exit 1
"""


def test_slurm_is_asked_for_one_gpu_and_k_runs_cpus_and_memory(tmp_path):
    """The sbatch command the Slurm plugin renders for a packed GPU job, through a fake sbatch
    that records it and refuses (the test cluster has no GPU): one `--gpus=1`, the CPUs and
    memory of two runs, the two runs as the job's targets."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "sbatch_calls.txt"
    sbatch = fake / "sbatch"
    sbatch.write_text(FAKE_SBATCH.format(log=calls))
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    config = packed_config(tmp_path, gpus=1, small=True, cpus=3, mem_mb=1500, retries=0)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = snakemake_args(config, tmp_path / "work", "--until", "train", "--retries", "0")
    proc = subprocess.run(args, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert calls.exists(), (proc.stdout + proc.stderr)[-6000:]
    submitted = calls.read_text().splitlines()
    assert len(submitted) == 1, submitted  # the study's 2 runs, in one job
    call = submitted[0]
    assert re.findall(r"--gpus=\S+", call) == ["--gpus=1"], call[:1500]
    assert "--gres" not in call
    assert re.search(r"--mem 3000\b", call) and "--cpus-per-task=6" in call, call[:1500]
    assert len(re.findall(r"'train:run=[0-9a-f]{16}'", call)) == 2, call[:1500]
    assert "--signal=TERM@300" in call


def test_two_runs_share_one_slurm_job_side_by_side(tmp_path):
    """On the test cluster (no GPU: CPU runs, resources.gpus 0): the study's two runs go in one
    sbatch job that asks for both runs' CPUs and memory, finish in that job, and run at once."""
    slurm_cluster_or_skip()
    slurm_logs = tmp_path / "slurm_logs"
    config = packed_config(tmp_path, gpus=0, small=True)
    args = snakemake_args(
        config, tmp_path, "--until", "train",
        "--slurm-init-seconds-before-status-checks", "2", "--slurm-logdir", str(slurm_logs),
        "--slurm-keep-successful-logs", "--slurm-status-command", "squeue", "--verbose",
    )  # fmt: skip
    proc = run_snakemake(args, TIMEOUT_S)
    assert proc.returncode == 0, f"snakemake --profile slurm failed:\n{proc.stdout[-8000:]}"
    calls = [line for line in proc.stdout.splitlines() if "sbatch call:" in line]
    assert len(calls) == 1 and "group_train" in calls[0], calls
    assert "--cpus-per-task=2" in calls[0] and re.search(r"--mem 2000\b", calls[0]), calls[0][:1500]
    assert "--gpus" not in calls[0]

    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "runs").glob("*/result.json"))]
    assert len(results) == 2 and all(r["status"] == "completed" for r in results), results
    assert len({r["slurm_job_id"] for r in results}) == 1 and results[0]["slurm_job_id"]

    # inside the job: one srun step runs both, and both start before either finishes
    (log,) = slurm_logs.rglob("*.log")
    text = log.read_text()
    events = re.findall(r"^(localrule train:|Finished jobid: \d+ \(Rule: train\))", text, re.MULTILINE)
    assert events[:2] == ["localrule train:"] * 2, text[-4000:]


@pytest.mark.parametrize("value, message", [
    (0, r"resources\.runs_per_gpu: 0 is less than the minimum of 1"),
    (1.5, r"resources\.runs_per_gpu: 1\.5 is not of type 'integer'"),
    ("two", r"resources\.runs_per_gpu: 'two' is not of type 'integer'"),
])
def test_a_bad_runs_per_gpu_is_refused_naming_the_key(value, message):
    config = copy.deepcopy(TINY)
    config["resources"]["runs_per_gpu"] = value
    with pytest.raises(ConfigError, match=message) as caught:
        check_config(config)
    assert "\n" not in str(caught.value).strip() and len(str(caught.value)) < 400


def test_runs_per_gpu_with_several_gpus_a_run_or_another_group_size_is_refused(tmp_path):
    proc = dry_run(snakemake_args(packed_config(tmp_path, gpus=2), tmp_path, "-n"))
    assert proc.returncode != 0
    assert "resources.runs_per_gpu: 2 runs share one GPU, but resources.gpus is 2" in proc.stdout + proc.stderr
    proc = dry_run(snakemake_args(packed_config(tmp_path, gpus=1), tmp_path, "-n", "--group-components", "train=3"))
    assert proc.returncode != 0
    assert "resources.runs_per_gpu is 2 but group-components asks for train=3" in proc.stdout + proc.stderr


# CUDA MPS (hybrid/train/mps.py)

FAKE_CONTROL = """#!/bin/sh
echo "$* pipe=$CUDA_MPS_PIPE_DIRECTORY log=$CUDA_MPS_LOG_DIRECTORY stdin=$(if [ -z "$1" ]; then cat; fi)" >> "{log}"
exit {code}
"""


def fake_control(tmp_path: Path, code: int = 0) -> tuple[dict, Path]:
    folder = tmp_path / "bin"
    folder.mkdir()
    calls = tmp_path / "control_calls.txt"
    control = folder / mps.CONTROL
    control.write_text(FAKE_CONTROL.format(log=calls, code=code))
    control.chmod(control.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin", "SLURM_JOB_ID": "42"}, calls


def test_mps_is_skipped_with_one_line_without_the_binary(tmp_path):
    environ = {"PATH": str(tmp_path)}
    lines = []
    assert mps.start(environ, log=lines.append, tmp=str(tmp_path)) is None
    assert len(lines) == 1 and "no nvidia-cuda-mps-control" in lines[0]
    assert environ == {"PATH": str(tmp_path)} and list(tmp_path.iterdir()) == []


def test_mps_daemon_is_started_in_a_private_folder_and_stopped(tmp_path):
    environ, calls = fake_control(tmp_path)
    lines = []
    daemon = mps.start(environ, log=lines.append, tmp=str(tmp_path))
    assert daemon is not None and daemon.folder.parent == tmp_path and "mps-42-" in daemon.folder.name
    pipe, logs = environ["CUDA_MPS_PIPE_DIRECTORY"], environ["CUDA_MPS_LOG_DIRECTORY"]
    assert Path(pipe).is_dir() and Path(logs).is_dir() and Path(pipe).parent == daemon.folder
    assert calls.read_text().splitlines() == [f"-d pipe={pipe} log={logs} stdin="]
    daemon.stop(log=lines.append)
    assert calls.read_text().splitlines()[1] == f" pipe={pipe} log={logs} stdin=quit"
    assert not daemon.folder.exists()
    assert len(lines) == 2 and "started" in lines[0] and "stopped" in lines[1]


def test_a_daemon_that_does_not_start_is_one_line_and_no_environment(tmp_path):
    environ, _ = fake_control(tmp_path, code=1)
    before = dict(environ)
    lines = []
    assert mps.start(environ, log=lines.append, tmp=str(tmp_path)) is None
    assert environ == before and len(lines) == 1 and "failed" in lines[0]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("mps-")] == []
