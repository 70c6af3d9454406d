"""Steady-state training throughput per architecture and variant, and how far it is from the
device's limit: the figures behind the cost estimate (`cost.images_per_s` and
`cost.aggregate_speedup` in the workflow config, hybrid/studies/cost.py).

    python bench/throughput.py [--cases resnet18:strided,resnet18:diffstride,...]
        [--images 20000] [--epochs 2] [--batch-size 128] [--width W] [--no-amp] [--device auto]
        [--peak-tflops P] [--runs-per-device K]

Each case trains `--epochs` epochs of the generated data set (`--images` training images and
a fifth as many test images, CIFAR's proportion) as the workflow does, `python -m hybrid.train`
in a process of its own, and prints:

- images/s: the last epoch's (evaluation excluded), so that the first epoch's warm-up (cuDNN
  autotuning, first calls) is left out, and its ratio to the first case's;
- GFLOP/img and effective TFLOP/s (3 x forward FLOPs x images/s) at the strides the net ends
  with (result.json's `flops`: DiffStride's learned ones) and at its initial strides (the
  cost estimate's count, hybrid.nn.flops);
- % peak: the end-strides TFLOP/s over the device's dense peak (bf16 under amp, TF32
  without; PEAK_TFLOPS by device name, or --peak-tflops; n/a on a CPU unless given);
- ckpt %: seconds spent writing checkpoints (result.json's `checkpoint_time_s`) over the
  training steps' seconds (`train_time_s`);
- eval s/ep: the last epoch's evaluation seconds (history.csv's `eval_time_s`) and their
  share of its training seconds.
A figure the run does not record prints as n/a.

`--runs-per-device K` then starts K runs of each case at once (seeds 1..K), processes sharing
the device, and prints their aggregate images/s: the sum of their last-epoch rates, its ratio
to the one run's (the cost estimate's `cost.aggregate_speedup` at `resources.runs_per_gpu: K`),
and, as a check, all the images they trained over the wall time from their start to the last
one's end (start-up included: a lower bound; the sum overstates if their last epochs did not
overlap).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from hybrid.nn import VARIANTS
from hybrid.train.loop import pick_device

DEFAULT_CASES = "resnet18:strided,resnet18:diffstride,resnet18:hybrid,resnet56:strided,resnet56:diffstride"
ROOT = Path(__file__).resolve().parents[1]

# Dense (no sparsity) tensor-core peaks, TFLOP/s (bf16, tf32), first match on the device name.
# From NVIDIA's data sheets at boost clock (sustained clocks under load are lower, so the
# share understates how well the kernels use the device): H100 SXM5 989 / 495 (the data
# sheet's 1,979 / 989 are with 2:4 sparsity); H200 the same compute; H100 PCIe 756 / 378;
# A100 (SXM4 and PCIe) 312 / 156; L40S 362 / 183; A10 125 / 62.5; V100 has neither bf16 nor
# TF32: its fp16 tensor peak (125) and fp32 (15.7) stand in; RTX 4090 165 (bf16 with fp32
# accumulate) / 82.6. Other devices: --peak-tflops.
PEAK_TFLOPS = [
    (r"H200", 989.0, 495.0),
    (r"H100.*PCIe", 756.0, 378.0),
    (r"H100", 989.0, 495.0),
    (r"A100", 312.0, 156.0),
    (r"L40S", 362.0, 183.0),
    (r"A10\b", 125.0, 62.5),
    (r"V100", 125.0, 15.7),
    (r"RTX 4090", 165.0, 82.6),
]


def peak_tflops(device_name: str, amp: bool) -> float | None:
    for pattern, bf16, tf32 in PEAK_TFLOPS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return bf16 if amp else tf32
    return None


def run_config(arch: str, variant: str, args, root: Path, seed: int) -> dict:
    model = {**VARIANTS[variant], "arch": arch, **({"width": args.width} if args.width else {})}
    return {
        "dataset": {"name": "synthetic", "root": str(root / "data"), "synthetic_train": args.images,
                    "synthetic_test": max(1, args.images // 5)},
        "model": model,
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                  "amp": not args.no_amp},
        "tracking": {"enabled": False},
        "seed": seed,
    }


def start_run(config: dict, out: Path) -> subprocess.Popen:
    """`python -m hybrid.train` on `config` (out/run.yaml), its log in out/log.txt."""
    out.mkdir(parents=True)
    (out / "run.yaml").write_text(yaml.safe_dump(config))
    with open(out / "log.txt", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "hybrid.train", "--run-config", str(out / "run.yaml"),
                                 "--out", str(out), "--results-dir", str(out)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def train_at_once(configs: list[dict], root: Path) -> tuple[list[dict], float]:
    """Train `configs` at once, a process each: (their result.json with the last history.csv
    row as "last", the wall seconds from the first start to the last end)."""
    outs = [root / f"seed{c['seed']}" for c in configs]
    start = time.perf_counter()
    procs = [start_run(c, out) for c, out in zip(configs, outs)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    results = []
    for code, out in zip(codes, outs):
        if code != 0:
            tail = "".join((out / "log.txt").read_text().splitlines(keepends=True)[-15:])
            raise SystemExit(f"{out.name}: python -m hybrid.train exited {code}:\n{tail}")
        result = json.loads((out / "result.json").read_text())
        with open(out / "history.csv") as f:
            result["last"] = list(csv.DictReader(f))[-1]
        results.append(result)
    return results, wall


def case_row(case: str, result: dict, first: float, peak: float | None) -> str:
    last = result["last"]
    rate = float(last["images_per_s"])
    end, init = result["flops"], result["initial_cost"]["flops"]
    tflops = 3 * end * rate / 1e12
    share = f"{100 * tflops / peak:.1f}" if peak else "n/a"
    ckpt = result.get("checkpoint_time_s")
    ckpt = f"{100 * ckpt / result['train_time_s']:.2f}" if ckpt is not None else "n/a"
    evals = last.get("eval_time_s")
    evals = f"{float(evals):.2f} ({100 * float(evals) / float(last['epoch_time_s']):.0f}%)" if evals else "n/a"
    return (f"{case:<22} {rate:>9.0f} {rate / first:>7.2f} {init / 1e9:>10.3f} {end / 1e9:>10.3f} "
            f"{3 * init * rate / 1e12:>12.3g} {tflops:>12.3g} {share:>6} {ckpt:>6} {evals:>12}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/throughput.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="arch:variant, comma-separated")
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=int, default=None, help="stem filters (default: the arch's)")
    parser.add_argument("--no-amp", action="store_true", help="float32 (TF32 convolutions on CUDA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense peak TFLOP/s (default: PEAK_TFLOPS by name; none on a CPU)")
    parser.add_argument("--runs-per-device", type=int, default=1, metavar="K",
                        help="also train K runs of each case at once and print their aggregate rate")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    peak = args.peak_tflops or (peak_tflops(name, not args.no_amp) if device.type == "cuda" else None)
    print(f"training throughput, last of {args.epochs} epochs, {args.images} images, batch {args.batch_size}, "
          f"amp={not args.no_amp}, {name}, torch {torch.__version__}, peak "
          f"{f'{peak:g} TFLOP/s' if peak else 'n/a'}")
    print(f"{'case':<22} {'images/s':>9} {'x first':>7} {'GFLOP init':>10} {'GFLOP end':>10} {'TFLOP/s init':>12} "
          f"{'TFLOP/s end':>12} {'% peak':>6} {'ckpt %':>6} {'eval s/ep':>12}")
    cases = [tuple(case.split(":")) for case in args.cases.split(",")]
    single, first = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for arch, variant in cases:
            (result,), _ = train_at_once([run_config(arch, variant, args, Path(tmp), 0)], Path(tmp) / f"{arch}-{variant}")
            single[arch, variant] = rate = float(result["last"]["images_per_s"])
            first = first or rate
            print(case_row(f"{arch}:{variant}", result, first, peak), flush=True)
        k = args.runs_per_device
        if k > 1:
            print(f"\n{k} runs at once per device (seeds 1..{k}):")
            print(f"{'case':<22} {'sum images/s':>12} {'x one run':>9} {'images / wall s':>15}")
            for arch, variant in cases:
                configs = [run_config(arch, variant, args, Path(tmp), seed) for seed in range(1, k + 1)]
                results, wall = train_at_once(configs, Path(tmp) / f"{arch}-{variant}-x{k}")
                total = sum(float(r["last"]["images_per_s"]) for r in results)
                seen = sum(r["images_per_s"] * r["train_time_s"] for r in results)
                print(f"{f'{arch}:{variant}':<22} {total:>12.0f} {total / single[arch, variant]:>9.2f} "
                      f"{seen / wall:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
