"""One training run, top to bottom: a resolved run config in, result files out.

    python -m hybrid.train --run-config RUN.yaml --out DIR [--checkpoint PATH] [--results-dir results]

Writes DIR/result.json and DIR/history.csv (the analysis' source of truth) and logs the
run to MLflow. The final-epoch test accuracy is the primary metric; the best epoch on the
test set is recorded but never used to compare (selecting on the test set inflates).

Checkpoints go to DIR/checkpoint.pt (not a declared workflow output, so a failed job's
clean-up keeps it) at every epoch end, atomically, and on SIGTERM (Slurm time limit,
preemption) at the current step, after which the process exits with status 75 so the
job is retried; a rerun resumes and ends exactly where an uninterrupted run would (every
random draw comes from generators seeded by (seed, epoch) whose state is checkpointed).
A non-finite loss ends the run with status "diverged": a result, exit status 0; result.json
is strict JSON, a non-finite number in it (a config's `.nan`, a diverged metric) written as
null (history.csv keeps "nan"/"inf", which its readers parse).

Bad input never costs a GPU-hour, and never a traceback:
- SIGTERM is handled from the first line of `train_run`: during set-up (data loading, model
  building) there is nothing to save, so the process exits 75 at once; from the loop on it
  checkpoints at the current step first.
- A checkpoint carries the SHA-256 of its bytes (`hybrid.checksummed`). One that is empty,
  truncated, altered, unreadable, of an older format, or another run's (another config's
  run id) is never trusted: it is renamed aside to `<checkpoint>.bad-<time>`, named in one
  warning line, and the run starts afresh (nothing is deleted, no weights are guessed at).
- Paths that cannot work (a directory at the checkpoint path, an existing file as --out)
  and unreadable run configs (missing, a directory, not UTF-8 text, YAML syntax, invalid
  values) end the command with exit status 2 and one line on stderr naming the file and
  the fix, before any data is loaded.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from hybrid.checkpoints import RunPathError, check_run_paths, load_checkpoint, restore, save_checkpoint
from hybrid.config import RunConfig, TrainConfig, load_run_config
from hybrid.data import DataNotFoundError, Splits, augment, epoch_batches, load_splits, normalization_stats, normalize
from hybrid.feeding import DeviceFeeder, StreamFeeder, center_crop_resize, random_resized_crop
from hybrid.models import ResNet, resnet
from hybrid.models.flops import count_flops
from hybrid.tracking import RunTracker, resolve_tracking_uri, study_labels

log = logging.getLogger("hybrid.train")
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: try again (the job is retried and resumes)
DIVERGENCE_CHECK_EVERY = 50  # steps between reads of the non-finite-loss flag on a GPU


class Interrupted(BaseException):
    """SIGTERM: exit 75 to be retried. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way (the cache loader, MLflow's guard) swallows it."""


class Diverged(Exception):
    pass


class DeviceError(RuntimeError):
    """The configured device does not exist where the run was started."""


class StopSignal:
    """SIGTERM from the first line of a run to its last.

    During set-up there is nothing to save, so the signal raises Interrupted at once (the job
    is retried and starts over); after `defer()`, once the loop can checkpoint, it only
    records the signal, which the loop reads before each step.
    """

    def __init__(self):
        self.signum: int | None = None
        self.deferred = False

    def __enter__(self) -> Self:
        self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if not self.deferred:
            raise Interrupted()

    def defer(self) -> None:
        self.deferred = True

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __exit__(self, kind, error, traceback) -> None:
        signal.signal(signal.SIGTERM, self.previous)
        if kind is Interrupted and not self.deferred:
            log.warning("interrupted by signal %s during set-up, before any training step: nothing to save, exit %d",
                        self.signum, EXIT_INTERRUPTED)


# --- set-up ---------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"train.device is {name!r} but CUDA is not available on {socket.gethostname()}; "
                          "run the job where a GPU is allocated (resources.gpus), or set train.device: auto or cpu")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def parameter_groups(model: ResNet, train: TrainConfig) -> list[dict]:
    """Strides, decayed and undecayed parameters, each with its lr multiplier and decay."""
    strides = {id(p) for p in model.stride_parameters()}
    decayed, undecayed = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in strides:
                continue
            regularised = isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
            (decayed if train.decay_on == "all" or regularised else undecayed).append(p)
    groups = [
        {"params": decayed, "weight_decay": train.weight_decay, "lr_mult": 1.0},
        {"params": undecayed, "weight_decay": 0.0, "lr_mult": 1.0},
        {"params": model.stride_parameters(), "weight_decay": train.stride_weight_decay, "lr_mult": train.stride_lr_mult},
    ]
    return [g for g in groups if g["params"]]


