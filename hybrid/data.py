"""The data sets, held whole as uint8 tensors on the training device, and their batching.

CIFAR-10 and CIFAR-100 are read through torchvision from `root` (never downloaded here:
compute nodes have no internet; `python -m hybrid.data download NAME --root DIR` is the
separate step). `synthetic` is a CIFAR-shaped data set generated from its own seed and
cached under `root/synthetic/`, built so that downsampling matters: its classes differ in
shape, in bar orientation and in texture frequency, half of them near the Nyquist limit.
Its cache carries its key and checksum; a damaged or foreign one is generated again
(`load_synthetic` states the rule).

Batching is index arithmetic on the whole tensors, with no DataLoader: `epoch_batches`
shuffles, `augment` crops and flips a batch in one gather, `normalize` makes it float.
Every random draw comes from the `torch.Generator` the caller passes, so one generator
per epoch, seeded from (run seed, epoch), gives a run resumed at an epoch boundary
exactly the data it would have seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from hybrid import checksummed
from hybrid.fields import Float, Int, Str, describe, section

log = logging.getLogger("hybrid.data")
DATASETS = ("cifar10", "cifar100", "synthetic", "tiny-imagenet", "imagenette", "imagefolder")
# Packed once from image folders (`hybrid.packing`), then read as arrays; the others are
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

# The synthetic classes: five shapes, each with a low-frequency texture (period 7-16 px)
# or a high-frequency one (period 2.1-3 px, near the Nyquist limit of 2 px). A stride-2
# layer that aliases folds the high band onto lower frequencies.
SYNTHETIC_SHAPES = ("disc", "cross", "ring", "hbar", "vbar")
SYNTHETIC_BANDS = {"low": (0.06, 0.14), "high": (0.33, 0.47)}  # cycles per pixel
SYNTHETIC_CLASSES = tuple(f"{s}/{b}" for s in SYNTHETIC_SHAPES for b in SYNTHETIC_BANDS)
SYNTHETIC_VERSION = 2  # bump when the generator changes: the cache key includes it


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
        "memory, half of the host's on the CPU (hybrid.feeding.choose_feeding)", default=None, ge=0)

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
        hybrid.config.parse_run_config)."""
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
    # the memory-mapped arrays (hybrid.feeding makes batches of either)
    train_images: torch.Tensor | np.ndarray
    train_labels: torch.Tensor | np.ndarray
    eval_images: torch.Tensor | np.ndarray  # the test split
    eval_labels: torch.Tensor | np.ndarray
    val_images: torch.Tensor | None  # carved out of train when val_fraction > 0
    val_labels: torch.Tensor | None
    num_classes: int
    mean: torch.Tensor  # float32 (3,), in [0, 1] units, of the training images
    std: torch.Tensor
    feeding: str = "device"  # or "stream" (hybrid.feeding.choose_feeding)
    feeding_reason: str = "held whole on the device"
    input_size: int = 32  # the side the network sees (dataset.crop_size; the images' own for CIFAR)


# --- loading --------------------------------------------------------------------------


def load_splits(config: DataConfig, device: torch.device | str = "cpu") -> Splits:
    """The data set of `config` on `device`, the validation images carved out of train.

    Raises DataNotFoundError when CIFAR is missing or corrupted under `config.root`.
    """
    if config.name in PACKED:
        return load_packed_splits(config, device)
    if config.name == "synthetic":
        train_x, train_y, test_x, test_y = load_synthetic(config)
    else:
        train_x, train_y, test_x, test_y = load_cifar(config.name, config.root)
    val_x = val_y = None
    if config.val_fraction > 0:
        is_val = _stratified_val_mask(train_y, config.val_fraction)
        val_x, val_y = train_x[is_val], train_y[is_val]
        train_x, train_y = train_x[~is_val], train_y[~is_val]
    mean, std = channel_stats(train_x)
    train_x, train_y, test_x, test_y, mean, std = (t.to(device) for t in (train_x, train_y, test_x, test_y, mean, std))
    if val_x is not None:
        val_x, val_y = val_x.to(device), val_y.to(device)
    return Splits(train_x, train_y, test_x, test_y, val_x, val_y, NUM_CLASSES[config.name], mean, std)


