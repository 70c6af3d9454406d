"""Batching as index arithmetic on whole tensors, with no DataLoader: `epoch_batches`
shuffles, `augment` crops and flips a batch in one gather, `normalize` makes it float.
Every random draw comes from the `torch.Generator` the caller passes, so one generator
per epoch, seeded from (run seed, epoch), gives a run resumed at an epoch boundary
exactly the data it would have seen.
"""

from __future__ import annotations

import torch

from hybrid.data.config import NORMALIZATIONS, OFFICIAL_CIFAR_MEAN, OFFICIAL_CIFAR_STD, Splits


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
    draw nothing and return `images` unchanged. `draw_crops` then `crop_and_flip` is the
    same in two halves, so that the draws can be made ahead (the training loop makes an
    epoch's at its start).
    """
    draws = draw_crops(len(images), padding=padding, flip=flip, generator=generator)
    if draws is None:
        return images
    offsets, flips = (d.to(images.device) for d in draws)
    return crop_and_flip(images, offsets, flips, padding)


def draw_crops(n: int, *, padding: int, flip: bool,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`augment`'s draws for n images, on the generator's device: int64 offsets (n, 2) in
    [0, 2 * padding] (zeros without padding), then bool flips (n,) (False without flips).
    None where nothing is drawn (padding=0 and flip=False)."""
    if padding < 0:
        raise ValueError(f"augment: padding must be >= 0, got {padding}")
    if padding == 0 and not flip:
        return None
    dev = generator.device
    offsets = torch.zeros(n, 2, dtype=torch.long, device=dev)
    if padding:
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=dev)
    flips = torch.zeros(n, dtype=torch.bool, device=dev)
    if flip:
        flips = torch.rand(n, generator=generator, device=dev) < 0.5
    return offsets, flips


def crop_and_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    """The images cropped at `offsets` after `padding` pixels of zeros and flipped where
    `flips`, in one gather; `offsets` and `flips` on the images' device (`draw_crops`')."""
    n, _, height, width = images.shape
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