def learning_rate(train: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimizer step `step` (0-based); stateless, so resuming needs no scheduler state."""
    if train.lr_schedule == "piecewise":
        for boundary, value in zip(train.lr_boundaries, train.lr_values):
            if step < boundary:
                return value
        return train.lr_values[-1]
    epoch = step / steps_per_epoch
    passed = sum(epoch >= m * train.epochs for m in train.milestones)
    return train.lr * train.lr_gamma**passed


def steps_per_epoch(n_train: int, train: TrainConfig) -> int:
    per_step = train.batch_size * (2 if train.mixup_alpha > 0 else 1)
    return n_train // per_step if train.mixup_alpha > 0 else math.ceil(n_train / per_step)


# --- one epoch ------------------------------------------------------------------------


def feeder(images, labels, device) -> DeviceFeeder | StreamFeeder:
    """Batches of a split: gathered on the device, or streamed from a memory-mapped pack."""
    if isinstance(images, torch.Tensor):
        return DeviceFeeder(images, labels)
    return StreamFeeder(images, labels, device)


def train_batch(splits: Splits, images: torch.Tensor, labels: torch.Tensor, train: TrainConfig,
                generator: torch.Generator, rng: np.random.Generator):
    """Augmented, normalised images and soft targets for one step (mixup pairs as the official pipeline)."""
    if train.augmentation == "random-resized-crop":
        images = random_resized_crop(images, splits.input_size, generator, scale=(train.rrc_min_scale, 1.0),
                                     flip=train.flip)
    else:
        images = augment(images, padding=train.crop_padding, flip=train.flip, generator=generator)
    images = normalize(images, splits.mean, splits.std)
    targets = F.one_hot(labels, splits.num_classes).float()
    if train.mixup_alpha > 0:
        weight = torch.from_numpy(rng.beta(train.mixup_alpha, train.mixup_alpha, size=len(labels) // 2))
        weight = weight.to(images.device, torch.float32)
        w_img = weight[:, None, None, None]
        images = images[0::2] * w_img + images[1::2] * (1 - w_img)
        targets = targets[0::2] * weight[:, None] + targets[1::2] * (1 - weight[:, None])
    return images, targets


def optimizer_step(model, optimizer, x, targets, lr: float, train: TrainConfig, device, sums: dict) -> None:
    """One SGD step at learning rate `lr`; the loss and hits accumulate on the device."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    if train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, train):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=train.label_smoothing)
    # Reading the flag is a host-device synchronisation: every step on the CPU, where it is
    # free, every DIVERGENCE_CHECK_EVERY steps (and at the epoch's end) on a GPU.
    sums["finite"] &= torch.isfinite(loss)
    sums["steps"] += 1
    if device.type == "cpu" or sums["steps"] % DIVERGENCE_CHECK_EVERY == 0:
        if not sums["finite"]:
            raise Diverged()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.constrain_strides()
    sums["loss"] += loss.detach() * len(targets)
    sums["correct"] += (logits.argmax(1) == targets.argmax(1)).sum()
    sums["seen"] += len(targets)


def epoch_row(model, splits: Splits, train: TrainConfig, device, epoch: int, sums: dict, lr: float, epoch_time: float) -> dict:
    """The epoch's line of history.csv: training sums, evaluation, learning rate, strides."""
    if not sums["finite"]:
        raise Diverged()
    test_loss, test_acc = evaluate(model, splits.eval_images, splits.eval_labels, splits, train, device)
    if not math.isfinite(test_loss):
        raise Diverged()
    row = {
        "epoch": epoch,
        "train_loss": sums["loss"].item() / sums["seen"],
        "train_accuracy": sums["correct"].item() / sums["seen"],
        "test_loss": test_loss,
        "test_accuracy": test_acc,
    }
    if splits.val_images is not None:
        row["val_loss"], row["val_accuracy"] = evaluate(model, splits.val_images, splits.val_labels, splits, train, device)
    row.update({"lr": lr, "epoch_time_s": epoch_time, "images_per_s": sums["seen"] / epoch_time})
    for layer, (v, h) in model.learned_strides().items():
        row[f"stride/{layer}/v"], row[f"stride/{layer}/h"] = v, h
    return row


@torch.no_grad()
def evaluate(model, images, labels, splits: Splits, train: TrainConfig, device) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    side = images.shape[-1]
    for x, y in feeder(images, labels, device).batches(torch.arange(len(labels)).split(train.eval_batch_size)):
        if splits.input_size != side:  # the centre crop of the packed image (dataset.crop_size)
            x = center_crop_resize(x, splits.input_size, crop_fraction=splits.input_size / side)
        x = normalize(x, splits.mean, splits.std)
        if train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, train):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train()
    return loss_sum.item() / len(labels), correct.item() / len(labels)


