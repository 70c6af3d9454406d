"""The optimizer's parameter groups and the schedule: steps per epoch, the learning rate at a
step (stateless, so a resumed run needs no scheduler state), and each epoch's seed."""

from __future__ import annotations

import math

import torch

from hybrid.nn import ResNet
from hybrid.train.config import TrainConfig


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
