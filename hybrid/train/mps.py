"""CUDA MPS for the runs that share one GPU in a packed Slurm job (`resources.runs_per_gpu`).

Several processes on one GPU time-slice it; under the MPS control daemon their kernels run
concurrently. The Snakemake process that runs a packed job's runs inside the Slurm job
(workflow/rules/common.smk) starts a private daemon before its first run, with its pipe and
log directories in a temporary folder of the job, exports them to the runs it starts (so
their CUDA clients find this daemon, not another job's on a shared node), and stops it when
it exits. Without the `nvidia-cuda-mps-control` binary (no NVIDIA driver, a CPU node) it
logs one line and does nothing: the runs share the GPU by time-slicing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"
ENV_KEYS = ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY")


@dataclass
class Daemon:
    """A started MPS control daemon: its binary, its folder and the environment it runs in."""

    control: str
    folder: Path
    env: dict[str, str]

    def stop(self, log: Callable[[str], None] = print) -> None:
        """`quit` to the daemon (it stops its server once the clients are gone), then the folder."""
        try:
            subprocess.run([self.control], input="quit\n", text=True, env=self.env,
                           capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            log(f"CUDA MPS: could not stop the daemon in {self.folder}: {err}")
        shutil.rmtree(self.folder, ignore_errors=True)
        log(f"CUDA MPS: stopped the daemon in {self.folder}")


def start(environ: MutableMapping[str, str] | None = None, log: Callable[[str], None] = print,
          tmp: str | None = None) -> Daemon | None:
    """Start a private MPS control daemon and export its directories into `environ`
    (os.environ: inherited by every process started afterwards); None, after one log line,
    where the binary is missing or the daemon does not start."""
    environ = os.environ if environ is None else environ
    control = shutil.which(CONTROL, path=environ.get("PATH"))
    if control is None:
        log(f"CUDA MPS: no {CONTROL} on PATH; the packed runs share the GPU by time-slicing")
        return None
    base = tmp or environ.get("SLURM_TMPDIR") or environ.get("TMPDIR") or None
    folder = Path(tempfile.mkdtemp(prefix=f"mps-{environ.get('SLURM_JOB_ID', os.getpid())}-", dir=base))
    dirs = {"CUDA_MPS_PIPE_DIRECTORY": folder / "pipe", "CUDA_MPS_LOG_DIRECTORY": folder / "log"}
    for path in dirs.values():
        path.mkdir()
    env = {**environ, **{key: str(path) for key, path in dirs.items()}}
    try:
        started = subprocess.run([control, "-d"], check=False, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        started = subprocess.CompletedProcess([control, "-d"], 1, "", str(err))
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        reason = (started.stderr or started.stdout).strip().splitlines()
        log(f"CUDA MPS: {control} -d failed ({reason[-1] if reason else f'exit {started.returncode}'}); "
            "the packed runs share the GPU by time-slicing")
        return None
    for key, path in dirs.items():
        environ[key] = str(path)
    log(f"CUDA MPS: started the control daemon, pipe and log directories in {folder}")
    return Daemon(control, folder, env)
