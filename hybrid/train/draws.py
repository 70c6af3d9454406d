"""An epoch's random draws, made at its start and sent to the device in one go.

Every random number of an epoch comes from two generators seeded by (run seed, epoch): the
torch generator draws the order of the images, then, step by step, each step's crops and
flips; numpy's draws the steps' mixup weights. `draw_epoch` makes all of them before the
first step, in that order, so the numbers are the ones a step-by-step loop would draw, and
moves them to the device as a few tensors, copied without blocking (from pinned memory on
CUDA). A step then takes its slices: views, with no copy and no wait, so the host can
queue the next steps while the device works. A run resumed mid-epoch draws its epoch
again from the same seeds and starts at its step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hybrid.data import draw_crops, epoch_batches
from hybrid.data.feeding import resized_crop_boxes
from hybrid.train.config import TrainConfig
from hybrid.transfer import to_device


@dataclass(frozen=True)
class StepDraws:
    """One step's draws on the device: its augmentation (pad-crop: int64 offsets (b, 2) and
    bool flips (b,); random-resized-crop: float64 boxes (b, 4) and bool flips; None: none
    drawn) and its float32 mixup weights (b / 2,), or None without mixup."""

    crops: tuple[torch.Tensor, torch.Tensor] | None
    mixup: torch.Tensor | None


@dataclass(frozen=True)
class EpochDraws:
    indices: list[torch.Tensor]  # each step's image indices, on the device (or the host, to stream)
    steps: list[StepDraws]

    def __len__(self) -> int:
        return len(self.indices)


def draw_epoch(n: int, batch_size: int, train: TrainConfig, image_size: tuple[int, int],
               generator: torch.Generator, rng: np.random.Generator, device: torch.device,
               indices_on_host: bool = False) -> EpochDraws:
    """The epoch's draws for `n` training images of `image_size` (height, width) in batches
    of `batch_size` (the last dropped when short under mixup), on `device`; the indices stay
    on the host with `indices_on_host` (a streamed set gathers its batches there)."""
    batches = epoch_batches(n, batch_size, generator, shuffle=True, drop_last=train.mixup_alpha > 0)
    if not batches:
        return EpochDraws([], [])
    crops = [_draw_crops(len(b), train, image_size, generator) for b in batches]
    mixup = [rng.beta(train.mixup_alpha, train.mixup_alpha, size=len(b) // 2) if train.mixup_alpha > 0 else None
             for b in batches]
    sizes = [len(b) for b in batches]
    indices = list(torch.cat(batches).split(sizes)) if indices_on_host else _to_device(batches, device, sizes)
    crops_on_device: list = [None] * len(batches)
    if crops and crops[0] is not None:
        parts = [_to_device([c[k] for c in crops], device, sizes) for k in range(2)]
        crops_on_device = list(zip(*parts))
    mixup_on_device: list = [None] * len(batches)
    if train.mixup_alpha > 0:
        weights = [torch.from_numpy(w).float() for w in mixup]
        mixup_on_device = _to_device(weights, device, [len(w) for w in weights])
    return EpochDraws(indices, [StepDraws(c, m) for c, m in zip(crops_on_device, mixup_on_device)])


def _draw_crops(b: int, train: TrainConfig, image_size: tuple[int, int], generator: torch.Generator):
    """One step's augmentation draws, in the order the step-by-step loop drew them."""
    if train.augmentation == "random-resized-crop":
        boxes = resized_crop_boxes(b, *image_size, generator, scale=(train.rrc_min_scale, 1.0))
        flips = torch.rand(b, generator=generator) < 0.5 if train.flip else torch.zeros(b, dtype=torch.bool)
        return boxes.double(), flips
    return draw_crops(b, padding=train.crop_padding, flip=train.flip, generator=generator)


def _to_device(parts: list[torch.Tensor], device: torch.device, sizes: list[int]) -> list[torch.Tensor]:
    """`parts` concatenated, copied to `device` once without blocking, and split there again
    into views."""
    if not parts:
        return []
    return list(to_device(torch.cat(parts), device).split(sizes))
