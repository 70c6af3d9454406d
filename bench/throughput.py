"""Steady-state training throughput per architecture and variant: the figures behind the cost
estimate's default (`cost.images_per_s` in the workflow config, hybrid/studies/cost.py).

    python bench/throughput.py [--cases resnet18:strided,resnet18:diffstride,...]
        [--images 20000] [--epochs 2] [--batch-size 128] [--no-amp] [--device auto]

Each case trains `--epochs` epochs of the generated data set through `hybrid.train.train_run`
(the real loop: device-resident data, augmentation, optimizer, evaluation excluded from the
rate) and reports the last epoch's images/s, so that the first epoch's warm-up (cuDNN
autotuning, first calls) is left out, with its ratio to the first case's and the effective
TFLOP/s it implies under hybrid.studies.cost's FLOP count (3 x forward FLOPs at the initial strides).
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
from pathlib import Path

import torch

from hybrid.nn import VARIANTS
from hybrid.studies.cost import forward_flops
from hybrid.train import train_run
from hybrid.train.config import parse_run_config
from hybrid.train.loop import pick_device

DEFAULT_CASES = "resnet18:strided,resnet18:diffstride,resnet18:hybrid,resnet56:strided,resnet56:diffstride"


def last_epoch_rate(arch: str, variant: str, args, root: Path) -> tuple[float, float]:
    """(images/s of the last epoch, forward FLOPs of one image) of one case."""
    config = parse_run_config({
        "dataset": {"name": "synthetic", "root": str(root / "data"), "synthetic_train": args.images,
                    "synthetic_test": 1000},
        "model": {**VARIANTS[variant], "arch": arch},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                  "amp": not args.no_amp},
        "tracking": {"enabled": False},
    })
    out = root / f"{arch}-{variant}"
    train_run(config, out, results_dir=root)
    with open(out / "history.csv") as f:
        rate = float(list(csv.DictReader(f))[-1]["images_per_s"])
    return rate, forward_flops(config.model, 32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/throughput.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="arch:variant, comma-separated")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-amp", action="store_true", help="float32 (TF32 convolutions on CUDA)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"training throughput, last of {args.epochs} epochs, {args.images} images, batch {args.batch_size}, "
          f"amp={not args.no_amp}, {name}, torch {torch.__version__}")
    print(f"{'case':<22} {'images/s':>9} {'x first':>8} {'GFLOP/img':>10} {'TFLOP/s':>8}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            arch, variant = case.split(":")
            rate, flops = last_epoch_rate(arch, variant, args, Path(tmp))
            first = first or rate
            print(f"{case:<22} {rate:>9.0f} {rate / first:>8.2f} {flops / 1e9:>10.3f} {3 * flops * rate / 1e12:>8.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
