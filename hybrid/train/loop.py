"""The training loop, read top to bottom: the set-up, one step, one epoch, the run.

- `set_up`: the device, the seeds, the data on the device, the network and its optimizer;
- `train_step` (`hybrid.train.step`): one batch augmented (and mixed) on the device, one
  SGD step, with no wait for the device;
- `train_epoch`: a pass over the training set with the epoch's draws, then the evaluation,
  into the epoch's row of history.csv; a SIGTERM checkpoints at the step;
- `train_run`: resume from a checkpoint, the epochs (a checkpoint at an epoch's end once
  `train.checkpoint_minutes` have passed since the last), the result files and MLflow.

Every random draw of an epoch (its order, crops, flips, mixup weights) comes from two
generators seeded by (run seed, epoch) and is made at the epoch's start
(`hybrid.train.draws`): a run resumed mid-epoch draws the epoch again and starts at its
step, and ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from hybrid import checksummed
from hybrid.data import Splits, load_splits, normalization_stats, normalize
from hybrid.data.feeding import DeviceFeeder, StreamFeeder, center_crop_resize
from hybrid.nn import ResNet, resnet
from hybrid.train.checkpoints import (
    check_checkpoint_room,
    check_run_paths,
    load_checkpoint,
    restore,
    save_checkpoint,
    storing,
)
from hybrid.train.config import RunConfig, TrainConfig
from hybrid.train.draws import draw_epoch
from hybrid.train.result import build_result, run_tags, write_results
from hybrid.train.schedule import epoch_seed, learning_rate, parameter_groups, steps_per_epoch
from hybrid.train.step import Diverged, FiniteWatch, autocast, new_sums, train_step
from hybrid.train.stop import Interrupted, StopSignal
from hybrid.train.tracking import RunTracker, resolve_tracking_uri, study_labels

log = logging.getLogger("hybrid.train")


class DeviceError(RuntimeError):
    """The configured device does not exist where the run was started."""


class SetupError(ValueError):
    """A run config that the data set it meets cannot train (classes, a validation carve)."""


# --- the set-up -----------------------------------------------------------------------


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


@dataclass
class Training:
    """What the steps and epochs of one run share: set up once, then only `train_time` changes."""

    config: RunConfig
    device: torch.device
    splits: Splits
    model: ResNet
    optimizer: torch.optim.Optimizer
    forward: torch.nn.Module  # the model, or its torch.compile'd wrapper (train.compile)
    feed: DeviceFeeder | StreamFeeder  # the training split's batches
    per_epoch: int  # optimizer steps per epoch
    batch_per_step: int  # images drawn per step: two per mixed example under mixup
    checkpoint_path: Path
    stop: StopSignal
    watch: FiniteWatch  # the non-finite-loss flag, looked at without waiting
    train_time: float = 0.0  # seconds in training steps so far, over every attempt
    checkpoint_time: float = 0.0  # seconds writing checkpoints, in this attempt


def set_up(config: RunConfig, checkpoint_path: Path, stop: StopSignal) -> Training:
    """The device, the seeds, the data set on the device, the network and its optimizer, in
    this order (the global generator draws the initial weights after the data set is loaded)."""
    tcfg = config.train
    device = pick_device(tcfg.device)
    if tcfg.threads > 0:
        torch.set_num_threads(tcfg.threads)
    torch.backends.cudnn.benchmark = tcfg.cudnn_benchmark and not tcfg.deterministic
    seed_everything(config.seed, tcfg.deterministic)

    log.info("%s: loading data set %s", config.display_name(), config.dataset.name)
    try:
        splits = load_splits(config.dataset, device)
        splits.mean, splits.std = normalization_stats(tcfg.normalization, splits)
    except ValueError as err:  # e.g. a validation carve that leaves no image
        raise SetupError(f"{config.display_name()}: {err}") from None
    if splits.num_classes != config.model.num_classes:
        raise SetupError(
            f"model.num_classes is {config.model.num_classes} but dataset {config.dataset.name!r} has "
            f"{splits.num_classes} classes; leave model.num_classes out to take the dataset's"
        )
    model = resnet(config.model).to(device)
    if tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # one fused kernel for the whole update on CUDA; the CPU keeps the for-loop update, whose
    # floats every CPU history so far was made with
    optimizer = torch.optim.SGD(parameter_groups(model, tcfg), lr=tcfg.lr, momentum=tcfg.momentum, nesterov=tcfg.nesterov,
                                fused=True if device.type == "cuda" else None)
    log.info("%s: %s (%s)", config.display_name(), splits.feeding, splits.feeding_reason)
    return Training(
        config, device, splits, model, optimizer, forward=compiled(model, tcfg, device),
        feed=feeder(splits.train_images, splits.train_labels, device),
        per_epoch=steps_per_epoch(len(splits.train_labels), tcfg),
        batch_per_step=tcfg.batch_size * (2 if tcfg.mixup_alpha > 0 else 1),
        checkpoint_path=checkpoint_path, stop=stop, watch=FiniteWatch(device),
    )


def compiled(model: ResNet, train: TrainConfig, device: torch.device) -> torch.nn.Module:
    """`model` under torch.compile with `train.compile`'s mode, on CUDA; else `model`. A
    DiffStride net compiles once per tuple of its layers' crops (`ResNet.plan_strides`):
    its strides move inside a tuple without a recompile."""
    if train.compile == "none":
        return model
    if device.type != "cuda":
        log.warning("train.compile is %r, but compiling is for CUDA: %s runs eager", train.compile, device)
        return model
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)  # crop tuples
    return torch.compile(model, mode=train.compile)


def feeder(images, labels, device) -> DeviceFeeder | StreamFeeder:
    """Batches of a split: gathered on the device, or streamed from a memory-mapped pack."""
    if isinstance(images, torch.Tensor):
        return DeviceFeeder(images, labels)
    return StreamFeeder(images, labels, device)


# --- one epoch --------------------------------------------------------------------------


def train_epoch(t: Training, epoch: int, history: list[dict], resume: dict | None = None) -> dict:
    """Epoch `epoch` (1-based): its steps with the draws of (seed, epoch), then the
    evaluation; returns its row of history.csv.

    `resume`, a checkpoint taken mid-epoch, restarts at its step with its running sums. A
    SIGTERM checkpoints before the next step and raises Interrupted.
    """
    tcfg = t.config.train
    generator = torch.Generator().manual_seed(epoch_seed(t.config.seed, epoch))
    rng = np.random.default_rng(epoch_seed(t.config.seed, epoch))
    draws = draw_epoch(len(t.splits.train_labels), t.batch_per_step, tcfg, tuple(t.splits.train_images.shape[-2:]),
                       generator, rng, t.device, indices_on_host=isinstance(t.feed, StreamFeeder))
    sums = new_sums(t.device)
    first_step, lr = 0, learning_rate(tcfg, (epoch - 1) * t.per_epoch, t.per_epoch)
    if resume is not None:
        sums = {k: (v.to(t.device) if torch.is_tensor(v) else v) for k, v in resume["sums"].items()}
        first_step, t.train_time = resume["step"], resume["train_time"]
    t0 = time.perf_counter()
    batches = t.feed.batches(draws.indices[first_step:])
    for i in range(first_step, len(draws)):
        if t.stop.requested:
            checkpoint(t, history, epoch, i, sums=sums, train_time=t.train_time + time.perf_counter() - t0)
            raise Interrupted()
        lr = learning_rate(tcfg, (epoch - 1) * t.per_epoch + i, t.per_epoch)
        images, labels = next(batches)
        train_step(t.model, t.optimizer, t.splits, images, labels, draws.steps[i], lr, tcfg, t.device, sums, t.watch,
                   forward=t.forward)
    if t.device.type == "cuda":  # the steps were queued without waiting: the epoch ends when they have run
        torch.cuda.synchronize(t.device)
    epoch_time = time.perf_counter() - t0
    t.train_time += epoch_time
    return epoch_row(t.model, t.splits, tcfg, t.device, epoch, sums, lr, epoch_time)


def checkpoint(t: Training, history: list[dict], epoch: int, step: int = 0, **partial_epoch) -> None:
    """A checkpoint to go on from `step` of `epoch` (a mid-epoch one with its running sums,
    moved to the host, and its training time), timed into `t.checkpoint_time`."""
    start = time.perf_counter()
    if "sums" in partial_epoch:
        partial_epoch["sums"] = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in partial_epoch["sums"].items()}
    save_checkpoint(t.checkpoint_path, t.config.run_id(), t.model, t.optimizer, history, epoch, step, **partial_epoch)
    t.checkpoint_time += time.perf_counter() - start


def epoch_row(model, splits: Splits, train: TrainConfig, device, epoch: int, sums: dict, lr: float, epoch_time: float) -> dict:
    """The epoch's line of history.csv: training sums, evaluation, learning rate, strides."""
    if not sums["finite"]:
        raise Diverged()
    eval_start = time.perf_counter()
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
    row.update({"lr": lr, "epoch_time_s": epoch_time, "images_per_s": sums["seen"] / epoch_time,
                "eval_time_s": time.perf_counter() - eval_start})
    for layer, (v, h) in model.learned_strides().items():
        row[f"stride/{layer}/v"], row[f"stride/{layer}/h"] = v, h
    return row


