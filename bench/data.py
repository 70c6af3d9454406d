"""Feeding throughput: one epoch of batches held whole on the device vs streamed from a
memory map; and the packing rate.

    python bench/data.py [--images 20000] [--size 64] [--batch-size 256] [--prefetch 2]
                         [--repeats 3] [--device auto|cpu|cuda] [--dir DIR]
                         [--pack-images 600] [--workers N]

Writes a packed-format set (uint8 (N, 3, S, S) and int64 labels, `.npy` files; random
pixels, not timed) to a temporary folder, then times one shuffled epoch (hybrid.data's
epoch_batches) through `DeviceFeeder` and `StreamFeeder` (hybrid/data/feeding.py), each batch
consumed by a float sum on the device, synchronised. Prints the device, each mode's
images/s (the best of --repeats epochs) and the streamed/device ratio, from the same run.
The file was just written, so the stream reads from the page cache: this is the feeding
machinery's cost, not the disk's.

Then packs --pack-images generated JPEGs (500x375, ImageNet's typical size, 10 classes)
to --size with hybrid.data.packing.pack, once with one process and once with --workers, and
prints images/s of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap

from hybrid.data import epoch_batches
from hybrid.data.feeding import DeviceFeeder, StreamFeeder
from hybrid.data.packing import pack


def write_packed(folder: Path, n: int, size: int) -> tuple[Path, Path]:
    """Random images and labels in the packed format, written in chunks."""
    rng = np.random.default_rng(0)
    images = open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        images[start:stop] = rng.integers(0, 256, size=(stop - start, 3, size, size), dtype=np.uint8)
    labels = open_memmap(folder / "labels.npy", mode="w+", dtype=np.int64, shape=(n,))
    labels[:] = rng.integers(0, 1000, size=n)
    images.flush(), labels.flush()
    return folder / "images.npy", folder / "labels.npy"


def write_jpegs(root: Path, n: int) -> None:
    """An image folder (train and val, 10 classes) of `n` random 500x375 JPEGs in all."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(n):
        split, label = ("val" if (i // 10) % 5 == 4 else "train"), i % 10
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(375, 500, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)


def packing_rates(folder: Path, n: int, size: int, workers: int) -> dict[int, float]:
    """Images/s of hybrid.data.packing.pack on one process and on `workers`."""
    write_jpegs(folder / "jpegs", n)
    rates = {}
    for count in sorted({1, workers}):
        start = time.perf_counter()
        pack("imagefolder", folder / "jpegs", folder / f"pack-{count}", size, workers=count)
        rates[count] = n / (time.perf_counter() - start)
    return rates


def epoch_seconds(feeder, index, device: torch.device) -> float:
    """One epoch through `feeder`, each batch forced onto the device and reduced."""
    _sync(device)
    start = time.perf_counter()
    total = torch.zeros((), device=device)
    for images, labels in feeder.batches(index):
        total += images.float().sum() + labels.sum()
    total.item()  # waits for the device
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/data.py", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64, help="image side S (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--prefetch", type=int, default=2, help="StreamFeeder's batches ready ahead")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per mode; the best is reported")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--dir", default=None, help="where to write the packed set (default: a temporary folder)")
    parser.add_argument("--pack-images", type=int, default=600, help="JPEGs to pack (0: skip)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="packing processes")
    args = parser.parse_args(argv)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        images_path, labels_path = write_packed(Path(folder), args.images, args.size)
        images, labels = np.load(images_path, mmap_mode="r"), np.load(labels_path, mmap_mode="r")
        resident = DeviceFeeder(torch.from_numpy(np.array(images)).to(device), torch.from_numpy(np.array(labels)).to(device))
        streamed = StreamFeeder(images, labels, device, prefetch=args.prefetch)
        print(f"device: {device} ({name}, {torch.get_num_threads()} threads); {args.images} images of "
              f"3x{args.size}x{args.size} ({resident.nbytes / 1e9:.2f} GB), batch {args.batch_size}, "
              f"prefetch {args.prefetch}, best of {args.repeats} epochs")
        rates = {}
        for mode, feeder in (("device", resident), ("stream", streamed)):
            best = float("inf")
            for repeat in range(args.repeats):
                index = epoch_batches(args.images, args.batch_size, torch.Generator().manual_seed(repeat))
                best = min(best, epoch_seconds(feeder, index, device))
            rates[mode] = args.images / best
            print(f"{mode:>7}: {rates[mode]:12,.0f} images/s")
        print(f"streamed / device: {rates['stream'] / rates['device']:.2f}")
        if args.pack_images:
            packing = packing_rates(Path(folder), args.pack_images, args.size, args.workers)
            for workers, rate in packing.items():
                print(f"packing 500x375 JPEGs to {args.size} px, {workers} process(es): {rate:8,.0f} images/s")
            if len(packing) > 1:
                print(f"packing {args.workers} processes / 1: {packing[args.workers] / packing[1]:.2f}")


if __name__ == "__main__":
    main()