def packed_dir(config: DataConfig) -> Path:
    """Where the pack of `config` lives: `root/packed/<name>[-<imagenette size>]-<side>`."""
    variant = f"-{config.imagenette_size}" if config.name == "imagenette" else ""
    return Path(config.root) / "packed" / f"{config.name}{variant}-{config.packed_size}"


def pack_command(config: DataConfig) -> str:
    size = f" --size {config.imagenette_size}" if config.name == "imagenette" else ""
    return (f"python -m hybrid.packing pack {config.name} --source {config.root} "
            f"--dest {packed_dir(config)} --image-size {config.packed_size}{size}")


def load_packed_splits(config: DataConfig, device: torch.device | str = "cpu") -> Splits:
    """A packed data set (`hybrid.packing`): its validation split is the test set. Held
    whole on `device` or left memory-mapped for streaming, as `hybrid.feeding.choose_feeding`
    decides from its size and `dataset.device_budget_gb`."""
    from hybrid.feeding import choose_feeding
    from hybrid.packing import PackingError, load_packed

    if config.val_fraction > 0:
        raise ValueError(f"dataset.val_fraction: not available for the packed data set {config.name} "
                         "(its validation split is the test set); set it to 0")
    dest = packed_dir(config)
    try:
        train_x, train_y, classes, manifest = load_packed(dest, "train")
        test_x, test_y, _, _ = load_packed(dest, "val")
    except PackingError as error:
        raise DataNotFoundError(f"{config.name}: {error} (the workflow's pack rule runs: {pack_command(config)})") from None
    if config.name in NUM_CLASSES and len(classes) != NUM_CLASSES[config.name]:
        raise DataNotFoundError(f"{dest} holds {len(classes)} classes, not {config.name}'s {NUM_CLASSES[config.name]}; "
                                f"delete it and run: {pack_command(config)}")
    mean, std = packed_channel_stats(dest, train_x, manifest["content_hash"])
    feeding, reason = choose_feeding(train_x.nbytes + test_x.nbytes, device, config.device_budget_gb)
    train_y, test_y = torch.from_numpy(train_y), torch.from_numpy(test_y)
    if feeding == "device":
        train_x, test_x = (torch.from_numpy(np.array(x)).to(device) for x in (train_x, test_x))  # read whole
        train_y, test_y = train_y.to(device), test_y.to(device)
    return Splits(train_x, train_y, test_x, test_y, None, None, len(classes), mean.to(device), std.to(device),
                  feeding, reason, config.input_size)