def autocast(device: torch.device, train: TrainConfig):
    enabled = device.type == "cuda" and train.amp
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


# --- the run --------------------------------------------------------------------------


def train_run(config: RunConfig, out_dir: Path, checkpoint_path: Path | None = None, results_dir: Path = Path("results"),
              tags: dict[str, str] | None = None) -> dict:
    """Train `config`, write its result files to `out_dir`, return the result.

    Raises Interrupted on SIGTERM (after checkpointing, once the loop has begun), RunPathError
    on unusable paths and DataNotFoundError on missing data, both before any training.
    """
    checkpoint_path = checkpoint_path or out_dir / "checkpoint.pt"
    check_run_paths(out_dir, checkpoint_path)
    with StopSignal() as stop:  # from the first second: a SIGTERM while loading data exits 75 too
        run_id = config.run_id()
        tcfg = config.train
        device = pick_device(tcfg.device)
        if tcfg.threads > 0:
            torch.set_num_threads(tcfg.threads)
        torch.backends.cudnn.benchmark = tcfg.cudnn_benchmark and not tcfg.deterministic
        seed_everything(config.seed, tcfg.deterministic)

        log.info("%s: loading data set %s", config.display_name(), config.dataset.name)
        splits = load_splits(config.dataset, device)
        splits.mean, splits.std = normalization_stats(tcfg.normalization, splits)
        if splits.num_classes != config.model.num_classes:
            raise ValueError(
                f"model.num_classes is {config.model.num_classes} but dataset {config.dataset.name!r} has "
                f"{splits.num_classes} classes; leave model.num_classes out to take the dataset's"
            )
        model = resnet(config.model).to(device)
        if tcfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(parameter_groups(model, tcfg), lr=tcfg.lr, momentum=tcfg.momentum, nesterov=tcfg.nesterov)
        n_train = len(splits.train_labels)
        train_feed = feeder(splits.train_images, splits.train_labels, device)
        log.info("%s: %s (%s)", config.display_name(), splits.feeding, splits.feeding_reason)
        per_epoch = steps_per_epoch(n_train, tcfg)
        batch_per_step = tcfg.batch_size * (2 if tcfg.mixup_alpha > 0 else 1)

        resume = load_checkpoint(checkpoint_path, run_id, model)
        history, start_epoch, resume_step = restore(resume, model, optimizer)
        if resume:
            log.info("resuming %s at epoch %d, step %d", run_id, start_epoch, resume_step)

        # From here a SIGTERM only sets a flag: the loop checkpoints before its next step, and
        # one after the last step lets the run finish its result files.
        stop.defer()
        tracker = RunTracker(
            resolve_tracking_uri(config.tracking.uri, results_dir) if config.tracking.enabled else None,
            config.tracking.experiment, run_id, config.display_name(), config.to_dict(),
            # the run's studies and variant from the workflow's runs.csv (no job parameter:
            # one would make every finished run stale when a study is added); --tag wins
            tags=run_tags({**study_labels(results_dir, run_id), **(tags or {})}),
        )
        tracker.start()

        status, wall_start = "completed", time.perf_counter()
        train_time = sum(row["epoch_time_s"] for row in history)
        bar = tqdm(total=tcfg.epochs, initial=start_epoch - 1, desc=config.display_name(), disable=not sys.stderr.isatty())
        try:
            for epoch in range(start_epoch, tcfg.epochs + 1):
                generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
                rng = np.random.default_rng(epoch_seed(config.seed, epoch))
                batches = epoch_batches(n_train, batch_per_step, generator, shuffle=True, drop_last=tcfg.mixup_alpha > 0)
                sums = {"loss": torch.zeros((), device=device), "correct": torch.zeros((), device=device),
                        "finite": torch.ones((), dtype=torch.bool, device=device), "seen": 0, "steps": 0}
                first_step, lr = 0, learning_rate(tcfg, (epoch - 1) * per_epoch, per_epoch)
                if resume and epoch == start_epoch and resume_step > 0:
                    generator.set_state(resume["generator"])
                    rng.bit_generator.state = resume["rng"]
                    sums = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in resume["sums"].items()}
                    first_step, train_time = resume_step, resume["train_time"]
                t0 = time.perf_counter()
                steps = train_feed.batches(batches[first_step:])
                for i in range(first_step, len(batches)):
                    if stop.requested:
                        save_checkpoint(
                            checkpoint_path, run_id, model, optimizer, history, epoch, i,
                            generator=generator.get_state(), rng=rng.bit_generator.state,
                            sums={k: (v.cpu() if torch.is_tensor(v) else v) for k, v in sums.items()},
                            train_time=train_time + time.perf_counter() - t0,
                        )
                        raise Interrupted()
                    lr = learning_rate(tcfg, (epoch - 1) * per_epoch + i, per_epoch)
                    x, targets = train_batch(splits, *next(steps), tcfg, generator, rng)
                    optimizer_step(model, optimizer, x, targets, lr, tcfg, device, sums)
                epoch_time = time.perf_counter() - t0
                train_time += epoch_time
                row = epoch_row(model, splits, tcfg, device, epoch, sums, lr, epoch_time)
                history.append(row)
                tracker.log_epoch(epoch, {k: v for k, v in row.items() if k != "epoch"})
                save_checkpoint(checkpoint_path, run_id, model, optimizer, history, epoch + 1)
                bar.update(1)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{row['test_accuracy']:.4f}")
                if bar.disable:
                    log.info("%s epoch %d/%d train_loss %.4f test_acc %.4f lr %.4g %.0f img/s",
                             config.display_name(), epoch, tcfg.epochs, row["train_loss"], row["test_accuracy"], lr, row["images_per_s"])
        except (Diverged, FloatingPointError):
            status = "diverged"
            log.warning("%s diverged (non-finite loss) in epoch %d", config.display_name(), len(history) + 1)
        except Interrupted:
            tracker.close_interrupted()
            log.warning("%s interrupted by signal %s; checkpointed to %s", config.display_name(), stop.signum, checkpoint_path)
            raise
        except BaseException:
            tracker.close_interrupted()
            raise
        finally:
            bar.close()

        result = build_result(config, model, history, status, device, train_time, time.perf_counter() - wall_start,
                              (splits.feeding, splits.feeding_reason))
        write_results(out_dir, result, history)
        if tcfg.save_weights:  # the final weights, loadable with torch.load(..., weights_only=True)
            torch.save(model.state_dict(), out_dir / "weights.pt")
        tracker.finish(status, out_dir)
        if checkpoint_path.exists():
            checkpoint_path.unlink()
        return result


