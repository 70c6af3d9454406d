"""What a run trains on: the `dataset` section of a run config, the data sets' names, sizes
and class counts, and the `Splits` a data set is loaded into.

A packed data set (`hybrid.data.packing`) is stored at `packed_size` and seen at
`input_size`; CIFAR and the generated set are 32 px and held whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hybrid.fields import Float, Int, Str, describe, section

DATASETS = ("cifar10", "cifar100", "synthetic", "tiny-imagenet", "imagenette", "imagefolder")
# Packed once from image folders (`hybrid.data.packing`), then read as arrays; the others are
# 32 px and held whole.
PACKED = ("tiny-imagenet", "imagenette", "imagefolder")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "synthetic": 10, "tiny-imagenet": 200, "imagenette": 10}
# (packed side, conventional crop) by default: Tiny-ImageNet whole at 64 px; Imagenette's
# 160 px variant cropped to 128 (fast.ai's Imagenette leaderboard, 128 px); an image
# folder such as ImageNet at 256, cropped to 224 (torchvision's references: resize 256,
# centre crop 224 in evaluation, random-resized crops of 224 in training). The crop is
# random-resized-crop's; `default_crop_size` states when it applies.
PACKED_SIZES = {"tiny-imagenet": (64, 64), "imagenette": (160, 128), "imagefolder": (256, 224)}
IMAGENETTE_SIZES = ("full", "320px", "160px")
# How `normalize` scales pixels (train.normalization): by the training set's channel
# statistics, by the official DiffStride HEAD's fixed CIFAR constants
# (google-research/diffstride b3ef50f examples/data.py `convert`), or to [0, 1] only (the
# first release's `convert`).
NORMALIZATIONS = ("dataset", "cifar-fixed", "unit")
OFFICIAL_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
OFFICIAL_CIFAR_STD = (0.2023, 0.1994, 0.2010)
# The validation carve's own seed: the same held-out images for every run, model and run
# seed, so that validation scores compare across runs.
VAL_SPLIT_SEED = 20240117


class DataNotFoundError(FileNotFoundError):
    """A data set is missing or fails its checksums under the data root."""


@section("dataset")
class DataConfig:
    name: Literal[DATASETS] = describe("the data set", default="synthetic")
    root: Str = describe("CIFAR's torchvision folders and the synthetic cache live here",
                         default="data", min_length=1)
    val_fraction: Float = describe("carved out of the training set, stratified by class; 0: none",
                                   default=0.0, ge=0, lt=1)
    synthetic_train: Int = describe("generated training images", default=5000, ge=1)
    synthetic_test: Int = describe("generated test images", default=1000, ge=1)
    synthetic_seed: Int = describe("the generated data set's own seed, not the run's",
                                   default=0, ge=0)
    image_size: Int | None = describe(
        "packed data sets: the packed image side (shorter side resized, centre crop); "
        "default tiny-imagenet 64, imagenette 160, imagefolder 256", default=None, ge=8)
    crop_size: Int | None = describe(
        "packed data sets: the network's input side (training crops, the evaluation centre "
        "crop), at most image_size; default: with train.augmentation random-resized-crop "
        "tiny-imagenet 64, imagenette 128, imagefolder 224, or the packed side where that is "
        "smaller; with pad-crop the packed side", default=None, ge=8)
    imagenette_size: Literal[IMAGENETTE_SIZES] = describe(
        "which of Imagenette's releases (torchvision's `size`)", default="160px")
    device_budget_gb: Float | None = describe(
        "packed data sets: held whole on the training device up to this size, else streamed "
        "from the memory-mapped pack (0: always streamed); default: a quarter of the GPU's "
        "memory, half of the host's on the CPU (hybrid.data.feeding.choose_feeding)", default=None, ge=0)

    def __post_init__(self):
        if self.name not in PACKED:
            for key in ("image_size", "crop_size", "device_budget_gb"):
                if getattr(self, key) is not None:
                    raise ValueError(f"dataset.{key}: only the packed data sets ({', '.join(PACKED)}) take it; "
                                     f"{self.name} is held whole at 32 px")
        elif self.crop_size is not None and self.crop_size > self.packed_size:
            raise ValueError(f"dataset.crop_size: {self.crop_size} is larger than the packed images "
                             f"(dataset.image_size {self.packed_size}); lower it, leave it out to take "
                             "the packed side, or raise dataset.image_size (a new pack)")

    @property
    def packed_size(self) -> int:
        """The side of the images as stored (32 for CIFAR and the generated set)."""
        return self.image_size or PACKED_SIZES.get(self.name, (32, 32))[0]

    @property
    def input_size(self) -> int:
        """The side of the images the network sees: `crop_size`, else `default_crop_size` under
        random-resized crops (a run config writes the pad-crop default into `crop_size`:
        hybrid.train.config.parse_run_config)."""
        return self.crop_size or default_crop_size(self.name, self.packed_size, "random-resized-crop")


def default_crop_size(name: str, packed_size: int, augmentation: str) -> int:
    """`dataset.crop_size` left out, by `train.augmentation`. Random-resized crops (the
    torchvision-imagenet recipe's) take the data set's conventional crop (PACKED_SIZES:
    ImageNet's 224, Imagenette's 128, Tiny-ImageNet's 64) from images packed at least that
    large, and the whole packed image from smaller ones (downsampled ImageNet at 32 or 64 px
    is trained on whole); pad-crop keeps the image size, so the packed side."""
    conventional = PACKED_SIZES.get(name, (32, 32))[1]
    if augmentation == "random-resized-crop" and packed_size >= conventional:
        return conventional
    return packed_size


SPLIT_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000),
               "tiny-imagenet": (100_000, 10_000), "imagenette": (9_469, 3_925),
               # an image folder's counts are its pack's; before packing, ImageNet-1k's
               "imagefolder": (1_281_167, 50_000)}


def split_sizes(config: DataConfig) -> tuple[int, int]:
    """(training images after the validation carve, test images) of `config`, without
    loading anything (the carve rounds per class, so this is within a class count of it)."""
    train, test = SPLIT_SIZES.get(config.name, (config.synthetic_train, config.synthetic_test))
    return train - round(train * config.val_fraction), test


@dataclass
class Splits:
    # uint8 (N, 3, S, S) and int64 (N,): tensors on the device, or, for a streamed pack,
    # the memory-mapped arrays (hybrid.data.feeding makes batches of either)
    train_images: torch.Tensor | np.ndarray
    train_labels: torch.Tensor | np.ndarray
    eval_images: torch.Tensor | np.ndarray  # the test split
    eval_labels: torch.Tensor | np.ndarray
    val_images: torch.Tensor | None  # carved out of train when val_fraction > 0
    val_labels: torch.Tensor | None
    num_classes: int
    mean: torch.Tensor  # float32 (3,), in [0, 1] units, of the training images
    std: torch.Tensor
    feeding: str = "device"  # or "stream" (hybrid.data.feeding.choose_feeding)
    feeding_reason: str = "held whole on the device"
    input_size: int = 32  # the side the network sees (dataset.crop_size; the images' own for CIFAR)