def packed_channel_stats(dest: Path, images: np.ndarray, content_hash: str,
                         chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """`channel_stats` of a pack's training images, read in chunks, cached beside the pack
    (stats.json, keyed by the pack's content hash)."""
    path = Path(dest) / "stats.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("content_hash") == content_hash:
            return torch.tensor(cached["mean"]), torch.tensor(cached["std"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    hist = sum(_channel_counts(torch.from_numpy(np.array(images[start : start + chunk])))
               for start in range(0, len(images), chunk))
    mean, std = _stats_of_counts(hist)
    try:
        path.write_text(json.dumps({"content_hash": content_hash, "mean": mean.tolist(), "std": std.tolist()}))
    except OSError as error:  # a read-only pack still trains
        log.warning("could not cache the channel statistics in %s: %s", path, error)
    return mean, std


def _stratified_val_mask(labels: torch.Tensor, fraction: float) -> torch.Tensor:
    """round(fraction * count) random images of each class, the same for every run."""
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    grouped = perm[torch.sort(labels[perm], stable=True).indices]  # by class, random within
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[labels[grouped]]
    take = torch.round(counts * fraction).long()
    mask = torch.zeros(n, dtype=torch.bool)
    mask[grouped[rank < take[labels[grouped]]]] = True
    if not mask.any():
        raise ValueError(f"dataset.val_fraction={fraction} leaves no validation image out of {n}; raise it")
    return mask


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std in [0, 1] units, exact, from 256-bin counts."""
    return _stats_of_counts(_channel_counts(images))


def _channel_counts(images: torch.Tensor) -> torch.Tensor:
    """float64 (channels, 256): how often each uint8 value occurs in each channel."""
    return torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256)
                        for c in range(images.shape[1])]).to(torch.float64)


def _stats_of_counts(hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.arange(256, dtype=torch.float64) / 255
    total = hist.sum(1)
    mean = (hist * values).sum(1) / total
    var = (hist * (values - mean[:, None]) ** 2).sum(1) / total
    return mean.float(), var.sqrt().float()


def _fetch_command(name: str, root) -> str:
    return f"python -m hybrid.data download {name} --root {root}"


def load_cifar(name: str, root: str | os.PathLike) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, test images, test labels) as uint8 NCHW / int64 tensors."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]
    try:  # torchvision checks every file's md5 before reading it
        parts = [cls(str(root), train=train, download=False) for train in (True, False)]
    except RuntimeError as error:
        raise DataNotFoundError(
            f"{name} is missing or corrupted under data root {str(root)!r} (expected the md5-checked "
            f"files of {os.path.join(str(root), cls.base_folder)}). Fetch it on a machine with internet: "
            f"{_fetch_command(name, root)}"
        ) from error
    tensors = []
    for part in parts:
        tensors.append(torch.from_numpy(np.ascontiguousarray(part.data.transpose(0, 3, 1, 2))))
        tensors.append(torch.tensor(part.targets, dtype=torch.int64))
    return tuple(tensors)


SYNTHETIC_PARTS = ("train_x", "train_y", "test_x", "test_y")


def load_synthetic(config: DataConfig) -> tuple[torch.Tensor, ...]:
    """The generated data set, from the cache under `root/synthetic/` or generated into it.

    The cache file holds its key (generator version, sizes, seed) and the SHA-256 of its
    bytes (`hybrid.checksummed`). The rule: a cache that is damaged (empty, truncated, a
    flipped bit, unreadable) or foreign (its stored key is not the one its name stands for)
    is named in one warning and generated again in its place, atomically. A directory at
    the cache path is a DataNotFoundError naming the path and the fix.
    """
    key = {"version": SYNTHETIC_VERSION, "train": config.synthetic_train,
           "test": config.synthetic_test, "seed": config.synthetic_seed}
    path = synthetic_cache_path(config.root, key)
    cached = read_synthetic_cache(path, key)
    if cached is not None:
        return cached
    parts = generate_synthetic(config.synthetic_train, config.synthetic_test, config.synthetic_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # checksummed.write renames a complete file into place: concurrent jobs never read half a file
    checksummed.write(path, {"key": key, **dict(zip(SYNTHETIC_PARTS, parts))})
    return parts


def synthetic_cache_path(root, key: dict) -> Path:
    """Where the set of `key` is cached, after checking that a file can live there."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(root) / "synthetic" / f"synthetic-{digest}.pt"
    for place in (path.parent, *path.parent.parents):
        if place.exists() and not place.is_dir():
            raise DataNotFoundError(f"the synthetic cache needs {place} to be a folder, but it is a file; "
                                    f"move it away or choose another dataset.root")
    if path.is_dir():
        raise DataNotFoundError(f"synthetic cache {path} is a directory, not a file; remove it "
                                f"(rm -r {path}) and the data set is generated and cached there again")
    return path


def read_synthetic_cache(path: Path, key: dict) -> tuple[torch.Tensor, ...] | None:
    """The cached set of `key` at `path`; None, after one warning for a bad file, when it must be generated."""
    if not path.exists():
        return None
    try:
        cached = checksummed.read(path)
        problem = synthetic_cache_problem(cached, key)
    except checksummed.DamagedFileError as err:
        problem = err.problem
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    if problem is None:
        return tuple(cached[part] for part in SYNTHETIC_PARTS)
    log.warning("synthetic cache %s %s; generating it again in its place", path, problem)
    return None


def synthetic_cache_problem(cached, key: dict) -> str | None:
    """Why an intact file is still not the cache of `key`, or None."""
    if not isinstance(cached, dict) or not all(isinstance(cached.get(p), torch.Tensor) for p in SYNTHETIC_PARTS):
        return "is not a synthetic cache (its tensors are missing)"
    if cached.get("key") != key:
        return f"holds the set of key {cached.get('key')}, not {key} (a file under another key's name)"
    return None


# --- the synthetic data set -----------------------------------------------------------


def generate_synthetic(n_train: int, n_test: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Train and test sets from independent streams of `seed` (the train set does not
    depend on the test size)."""
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return (*synthetic_images(n_train, train_rng), *synthetic_images(n_test, test_rng))


def synthetic_images(n: int, rng: np.random.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` images (uint8 (n, 3, size, size)) with balanced labels (int64 (n,)).

    Each image: a noisy background with a colour gradient, and one shape (disc, cross,
    ring, near-horizontal or near-vertical bar) of random position, scale and rotation,
    filled with a sinusoidal grating of random orientation, phase and colours around a
    mean colour that stands apart from the background's. Shape edges are anti-aliased;
    the grating is sampled as is. (Version 1 had a square, easily taken for the disc, and
    shapes whose colour could match the background: a narrow net learnt them slowly.)
    """
    labels = rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES))
    shape, band = labels // len(SYNTHETIC_BANDS), labels % len(SYNTHETIC_BANDS)

    def draw(low, high, channels=None):
        return rng.uniform(low, high, size=(n,) if channels is None else (n, channels, 1, 1)).astype(np.float32)

    col = (n, 1, 1)  # per-image parameters broadcast over (n, size, size)
    cy, cx = draw(10, size - 10).reshape(col), draw(10, size - 10).reshape(col)
    radius = draw(6, 11).reshape(col)
    angle = draw(0, np.pi / 2).reshape(col)
    angle = np.where(np.isin(shape, (3, 4)).reshape(col), angle / 2.5 - np.pi / 10, angle)  # bars: +-18 deg
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = y - cy, x - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    r = np.hypot(dx, dy)
    width = np.maximum(2.5, 0.35 * radius)
    distance = np.select(  # a signed distance to the shape's edge, in pixels
        [shape.reshape(col) == k for k in range(5)],
        [r - radius,
         np.minimum(np.maximum(abs(u) - radius, abs(v) - 0.3 * radius),
                    np.maximum(abs(v) - radius, abs(u) - 0.3 * radius)),
         abs(r - radius + width / 2) - width / 2,
         np.maximum(abs(u) - radius, abs(v) - 0.35 * radius),
         np.maximum(abs(v) - radius, abs(u) - 0.35 * radius)],
    )
    coverage = np.clip(0.5 - distance, 0, 1)[:, None]

    lows = np.array([b[0] for b in SYNTHETIC_BANDS.values()], dtype=np.float32)[band]
    highs = np.array([b[1] for b in SYNTHETIC_BANDS.values()], dtype=np.float32)[band]
    freq = (lows + (highs - lows) * draw(0, 1)).reshape(col)
    theta, phase = draw(0, np.pi).reshape(col), draw(0, 2 * np.pi).reshape(col)
    wave = np.sin(2 * np.pi * freq * (x * np.cos(theta) + y * np.sin(theta)) + phase)[:, None]
    amplitude = draw(0.5, 1.0, 3) * rng.choice([-1, 1], size=(n, 3, 1, 1)) * draw(0.2, 0.35).reshape(n, 1, 1, 1)
    base = draw(0.15, 0.85, 3)  # the background's colour
    # The shape's mean colour stands 0.25-0.4 apart from the background's, towards the
    # farther end of the range, so that its outline shows whatever its texture.
    away = np.where(base.mean(1, keepdims=True) < 0.5, 1.0, -1.0)
    texture = base + away * draw(0.25, 0.4).reshape(n, 1, 1, 1) + draw(-0.05, 0.05, 3) + amplitude * wave

    gradient = draw(-0.15, 0.15, 3) * ((x - size / 2) / size) + draw(-0.15, 0.15, 3) * ((y - size / 2) / size)
    noise = rng.standard_normal((n, 3, size, size), dtype=np.float32) * draw(0.02, 0.08).reshape(n, 1, 1, 1)
    background = base + gradient + noise
    image = background + coverage * (texture - background)
    pixels = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))


