"""Forward+backward cost of each downsampling choice, as ratios to the strided convolution.

    python bench/layers.py [--device cpu|cuda] [--map 128,64,32,32] [--step-batch N]
                           [--widths 64,16] [--amp] [--channels-last]

Part 1, one downsampling unit on a ResNet-18-sized map (N, C, H, W): a 3x3 convolution
C -> C followed by the downsampling layer; the baseline is the same convolution with
stride 2. Part 2, one whole training step (forward, backward, SGD update) of each named
variant on 32x32 images, at each width. Every figure is printed with its ratio to the
strided baseline measured in the same run. Timings by torch.utils.benchmark. Part 3, what
one step of the training loop asks of the device, counted (hybrid.train.audit, the same on
any machine): kernel-launching ATen operators and host waits per step, strided and
DiffStride ResNet-18 (`--no-counts` leaves it out).
"""

from __future__ import annotations

import argparse
import contextlib
import platform

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from hybrid.nn import VARIANTS, build_variant
from hybrid.nn.layers import DOWNSAMPLE_KINDS, build_downsample


def _time(fn, device: torch.device, min_run_time: float) -> float:
    if device.type == "cuda":
        fn()
        torch.cuda.synchronize()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _autocast(device: torch.device, amp: bool):
    if amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def layer_units(shape, device, amp, channels_last, min_run_time) -> list[tuple[str, float]]:
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    results = []
    for kind in DOWNSAMPLE_KINDS:
        down = build_downsample(kind, 2).to(device)
        conv = nn.Conv2d(c, c, 3, stride=getattr(down, "conv_stride", 1), padding=1, bias=False).to(device)
        if channels_last:
            conv = conv.to(memory_format=torch.channels_last)
        params = list(conv.parameters()) + list(down.parameters())

        def step():
            for p in params:
                p.grad = None
            with _autocast(device, amp):
                y = down(conv(x))
            y.float().square().mean().backward()

        results.append((kind, _time(step, device, min_run_time)))
    return results


def training_steps(batch, width, device, amp, channels_last, min_run_time) -> list[tuple[str, float]]:
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    results = []
    for name in VARIANTS:
        model = build_variant(name, width=width).to(device)
        inputs = x
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            inputs = x.to(memory_format=torch.channels_last)
        # The strides get their gradient but keep their value (lr 0): a stride that moves
        # can change the maps' shape, and with cudnn.benchmark every new shape is tuned
        # anew (seconds a step on an H100), which would time cuDNN's autotuner, not the step.
        strides = {id(p) for p in model.stride_parameters()}
        optimizer = torch.optim.SGD(
            [{"params": [p for p in model.parameters() if id(p) not in strides]},
             {"params": model.stride_parameters(), "lr": 0.0}], lr=0.01, momentum=0.9)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, amp):
                loss = F.cross_entropy(model(inputs), y)
            loss.backward()
            optimizer.step()
            model.constrain_strides()

        results.append((name, _time(step, device, min_run_time)))
    return results


def _print(title: str, rows: list[tuple[str, float]], baseline: str, per_item: int | None = None) -> None:
    base = dict(rows)[baseline]
    print(f"\n{title}")
    extra = f" {'images/s':>10}" if per_item else ""
    print(f"{'':<18} {'ms':>9} {'x ' + baseline:>11}{extra}")
    for name, seconds in rows:
        rate = f" {per_item / seconds:>10.0f}" if per_item else ""
        print(f"{name:<18} {seconds * 1e3:>9.2f} {seconds / base:>11.2f}{rate}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/layers.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--map", default="128,64,32,32", help="N,C,H,W of the layer benchmark's input")
    parser.add_argument("--step-batch", type=int, default=None, help="default: 128 on CUDA, 16 on CPU")
    parser.add_argument("--widths", default="64,16")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (FFTs stay float32)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--no-counts", action="store_true", help="leave out part 3, the op and wait counts")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    shape = tuple(int(v) for v in args.map.split(","))
    batch = args.step_batch or (128 if device.type == "cuda" else 16)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"amp={args.amp}, channels_last={args.channels_last}"
    )
    rows = layer_units(shape, device, args.amp, args.channels_last, args.min_run_time)
    _print(f"3x3 conv + downsampling by 2 on {shape}, forward+backward", rows, "strided")
    for width in (int(w) for w in args.widths.split(",")):
        rows = training_steps(batch, width, device, args.amp, args.channels_last, args.min_run_time)
        _print(f"training step, width {width}, batch {batch}, 32x32", rows, "strided", per_item=batch)
    if not args.no_counts:
        step_counts(device)


def step_counts(device: torch.device) -> None:
    """Part 3: ATen operators and host waits of one step of the training loop, ResNet-18."""
    import tempfile

    from hybrid.train import audit

    print("\none step of the training loop, ResNet-18, batch 16, crops and flips (hybrid.train.audit)")
    print(f"{'':<18} {'ATen ops':>9} {'x strided':>11} {'host waits':>11}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for downsample in ("strided", "diffstride"):
            run = {"dataset": {"name": "synthetic", "root": tmp, "synthetic_train": 128, "synthetic_test": 32},
                   "model": {"downsample": downsample}, "train": {"batch_size": 16, "device": str(device)},
                   "tracking": {"enabled": False}}
            ops = sum(audit.step_ops(run).values())
            first = first or ops
            print(f"{downsample:<18} {ops:>9} {ops / first:>11.2f} {audit.step_waits(run):>11.2f}")


if __name__ == "__main__":
    main()
