"""What a study costs before it is launched: runs, images seen, training FLOPs and GPU-hours.

    python -m hybrid.studies CONFIG --cost

Per run: the images the training loop passes forward (epochs x steps x batch: with mixup,
the mixed examples) and one forward pass over the test set per epoch; FLOPs of one image
as `model.cost` counts them (convolutions and dense layers as torch counts them, FFTs
estimated; DiffStride at its initial strides, which training moves), but counted from the
map sizes without building the net (`models.flops`: microseconds, not seconds, per model);
GPU-hours at a throughput in training images per second per GPU, by architecture and by
whether the net has a DiffStride layer (FLOPs alone mislead: on 32x32 maps a strided
ResNet-18 runs at a third of the effective TFLOP/s of a DiffStride one). The throughput is
the workflow config's `cost.images_per_s`; its default, MEASURED_IMAGES_PER_S, was
measured, not assumed. `run_gpu_hours` gives one run's, e.g. for a Slurm time request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

from hybrid.data import split_sizes
from hybrid.nn.flops import count_flops
from hybrid.train import steps_per_epoch  # the training loop's own count

# Training images per second on one NVIDIA H100 80GB (torch 2.11, bf16 autocast, batch 128,
# the last of 2 epochs of 20,000 generated 32x32 images): `python bench/throughput.py`, 2026-11-25.
# "fixed": nets without DiffStride (measured: strided); "diffstride": with it (measured:
# diffstride 3,470 and hybrid 3,726 images/s on ResNet-18; the slower is kept).
MEASURED_ON = "one NVIDIA H100 80GB, bf16, batch 128 (bench/throughput.py, 2026-11-25)"
MEASURED_IMAGES_PER_S = {
    "resnet18": {"fixed": 9800.0, "diffstride": 3470.0},
    "resnet56": {"fixed": 4317.0, "diffstride": 2858.0},
}
EVAL_SPEEDUP = 3.0  # a forward pass alone, against forward + backward + update
MEASURED_SIZE = 32  # the image side the throughputs were measured at


@dataclass(frozen=True)
class RunCost:
    images: int  # images passed forward in training
    eval_images: int  # images passed forward in evaluation
    forward_flops: float  # one image, one forward pass
    train_flops: float  # the whole run, evaluation included
    images_per_s: float  # the training throughput assumed for it

    @property
    def gpu_hours(self) -> float:
        return (self.images + self.eval_images / EVAL_SPEEDUP) / self.images_per_s / 3600


def throughput(model_config, rates: Mapping = MEASURED_IMAGES_PER_S) -> float:
    """Training images/s of one GPU for this model: `rates[arch]["diffstride"]` when any
    site downsamples with DiffStride, else `rates[arch]["fixed"]`."""
    spec = model_config.spec
    kinds = {model_config.site_kind(site) for site in spec.sites}
    family = "diffstride" if "diffstride" in kinds else "fixed"
    try:
        return float(rates[model_config.arch][family])
    except KeyError:
        raise ValueError(f"cost.images_per_s: no {family!r} throughput for {model_config.arch}; "
                         f"give cost.images_per_s.{model_config.arch}.{family} (bench/throughput.py "
                         "measures it)") from None


@lru_cache(maxsize=None)
def forward_flops(model_config, image_size: int) -> float:
    """One image's forward FLOPs at the initial strides, counted from the map sizes without
    building the net (`models.flops.count_flops`, equal to `model.cost`), memoised per model."""
    return count_flops(model_config, (image_size, image_size))["flops"]


def run_cost(config, rates: Mapping = MEASURED_IMAGES_PER_S) -> RunCost:
    """The cost of one resolved RunConfig at the throughputs `rates`."""
    n_train, n_test = split_sizes(config.dataset)
    t = config.train
    images = t.epochs * steps_per_epoch(n_train, t) * t.batch_size
    size = config.dataset.input_size
    flops = forward_flops(config.model, size)
    # Costlier inputs: the measured 32 px rate scaled down by the FLOPs ratio (an estimate:
    # a larger map uses the GPU at least as well, so this errs on the side of more hours);
    # never scaled up, as small maps (the ImageNet stem at 64 px) use it less well.
    measured = forward_flops(replace(config.model, stem="cifar"), MEASURED_SIZE)  # the net as measured
    rate = throughput(config.model, rates) * min(1.0, measured / flops)
    return RunCost(images, t.epochs * n_test, flops, flops * (3 * images + t.epochs * n_test), rate)


def run_gpu_hours(config, rates: Mapping = MEASURED_IMAGES_PER_S) -> float:
    """One resolved RunConfig's estimated GPU-hours at the throughputs `rates` (the
    workflow's `cost_settings(config)[0]`), e.g. for a Slurm time request: memoised per
    model, so a study's hundreds of runs take milliseconds."""
    return run_cost(config, rates).gpu_hours


def cost_settings(config: Mapping) -> tuple[dict, str]:
    """(images/s per arch and family, where they come from) of a workflow config's `cost`
    section: its `images_per_s` over the measured defaults, and its `gpu` label."""
    section = config.get("cost") or {}
    rates = {arch: dict(by_family) for arch, by_family in MEASURED_IMAGES_PER_S.items()}
    for arch, by_family in (section.get("images_per_s") or {}).items():
        rates.setdefault(arch, {}).update(by_family)
    source = section.get("gpu") or (MEASURED_ON if not section.get("images_per_s") else "the config's cost.images_per_s")
    return rates, source


def study_costs(runs, rates: Mapping = MEASURED_IMAGES_PER_S) -> list[dict]:
    """One row per study and a total (each run counted once there): runs, images, FLOPs, GPU-hours."""
    costs = {run.run_id: run_cost(run.config, rates) for run in runs}
    studies = list(dict.fromkeys(s for run in runs for s in run.studies))
    rows = []
    for name in [*studies, None]:
        ids = [r.run_id for r in runs if name is None or name in r.studies]
        rows.append({"study": name or "total (each run once)", "runs": len(ids),
                     "images": sum(costs[i].images for i in ids),
                     "train_flops": sum(costs[i].train_flops for i in ids),
                     "gpu_hours": sum(costs[i].gpu_hours for i in ids)})
    return rows


def print_costs(runs, config: Mapping) -> None:
    rates, source = cost_settings(config)
    rows = study_costs(runs, rates)
    print(f"{'study':<24} {'runs':>6} {'images (M)':>11} {'PFLOP':>10} {'GPU-h':>8}")
    for r in rows:
        print(f"{r['study']:<24} {r['runs']:>6} {r['images'] / 1e6:>11.4g} {r['train_flops'] / 1e15:>10.4g} "
              f"{r['gpu_hours']:>8.4g}")
    table = "; ".join(f"{arch} {', '.join(f'{k} {v:g}' for k, v in fam.items())}" for arch, fam in rates.items())
    print(f"GPU-hours at training images/s per GPU of {table} (measured on {source}; set cost.images_per_s "
          f"for your GPUs) at {MEASURED_SIZE} px, scaled by the FLOPs ratio for larger inputs; FLOPs of "
          "DiffStride at its initial strides, which training raises.")
