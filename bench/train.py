"""Training throughput of each variant through the real training loop, as ratios to strided.

    python bench/train.py [--width 16] [--images 2048] [--epochs 1] [--device auto]

Each variant trains `--epochs` epochs on the generated data set with `hybrid.train`
(device-resident data, on-device augmentation, the optimizer, evaluation excluded from
the rate). On CUDA it repeats with bf16 autocast and channels_last on and off. Every rate
is printed beside its ratio to the strided baseline of the same setting, same run.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import torch

from hybrid.nn import VARIANTS
from hybrid.train import train_run
from hybrid.train.config import parse_run_config
from hybrid.train.loop import pick_device


def images_per_s(variant: str, args, amp: bool, channels_last: bool, root: Path) -> float:
    config = parse_run_config({
        "dataset": {"name": "synthetic", "root": str(root / "data"), "synthetic_train": args.images, "synthetic_test": 256},
        "model": {**VARIANTS[variant], "width": args.width},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device, "amp": amp,
                  "channels_last": channels_last, "lr": 0.02},
        "tracking": {"enabled": False},
    })
    result = train_run(config, root / f"{variant}-{amp}-{channels_last}", results_dir=root)
    return result["images_per_s"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/train.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = pick_device(args.device)
    settings = [(False, False)] if device.type == "cpu" else [(False, False), (True, False), (False, True), (True, True)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"training throughput, width {args.width}, batch {args.batch_size}, {args.images} images, {name}")
    with tempfile.TemporaryDirectory() as tmp:
        for amp, channels_last in settings:
            rates = {v: images_per_s(v, args, amp, channels_last, Path(tmp)) for v in VARIANTS}
            print(f"\nbf16 autocast={amp}, channels_last={channels_last}")
            print(f"{'variant':<18} {'images/s':>10} {'x strided':>10}")
            for variant, rate in rates.items():
                print(f"{variant:<18} {rate:>10.0f} {rate / rates['strided']:>10.2f}")


if __name__ == "__main__":
    main()