def build_result(config: RunConfig, model: ResNet, history: list[dict], status: str, device, train_time: float, wall: float,
                 feeding: tuple[str, str] = ("device", "held whole on the device")) -> dict:
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
        # at the initial strides, from the config alone (hybrid.models.flops): DiffStride at
        # R = 8 or 16 starts without downsampling, a cost the learned one may hide
        "initial_cost": count_flops(config.model, (config.dataset.input_size,) * 2),
        "wall_time_s": wall,
        "train_time_s": train_time,
        "images_per_s": seen / train_time if train_time > 0 else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "feeding": feeding[0],  # the data held whole on the device or streamed (hybrid.feeding)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-config", required=True, type=Path, help="the resolved run configuration (YAML)")
    parser.add_argument("--out", required=True, type=Path, help="directory for result.json and history.csv")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT/checkpoint.pt")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where the default MLflow store lives")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (overrides train.threads)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="an MLflow tag of the run (repeatable), e.g. variant=hybrid")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_run_config(args.run_config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as err:
        parser.exit(2, f"error: {run_config_error(args.run_config, err)}\n")
    if args.threads:
        config = replace(config, train=replace(config.train, threads=args.threads))
    tags = dict(tag.partition("=")[::2] for tag in args.tag)
    if any(not key for key in tags):
        parser.exit(2, f"error: --tag takes KEY=VALUE, got {args.tag}\n")
    try:
        result = train_run(config, args.out, args.checkpoint, args.results_dir, tags)
    except Interrupted:
        return EXIT_INTERRUPTED
    except (DataNotFoundError, RunPathError, DeviceError) as err:
        parser.exit(2, f"error: {one_line(err)}\n")
    log.info("%s %s: test accuracy %s", result["run_name"], result["status"], result["test_accuracy"])
    return 0


def run_config_error(path: Path, err: Exception) -> str:
    """One line for a run config that cannot be read: what is wrong, where, and what to pass instead."""
    if isinstance(err, IsADirectoryError):
        return f"run config {path} is a directory; pass the run's YAML file"
    if isinstance(err, UnicodeDecodeError):
        return (f"run config {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
                f"pass the run's YAML file")
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"run config {path}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax: {one_line(err.problem)}"
    if isinstance(err, yaml.YAMLError):
        return f"run config {path} is not YAML text: {one_line(err)}"
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        return f"run config {path} cannot be read ({err.strerror or err})"
    message = one_line(err)
    return message if str(path) in message else f"run config {path}: {message}"


def one_line(message) -> str:
    """`message` on one line: a log or stderr line per error, whatever the exception's text."""
    return " ".join(str(message).split())

if __name__ == "__main__":
    sys.exit(main())