# --- batches --------------------------------------------------------------------------


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator, *, shuffle: bool = True,
    drop_last: bool = False, device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """One epoch's index tensors: each of range(n) exactly once (less a dropped tail)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator, device=generator.device) if shuffle else torch.arange(n)
    batches = list(order.to(device or "cpu").split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def augment(images: torch.Tensor, *, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop after `padding` pixels of zeros, and random horizontal flip, per image.

    The standard CIFAR augmentation (torchvision's RandomCrop(32, padding) then
    RandomHorizontalFlip) in one gather on the images' device: returns the input's dtype
    and shape (uint8 in, uint8 out; the zero padding is black, as in torchvision).
    Draws, from `generator`, the crop offsets then the flips; padding=0 and flip=False
    draw nothing and return `images` unchanged.
    """
    if padding < 0:
        raise ValueError(f"augment: padding must be >= 0, got {padding}")
    n, _, height, width = images.shape
    if padding == 0 and not flip:
        return images
    dev = generator.device
    offsets = torch.zeros(n, 2, dtype=torch.long, device=dev)
    if padding:
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=dev)
    flips = torch.zeros(n, dtype=torch.bool, device=dev)
    if flip:
        flips = torch.rand(n, generator=generator, device=dev) < 0.5
    offsets, flips = offsets.to(images.device), flips.to(images.device)
    rows = offsets[:, :1] + torch.arange(height, device=images.device)
    cols_ahead = torch.arange(width, device=images.device).expand(n, width)
    cols = offsets[:, 1:] + torch.where(flips[:, None], cols_ahead.flip(1), cols_ahead)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def normalization_stats(kind: str, splits: Splits) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) that `normalize` takes for `kind` (one of NORMALIZATIONS), on the
    splits' device."""
    device = splits.mean.device
    if kind == "dataset":
        return splits.mean, splits.std
    if kind == "cifar-fixed":
        mean, std = OFFICIAL_CIFAR_MEAN, OFFICIAL_CIFAR_STD
    elif kind == "unit":
        mean, std = (0.0,) * len(splits.mean), (1.0,) * len(splits.std)
    else:
        raise ValueError(f"train.normalization: unknown {kind!r}; known: {', '.join(NORMALIZATIONS)}")
    return (torch.tensor(mean, dtype=torch.float32, device=device), torch.tensor(std, dtype=torch.float32, device=device))


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """float32 (images / 255 - mean) / std, per channel."""
    return (images.float() / 255 - mean[:, None, None]) / std[:, None, None]


