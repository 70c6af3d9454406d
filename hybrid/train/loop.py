"""The training loop, read top to bottom: the set-up, one step, one epoch, the run.

- `set_up`: the device, the seeds, the data on the device, the network and its optimizer;
- `train_step`: one batch augmented (and mixed) on the device, one SGD step;
- `train_epoch`: a pass over the training set in an order drawn from (seed, epoch), then
  the evaluation, into the epoch's row of history.csv; a SIGTERM checkpoints at the step;
- `train_run`: resume from a checkpoint, the epochs, the result files and MLflow.

Every random draw of an epoch (its order, crops, flips, mixup weights) comes from two
generators seeded by (run seed, epoch), whose states a mid-epoch checkpoint carries: a
resumed run ends exactly where an uninterrupted one would.
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
from hybrid.data import Splits, augment, epoch_batches, load_splits, normalization_stats, normalize
from hybrid.data.feeding import DeviceFeeder, StreamFeeder, center_crop_resize, random_resized_crop
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
from hybrid.train.result import build_result, run_tags, write_results
from hybrid.train.schedule import epoch_seed, learning_rate, parameter_groups, steps_per_epoch
from hybrid.train.stop import Interrupted, StopSignal
from hybrid.train.tracking import RunTracker, resolve_tracking_uri, study_labels

log = logging.getLogger("hybrid.train")
DIVERGENCE_CHECK_EVERY = 50  # steps between reads of the non-finite-loss flag on a GPU


class Diverged(Exception):
    """A non-finite loss: the run ends with status "diverged": a result, not a crash."""


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
    feed: DeviceFeeder | StreamFeeder  # the training split's batches
    per_epoch: int  # optimizer steps per epoch
    batch_per_step: int  # images drawn per step: two per mixed example under mixup
    checkpoint_path: Path
    stop: StopSignal
    train_time: float = 0.0  # seconds in training steps so far, over every attempt


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
    optimizer = torch.optim.SGD(parameter_groups(model, tcfg), lr=tcfg.lr, momentum=tcfg.momentum, nesterov=tcfg.nesterov)
    log.info("%s: %s (%s)", config.display_name(), splits.feeding, splits.feeding_reason)
    return Training(
        config, device, splits, model, optimizer,
        feed=feeder(splits.train_images, splits.train_labels, device),
        per_epoch=steps_per_epoch(len(splits.train_labels), tcfg),
        batch_per_step=tcfg.batch_size * (2 if tcfg.mixup_alpha > 0 else 1),
        checkpoint_path=checkpoint_path, stop=stop,
    )


def feeder(images, labels, device) -> DeviceFeeder | StreamFeeder:
    """Batches of a split: gathered on the device, or streamed from a memory-mapped pack."""
    if isinstance(images, torch.Tensor):
        return DeviceFeeder(images, labels)
    return StreamFeeder(images, labels, device)


# --- one step ---------------------------------------------------------------------------


def train_step(t: Training, images: torch.Tensor, labels: torch.Tensor, lr: float,
               generator: torch.Generator, rng: np.random.Generator, sums: dict) -> None:
    """One SGD step on one batch: augmented, normalised and mixed on the device (crops and
    flips drawn from `generator`, mixup weights from `rng`); the loss and hits add to `sums`."""
    x, targets = train_batch(t.splits, images, labels, t.config.train, generator, rng)
    optimizer_step(t.model, t.optimizer, x, targets, lr, t.config.train, t.device, sums)


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


# --- one epoch --------------------------------------------------------------------------


def train_epoch(t: Training, epoch: int, history: list[dict], resume: dict | None = None) -> dict:
    """Epoch `epoch` (1-based): its steps in an order drawn from (seed, epoch), then the
    evaluation; returns its row of history.csv.

    `resume`, a checkpoint taken mid-epoch, restarts at its step with its generators' states
    and its running sums. A SIGTERM checkpoints before the next step and raises Interrupted.
    """
    tcfg, run_id = t.config.train, t.config.run_id()
    generator = torch.Generator().manual_seed(epoch_seed(t.config.seed, epoch))
    rng = np.random.default_rng(epoch_seed(t.config.seed, epoch))
    batches = epoch_batches(len(t.splits.train_labels), t.batch_per_step, generator, shuffle=True,
                            drop_last=tcfg.mixup_alpha > 0)
    sums = {"loss": torch.zeros((), device=t.device), "correct": torch.zeros((), device=t.device),
            "finite": torch.ones((), dtype=torch.bool, device=t.device), "seen": 0, "steps": 0}
    first_step, lr = 0, learning_rate(tcfg, (epoch - 1) * t.per_epoch, t.per_epoch)
    if resume is not None:
        generator.set_state(resume["generator"])
        rng.bit_generator.state = resume["rng"]
        sums = {k: (v.to(t.device) if torch.is_tensor(v) else v) for k, v in resume["sums"].items()}
        first_step, t.train_time = resume["step"], resume["train_time"]
    t0 = time.perf_counter()
    steps = t.feed.batches(batches[first_step:])
    for i in range(first_step, len(batches)):
        if t.stop.requested:
            save_checkpoint(
                t.checkpoint_path, run_id, t.model, t.optimizer, history, epoch, i,
                generator=generator.get_state(), rng=rng.bit_generator.state,
                sums={k: (v.cpu() if torch.is_tensor(v) else v) for k, v in sums.items()},
                train_time=t.train_time + time.perf_counter() - t0,
            )
            raise Interrupted()
        lr = learning_rate(tcfg, (epoch - 1) * t.per_epoch + i, t.per_epoch)
        train_step(t, *next(steps), lr, generator, rng, sums)
    epoch_time = time.perf_counter() - t0
    t.train_time += epoch_time
    return epoch_row(t.model, t.splits, tcfg, t.device, epoch, sums, lr, epoch_time)


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
        try:
            for epoch in range(start_epoch, config.train.epochs + 1):
                mid_epoch = resume and epoch == start_epoch and resume_step > 0
                row = train_epoch(t, epoch, history, {**resume, "step": resume_step} if mid_epoch else None)
                history.append(row)
                tracker.log_epoch(epoch, {k: v for k, v in row.items() if k != "epoch"})
                save_checkpoint(checkpoint_path, run_id, t.model, t.optimizer, history, epoch + 1)
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
                              time.perf_counter() - wall_start, (t.splits.feeding, t.splits.feeding_reason))
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
