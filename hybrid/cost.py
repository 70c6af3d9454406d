"""What a study costs before it is launched: runs, images seen, training FLOPs and GPU-hours.

    python -m hybrid.studies CONFIG --cost [--tflops 40]

Per run: forward FLOPs of one image from `model.cost` (convolutions and dense layers
counted by torch, FFTs estimated; DiffStride at its initial strides, which training
moves), times 3 for the forward and backward passes, times the images the training loop
passes forward (epochs x steps x batch: with mixup, the mixed examples), plus one forward
pass over the test set per epoch. GPU-hours divide that by an effective throughput, an
assumption stated with the number (`--tflops`): nothing here is a measurement of a GPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hybrid.data import split_sizes
from hybrid.models import resnet
from hybrid.train import steps_per_epoch  # the training loop's own count

DEFAULT_TFLOPS = 40.0  # assumed effective TFLOP/s of one GPU on these small maps; not measured
IMAGE_SIZES = {"cifar10": 32, "cifar100": 32, "synthetic": 32}


@dataclass(frozen=True)
class RunCost:
    images: int  # images passed forward in training
    forward_flops: float  # one image, one forward pass
    train_flops: float  # the whole run, evaluation included

    def gpu_hours(self, tflops: float = DEFAULT_TFLOPS) -> float:
        return self.train_flops / (tflops * 1e12) / 3600


_FORWARD: dict[str, float] = {}


def forward_flops(model_config, image_size: int) -> float:
    """One image's forward FLOPs at the initial strides (memoised per model)."""
    key = json.dumps([model_config.to_dict(), image_size], sort_keys=True)
    if key not in _FORWARD:
        _FORWARD[key] = resnet(model_config).cost((image_size, image_size))["flops"]
    return _FORWARD[key]


def run_cost(config) -> RunCost:
    """The cost of one resolved RunConfig."""
    n_train, n_test = split_sizes(config.dataset)
    t = config.train
    images = t.epochs * steps_per_epoch(n_train, t) * t.batch_size
    flops = forward_flops(config.model, IMAGE_SIZES.get(config.dataset.name, 32))
    return RunCost(images, flops, flops * (3 * images + t.epochs * n_test))


def study_costs(runs) -> list[dict]:
    """One row per study and a total (each run counted once there): runs, images, FLOPs."""
    costs = {run.run_id: run_cost(run.config) for run in runs}
    studies = list(dict.fromkeys(s for run in runs for s in run.studies))
    rows = []
    for name in [*studies, None]:
        ids = [r.run_id for r in runs if name is None or name in r.studies]
        rows.append({"study": name or "total (each run once)", "runs": len(ids),
                     "images": sum(costs[i].images for i in ids),
                     "train_flops": sum(costs[i].train_flops for i in ids)})
    return rows


def print_costs(runs, tflops: float = DEFAULT_TFLOPS) -> None:
    rows = study_costs(runs)
    print(f"{'study':<24} {'runs':>6} {'images (M)':>11} {'PFLOP':>10} {'GPU-h':>8}")
    for r in rows:
        hours = r["train_flops"] / (tflops * 1e12) / 3600
        print(f"{r['study']:<24} {r['runs']:>6} {r['images'] / 1e6:>11.4g} {r['train_flops'] / 1e15:>10.4g} {hours:>8.4g}")
    print(f"GPU-hours at an assumed {tflops:g} effective TFLOP/s per GPU (--tflops), not a measurement; "
          "DiffStride's FLOPs at its initial strides.")