# --- the fetch step -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch CIFAR, Tiny-ImageNet or Imagenette, check an image "
                                   "folder, or generate and cache the synthetic set")
    packer = commands.add_parser("pack", help="pack a data set's image folders for training, unless packed")
    for command in (download, packer):
        command.add_argument("name", choices=DATASETS if command is download else PACKED)
        command.add_argument("--root", default=DataConfig.root, help="data root (default: %(default)s)")
        command.add_argument("--imagenette-size", choices=IMAGENETTE_SIZES, default=DataConfig.imagenette_size)
    download.add_argument("--synthetic-train", type=int, default=DataConfig.synthetic_train)
    download.add_argument("--synthetic-test", type=int, default=DataConfig.synthetic_test)
    download.add_argument("--synthetic-seed", type=int, default=DataConfig.synthetic_seed)
    packer.add_argument("--image-size", type=int, default=None, help="packed side (default: the data set's)")
    packer.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 8)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        return pack_main(args)

    config = DataConfig(args.name, args.root, synthetic_train=args.synthetic_train,
                        synthetic_test=args.synthetic_test, synthetic_seed=args.synthetic_seed,
                        imagenette_size=args.imagenette_size)
    if args.name in PACKED:
        return fetch_main(config)
    if args.name != "synthetic":
        from torchvision.datasets import CIFAR10, CIFAR100

        cls = {"cifar10": CIFAR10, "cifar100": CIFAR100}[args.name]
        try:  # checks the md5 of what is there first, and downloads only if that fails
            cls(args.root, train=True, download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            print(f"could not fetch {args.name} into {args.root}: {error}\nRun this on a machine with "
                  f"internet, or unpack {cls.filename} ({cls.url}) into {args.root}.", file=sys.stderr)
            return 1
    splits = load_splits(config)  # reads back what the training jobs will read
    print(f"{args.name} ready under {args.root}: {len(splits.train_labels)} training and "
          f"{len(splits.eval_labels)} test images, {splits.num_classes} classes")
    return 0


def fetch_main(config: DataConfig) -> int:
    """Tiny-ImageNet and Imagenette downloaded (md5-checked) unless there; an image folder
    only listed. Either way its layout is checked, as packing will read it."""
    from hybrid.packing import PackingError, fetch, list_images

    size = config.imagenette_size if config.name == "imagenette" else None
    try:
        if config.name != "imagefolder":
            fetch(config.name, Path(config.root), size=size)
        listing = list_images(config.name, Path(config.root), size=size)
    except PackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:  # no internet, a failed checksum
        print(f"could not fetch {config.name} into {config.root}: {error}\nRun this on a machine with internet, "
              f"or unpack it there as `python -m hybrid.packing fetch {config.name}` would.", file=sys.stderr)
        return 1
    counts = ", ".join(f"{len(split.paths)} {name}" for name, split in listing.splits.items())
    print(f"{config.name} ready under {config.root}: {counts} images, {len(listing.classes)} classes")
    return 0


def pack_main(args) -> int:
    """The pack of a data set under its root, made unless one of the same kind, variant and
    size is there (its manifest read, not its hashes: `python -m hybrid.packing verify`)."""
    from hybrid.packing import PackingError, pack, read_manifest

    try:
        config = DataConfig(args.name, args.root, image_size=args.image_size, imagenette_size=args.imagenette_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    dest, size = packed_dir(config), config.imagenette_size if config.name == "imagenette" else None
    try:
        manifest = read_manifest(dest)
        if (manifest["kind"], manifest["image_size"], manifest.get("size")) == (config.name, config.packed_size, size):
            print(f"{dest} already packed: {manifest['splits']['train']['count']} training and "
                  f"{manifest['splits']['val']['count']} validation images")
            return 0
        print(f"error: {dest} holds another pack ({manifest['kind']}, {manifest['image_size']} px); delete it",
              file=sys.stderr)
        return 2
    except PackingError:
        pass  # none yet (or a damaged one, which pack refuses with its own message)
    try:
        manifest = pack(config.name, Path(config.root), dest, config.packed_size, size=size, workers=args.workers)
    except PackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"packed {dest}: {manifest['splits']['train']['count']} training and "
          f"{manifest['splits']['val']['count']} validation images in {manifest['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
