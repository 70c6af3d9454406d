"""One training step: a batch augmented, normalised and mixed on the device, one SGD update.

Nothing in a step waits for the device. Its random draws were made and copied at the
epoch's start (`hybrid.train.draws`); its loss, hits and the non-finite flag add up on the
device; a DiffStride net's strides are read once, together, for the step's crops
(`ResNet.plan_strides`). On CUDA the flag is looked at without waiting (`FiniteWatch`), so
the host can queue steps ahead of the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hybrid.data import Splits, crop_and_flip, normalize
from hybrid.data.feeding import resample_boxes
from hybrid.train.config import TrainConfig
from hybrid.train.draws import StepDraws

# Steps between two looks at the non-finite-loss flag on CUDA (each a copy that does not block).
DIVERGENCE_CHECK_EVERY = 50


class Diverged(Exception):
    """A non-finite loss: the run ends with status "diverged": a result, not a crash."""


class FiniteWatch:
    """Whether every loss so far was finite, looked at without waiting for the device.

    The flag itself stays on the device (`sums["finite"]`). On CUDA, every `every` steps
    its value is copied behind the queued work into pinned host memory, and an event marks
    the copy's end; a later step reads the copy once the event has passed, and raises
    Diverged if a loss was not finite. The epoch's end reads the flag itself in any case
    (`loop.epoch_row`), so on the CPU, where a step is synchronous and a run gains nothing
    from stopping a few steps early, nothing is looked at mid-epoch.
    """

    def __init__(self, device: torch.device, every: int = DIVERGENCE_CHECK_EVERY):
        self.every = every
        self.active = device.type == "cuda"
        self.host = torch.ones((), dtype=torch.bool, pin_memory=True) if self.active else None
        self.copied: torch.cuda.Event | None = None

    def look(self, finite: torch.Tensor, step: int) -> None:
        if not self.active:
            return
        if self.copied is not None and self.copied.query():
            self.copied = None
            if not self.host.item():  # pinned host memory, written: no wait
                raise Diverged()
        if self.copied is None and step % self.every == 0:
            self.host.copy_(finite, non_blocking=True)
            self.copied = torch.cuda.Event()
            self.copied.record()


def new_sums(device: torch.device) -> dict:
    """An epoch's running sums, on the device where they add up: loss, hits, whether every
    loss was finite; and on the host, the images seen and the steps taken."""
    return {"loss": torch.zeros((), device=device), "correct": torch.zeros((), device=device),
            "finite": torch.ones((), dtype=torch.bool, device=device), "seen": 0, "steps": 0}


def train_step(model, optimizer, splits: Splits, images: torch.Tensor, labels: torch.Tensor, draws: StepDraws,
               lr: float, train: TrainConfig, device: torch.device, sums: dict, watch: FiniteWatch,
               forward=None) -> None:
    """One SGD step at learning rate `lr` on one batch and its draws; the loss and hits
    accumulate in `sums`. `forward` is the model to call (its compiled wrapper), `model` by default."""
    x, targets = train_batch(splits, images, labels, draws, train)
    optimizer_step(model, optimizer, x, targets, lr, train, device, sums, watch, forward)


def train_batch(splits: Splits, images: torch.Tensor, labels: torch.Tensor, draws: StepDraws, train: TrainConfig):
    """Augmented, normalised images and soft targets for one step (mixup pairs as the official pipeline)."""
    if draws.crops is not None and train.augmentation == "random-resized-crop":
        boxes, flips = draws.crops
        images = resample_boxes(images, boxes, splits.input_size, flips)
    elif draws.crops is not None:
        offsets, flips = draws.crops
        images = crop_and_flip(images, offsets, flips, train.crop_padding)
    images = normalize(images, splits.mean, splits.std)
    # one_hot checks the labels' range on the host, a wait on CUDA; a scatter does not
    targets = torch.zeros(len(labels), splits.num_classes, device=labels.device).scatter_(1, labels[:, None], 1.0)
    if draws.mixup is not None:
        weight = draws.mixup
        w_img = weight[:, None, None, None]
        images = images[0::2] * w_img + images[1::2] * (1 - w_img)
        targets = targets[0::2] * weight[:, None] + targets[1::2] * (1 - weight[:, None])
    return images, targets


def optimizer_step(model, optimizer, x, targets, lr: float, train: TrainConfig, device, sums: dict,
                   watch: FiniteWatch, forward=None) -> None:
    """One SGD step at learning rate `lr`; the loss and hits accumulate on the device."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    if train.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.plan_strides(x.shape[-2:])  # a DiffStride net's one read of the step
    with autocast(device, train):
        logits = (forward or model)(x)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=train.label_smoothing)
    sums["finite"] &= torch.isfinite(loss)
    sums["steps"] += 1
    watch.look(sums["finite"], sums["steps"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    model.constrain_strides()
    sums["loss"] += loss.detach() * len(targets)
    sums["correct"] += (logits.argmax(1) == targets.argmax(1)).sum()
    sums["seen"] += len(targets)


def autocast(device: torch.device, train: TrainConfig):
    enabled = device.type == "cuda" and train.amp
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
