"""A data set loaded into its `Splits`: held whole as uint8 tensors on the training device,
or, for a large pack, memory-mapped for streaming; the validation images carved out of
train, stratified by class, the same for every run; the channel statistics exact, from
256-bin counts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from hybrid.data.cifar import load_cifar
from hybrid.data.config import NUM_CLASSES, PACKED, VAL_SPLIT_SEED, DataConfig, DataNotFoundError, Splits
from hybrid.data.synthetic import load_synthetic

log = logging.getLogger("hybrid.data")


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
    return (f"python -m hybrid.data.packing pack {config.name} --source {config.root} "
            f"--dest {packed_dir(config)} --image-size {config.packed_size}{size}")


def load_packed_splits(config: DataConfig, device: torch.device | str = "cpu") -> Splits:
    """A packed data set (`hybrid.data.packing`): its validation split is the test set. Held
    whole on `device` or left memory-mapped for streaming, as `hybrid.data.feeding.choose_feeding`
    decides from its size and `dataset.device_budget_gb`.

    Checked as it loads (`hybrid.data.pack_check`): headers, sizes, classes and labels every
    time, the SHA-256s once per pack and host; an image folder's pack against its class
    folders. Any failure is one DataNotFoundError naming the pack and the fix."""
    from hybrid.data.feeding import choose_feeding
    from hybrid.data.pack_check import verify_once
    from hybrid.data.packing import PackingError, load_packed

    if config.val_fraction > 0:
        raise ValueError(f"dataset.val_fraction: not available for the packed data set {config.name} "
                         "(its validation split is the test set); set it to 0")
    dest = packed_dir(config)
    try:
        train_x, train_y, classes, manifest = load_packed(dest, "train")
        test_x, test_y, _, _ = load_packed(dest, "val")
        verify_once(dest, manifest)
    except PackingError as error:
        raise DataNotFoundError(f"{config.name}: {error} (the workflow's pack rule runs: {pack_command(config)})") from None
    if config.name in NUM_CLASSES and len(classes) != NUM_CLASSES[config.name]:
        raise DataNotFoundError(f"{dest} holds {len(classes)} classes, not {config.name}'s {NUM_CLASSES[config.name]}; "
                                f"delete it and run: {pack_command(config)}")
    if config.name == "imagefolder":
        _check_folder_classes(config, dest, classes)
    mean, std = packed_channel_stats(dest, train_x, manifest["content_hash"])
    feeding, reason = choose_feeding(train_x.nbytes + test_x.nbytes, device, config.device_budget_gb)
    train_y, test_y = torch.from_numpy(train_y), torch.from_numpy(test_y)
    if feeding == "device":
        train_x, test_x = (torch.from_numpy(np.array(x)).to(device) for x in (train_x, test_x))  # read whole
        train_y, test_y = train_y.to(device), test_y.to(device)
    return Splits(train_x, train_y, test_x, test_y, None, None, len(classes), mean.to(device), std.to(device),
                  feeding, reason, config.input_size)


def _check_folder_classes(config: DataConfig, dest: Path, classes: list[str]) -> None:
    """An image folder's `model.num_classes`, left out, is read from ROOT/train's class folders
    (hybrid.train.config): a pack whose classes differ from them is stale, and no setting of
    model.num_classes trains on it; packing again is the fix. Lists folders, never images."""
    from hybrid.data.layouts import PackingError, imagefolder_classes

    train = Path(config.root) / "train"
    if not train.is_dir():
        return  # the pack alone was copied here: model.num_classes is set, and the pack stands
    try:
        folders = list(imagefolder_classes(Path(config.root)))
    except (PackingError, OSError):
        return
    if folders != classes:
        added, gone = sorted(set(folders) - set(classes)), sorted(set(classes) - set(folders))
        change = "; ".join(part for part in (f"added {', '.join(added[:5])}" if added else "",
                                             f"removed {', '.join(gone[:5])}" if gone else "") if part)
        raise DataNotFoundError(
            f"{dest} was packed from {len(classes)} classes, but {train} now has {len(folders)} class folders "
            f"({change or 'renamed'}); model.num_classes follows those folders, so pack them again: delete "
            f"{dest} and run: {pack_command(config)} (or restore the folders as they were packed)")


def packed_channel_stats(dest: Path, images: np.ndarray, content_hash: str,
                         chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """`channel_stats` of a pack's training images, read in chunks, cached beside the pack
    (stats.json, keyed by the pack's content hash). A cached value that cannot be right
    (not finite, a mean outside [0, 1], a std outside (0, 1]) is recomputed, with a warning."""
    path = Path(dest) / "stats.json"
    channels = images.shape[1]
    try:
        cached = json.loads(path.read_text())
        if cached.get("content_hash") == content_hash:
            mean, std = (torch.tensor(cached[key], dtype=torch.float32) for key in ("mean", "std"))
            if not (problem := _stats_problem(mean, std, channels)):
                return mean, std
            log.warning("%s: the cached channel statistics are unusable (%s); recomputing them", path, problem)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as error:
        log.warning("%s: the cached channel statistics are unreadable (%s); recomputing them", path,
                    f"{type(error).__name__}: {error}".replace("\n", " "))
    hist = sum(_channel_counts(torch.from_numpy(np.array(images[start : start + chunk])))
               for start in range(0, len(images), chunk))
    mean, std = _stats_of_counts(hist)
    if problem := _stats_problem(mean, std, channels):  # e.g. a channel that is constant in every image
        log.warning("%s: the training images' channel statistics are unusable (%s): train.normalization "
                    "dataset divides by the std; use train.normalization unit, or check the images", dest, problem)
        return mean, std
    try:
        path.write_text(json.dumps({"content_hash": content_hash, "mean": mean.tolist(), "std": std.tolist()}))
    except OSError as error:  # a read-only pack still trains
        log.warning("could not cache the channel statistics in %s: %s", path, error)
    return mean, std


def _stats_problem(mean: torch.Tensor, std: torch.Tensor, channels: int) -> str:
    """Why (mean, std) in [0, 1] units cannot be a data set's channel statistics; '' if they can."""
    if mean.shape != (channels,) or std.shape != (channels,):
        return f"{channels} channels, but shapes {tuple(mean.shape)} and {tuple(std.shape)}"
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
        return f"not finite: mean {mean.tolist()}, std {std.tolist()}"
    if ((mean < 0) | (mean > 1)).any() or (std <= 0).any() or (std > 1).any():
        return f"mean {mean.tolist()} must lie in [0, 1], std {std.tolist()} in (0, 1]"
    return ""


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