@torch.no_grad()
def evaluate(model, images, labels, splits: Splits, train: TrainConfig, device) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    side = images.shape[-1]
    model.plan_strides((splits.input_size, splits.input_size))  # the strides stay put: one plan
    order = torch.arange(len(labels), device=images.device if isinstance(images, torch.Tensor) else "cpu")
    for x, y in feeder(images, labels, device).batches(order.split(train.eval_batch_size)):
        if splits.input_size != side:  # the centre crop of the packed image (dataset.crop_size)
            x = center_crop_resize(x, splits.input_size, crop_fraction=splits.input_size / side)
        x = normalize(x, splits.mean, splits.std)
        if train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, train):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.clear_plan()
    model.train()
    return loss_sum.item() / len(labels), correct.item() / len(labels)


# --- the run ----------------------------------------------------------------------------


def train_run(config: RunConfig, out_dir: Path, checkpoint_path: Path | None = None, results_dir: Path = Path("results"),
              tags: dict[str, str] | None = None) -> dict:
    """Train `config`, write its result files to `out_dir`, return the result.

    Raises Interrupted on SIGTERM (after checkpointing, once the loop has begun), RunPathError
    on unusable paths and DataNotFoundError on missing data, both before any training.
    """
    checkpoint_path = checkpoint_path or out_dir / "checkpoint.pt"
    check_run_paths(out_dir, checkpoint_path)
    for stale in checksummed.remove_stale_temps(checkpoint_path):  # a killed write's, ~90 MB each
        log.info("removed %s, left by an interrupted checkpoint write", stale)
    with StopSignal() as stop:  # from the first second: a SIGTERM while loading data exits 75 too
        run_id, name = config.run_id(), config.display_name()
        t = set_up(config, checkpoint_path, stop)
        check_checkpoint_room(checkpoint_path, t.model)
        resume = load_checkpoint(checkpoint_path, run_id, t.model)
        history, start_epoch, resume_step = restore(resume, t.model, t.optimizer)
        if resume:
            log.info("resuming %s at epoch %d, step %d", run_id, start_epoch, resume_step)

        # From here a SIGTERM only sets a flag: the loop checkpoints before its next step, and
        # one after the last step lets the run finish its result files.
        stop.defer()
        tracker = RunTracker(
            resolve_tracking_uri(config.tracking.uri, results_dir) if config.tracking.enabled else None,
            config.tracking.experiment, run_id, name, config.to_dict(),
            # the run's studies and variant from the workflow's runs.csv (no job parameter:
            # one would make every finished run stale when a study is added); --tag wins
            tags=run_tags({**study_labels(results_dir, run_id), **(tags or {})}),
        )
        tracker.start()

        status, wall_start = "completed", time.perf_counter()
        t.train_time = sum(row["epoch_time_s"] for row in history)
        bar = tqdm(total=config.train.epochs, initial=start_epoch - 1, desc=name, disable=not sys.stderr.isatty())
        last_checkpoint = time.monotonic()
        try:
            for epoch in range(start_epoch, config.train.epochs + 1):
                mid_epoch = resume and epoch == start_epoch and resume_step > 0
                row = train_epoch(t, epoch, history, {**resume, "step": resume_step} if mid_epoch else None)
                history.append(row)
                tracker.log_epoch(epoch, {k: v for k, v in row.items() if k != "epoch"})
                # by time, not every epoch (a 90 MB write costs a fast epoch a fifth of its
                # time); none after the last: the result files follow at once
                due = time.monotonic() - last_checkpoint >= 60 * config.train.checkpoint_minutes
                if due and epoch < config.train.epochs:
                    checkpoint(t, history, epoch + 1)
                    last_checkpoint = time.monotonic()
                report_epoch(bar, config, row)
        except (Diverged, FloatingPointError):
            status = "diverged"
            log.warning("%s diverged (non-finite loss) in epoch %d", name, len(history) + 1)
        except Interrupted:
            tracker.close_interrupted()
            log.warning("%s interrupted by signal %s; checkpointed to %s", name, stop.signum, checkpoint_path)
            raise
        except BaseException:
            tracker.close_interrupted()
            raise
        finally:
            bar.close()

        result = build_result(config, t.model, history, status, t.device, t.train_time,
                              time.perf_counter() - wall_start, (t.splits.feeding, t.splits.feeding_reason),
                              checkpoint_time=t.checkpoint_time)
        with storing(out_dir, "the result files to"):
            write_results(out_dir, result, history)
            if config.train.save_weights:  # the final weights, loadable with torch.load(..., weights_only=True)
                torch.save(t.model.state_dict(), out_dir / "weights.pt")
        tracker.finish(status, out_dir)
        if checkpoint_path.exists():
            checkpoint_path.unlink()
        return result


def report_epoch(bar: tqdm, config: RunConfig, row: dict) -> None:
    """The epoch on the progress bar where stderr is a terminal, else as one log line."""
    bar.update(1)
    bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{row['test_accuracy']:.4f}")
    if bar.disable:
        log.info("%s epoch %d/%d train_loss %.4f test_acc %.4f lr %.4g %.0f img/s", config.display_name(),
                 row["epoch"], config.train.epochs, row["train_loss"], row["test_accuracy"], row["lr"],
                 row["images_per_s"])
