"""A run's result files: result.json (strict JSON, the analysis' source of truth) and
history.csv, written atomically, and the provenance they and MLflow carry (git commit,
versions, host, Slurm job).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import platform
import socket
import subprocess
from pathlib import Path

import numpy as np
import torch

from hybrid.nn import ResNet
from hybrid.nn.flops import count_flops
from hybrid.train.config import RunConfig


def build_result(config: RunConfig, model: ResNet, history: list[dict], status: str, device, train_time: float, wall: float,
                 feeding: tuple[str, str] = ("device", "held whole on the device"), checkpoint_time: float = 0.0) -> dict:
    last = history[-1] if history and status == "completed" else {}
    best = max(history, key=lambda r: r["test_accuracy"]) if history else {}
    finite = all(math.isfinite(v) for s in model.learned_strides().values() for v in s)
    cost = model.cost() if finite else {}
    seen = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
    return {
        "run_id": config.run_id(),
        "run_name": config.display_name(),
        "status": status,
        "test_accuracy": last.get("test_accuracy"),
        "best_test_accuracy": best.get("test_accuracy"),
        "best_epoch": best.get("epoch"),
        "test_loss": last.get("test_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "epochs_completed": len(history),
        "epochs": config.train.epochs,
        "learned_strides": model.learned_strides() if finite else {},
        "params": sum(p.numel() for p in model.parameters()),
        "flops": cost.get("flops"),
        "cost": cost,  # at the learned strides
        # at the initial strides, from the config alone (hybrid.nn.flops): DiffStride at
        # R = 8 or 16 starts without downsampling, a cost the learned one may hide
        "initial_cost": count_flops(config.model, (config.dataset.input_size,) * 2),
        "wall_time_s": wall,
        "train_time_s": train_time,
        "checkpoint_time_s": checkpoint_time,  # writing checkpoints, in the attempt that finished
        # the tuples of DiffStride crops the attempt met (training and evaluation): a compiled
        # net compiles once for each
        "crop_tuples": len(model.crops_planned) if model.diffstride_layers() else None,
        "images_per_s": seen / train_time if train_time > 0 else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "feeding": feeding[0],  # the data held whole on the device or streamed (hybrid.data.feeding)
        "feeding_reason": feeding[1],
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "config": config.to_dict(),
    }


def write_results(out_dir: Path, result: dict, history: list[dict]) -> None:
    """history.csv (non-finite values as "nan"/"inf", which CSV readers parse) and result.json
    (strict JSON: non-finite values as null), each written atomically."""
    columns = list(dict.fromkeys(k for row in history for k in row)) or ["epoch"]
    tmp = out_dir / "history.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out_dir / "history.csv")
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(finite_or_none(result), indent=2, allow_nan=False, default=str) + "\n")
    os.replace(tmp, out_dir / "result.json")


def finite_or_none(value):
    """`value` with every NaN or infinite float, however deep, replaced by None: JSON has no NaN,
    and a diverged run (or a config's `.nan`) must still leave a result any reader can parse."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _git(*args: str) -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.cache  # asked at the start (MLflow tags) and the end (result.json) of a run
def git_commit() -> str:
    if os.environ.get("HYBRID_GIT_COMMIT"):
        return os.environ["HYBRID_GIT_COMMIT"]
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def run_tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    """MLflow's standard source tags, as its own run context would set them, and `extra`
    (the run's variant and studies from runs.csv, and any `--tag`)."""
    tags = {"mlflow.source.git.commit": git_commit(), "mlflow.source.name": "hybrid.train",
            "mlflow.source.type": "LOCAL"}
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch and branch != "HEAD":
        tags["mlflow.source.git.branch"] = branch
    return {**tags, **(extra or {})}
