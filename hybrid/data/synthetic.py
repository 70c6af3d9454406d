"""The generated data set: CIFAR-shaped, from its own seed, cached under `root/synthetic/`,
built so that downsampling matters: its classes differ in shape, in bar orientation and in
texture frequency, half of them near the Nyquist limit. Its cache carries its key and
checksum; a damaged or foreign one is generated again (`load_synthetic` states the rule).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from hybrid import checksummed
from hybrid.data.config import DataConfig, DataNotFoundError

log = logging.getLogger("hybrid.data")


# The synthetic classes: five shapes, each with a low-frequency texture (period 7-16 px)
# or a high-frequency one (period 2.1-3 px, near the Nyquist limit of 2 px). A stride-2
# layer that aliases folds the high band onto lower frequencies.
SYNTHETIC_SHAPES = ("disc", "cross", "ring", "hbar", "vbar")
SYNTHETIC_BANDS = {"low": (0.06, 0.14), "high": (0.33, 0.47)}  # cycles per pixel
SYNTHETIC_CLASSES = tuple(f"{s}/{b}" for s in SYNTHETIC_SHAPES for b in SYNTHETIC_BANDS)
SYNTHETIC_VERSION = 2  # bump when the generator changes: the cache key includes it


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
