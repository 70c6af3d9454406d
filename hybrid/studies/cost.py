"""What a study costs before it is launched: runs, images seen, training FLOPs and GPU-hours.

    python -m hybrid.studies CONFIG --cost

Per run: the images the training loop passes forward (epochs x steps x batch: with mixup,
the mixed examples) and one forward pass over the test set per epoch; FLOPs of one image
as `model.cost` counts them (convolutions and dense layers as torch counts them, FFTs
estimated), but counted from the map sizes without building the net (`models.flops`:
microseconds, not seconds, per model); GPU-hours at a throughput in training images per
second per GPU, by architecture and by whether the net has a DiffStride layer (FLOPs alone
mislead: on 32x32 maps a strided ResNet-18 runs at a third of the effective TFLOP/s of a
DiffStride one). The throughput is the workflow config's `cost.images_per_s`; its default,
MEASURED_IMAGES_PER_S, was measured, not assumed. `run_gpu_hours` gives one run's, e.g. for
a Slurm time request.

DiffStride's FLOPs move with the strides it learns, so a DiffStride net's cost is a range:
its FLOPs and GPU-hours at its initial strides and with every DiffStride stride that starts
above 1 set to 3 and to 1.5 (RANGE_STRIDES; those at 1, the CIFAR stem's, kept), its
GPU-hours taken as proportional to its FLOPs (an assumption: the measured rate scaled by
the FLOPs ratio). Packing, `resources.runs_per_gpu: k` runs sharing one GPU, divides the
GPU-hours by the measured aggregate speed-up `cost.aggregate_speedup`, and by nothing where
that was not measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache

from hybrid.data import split_sizes
from hybrid.nn import ModelConfig
from hybrid.nn.flops import count_flops
from hybrid.train import steps_per_epoch  # the training loop's own count

# Training images per second on one NVIDIA H100 80GB (torch 2.11, bf16 autocast, batch 128,
# the last of 2 epochs of 20,000 generated 32x32 images): `python bench/throughput.py`, 2026-11-25.
# "fixed": nets without DiffStride (measured: strided); "diffstride": with it (measured:
# diffstride 3,470 and hybrid 3,726 images/s on ResNet-18; the slower is kept).
# Measured before the loop's host synchronisations were removed and DiffStride was made
# compile-friendly (no GPU was at hand to measure again): MEASURED_BEFORE says so in the printout.
MEASURED_ON = "one NVIDIA H100 80GB, bf16, batch 128 (bench/throughput.py, 2026-11-25)"
MEASURED_BEFORE = "the loop's host syncs were removed and DiffStride made compile-friendly"
MEASURED_IMAGES_PER_S = {
    "resnet18": {"fixed": 9800.0, "diffstride": 3470.0},
    "resnet56": {"fixed": 4317.0, "diffstride": 2858.0},
}
EVAL_SPEEDUP = 3.0  # a forward pass alone, against forward + backward + update
MEASURED_SIZE = 32  # the image side the throughputs were measured at
RANGE_STRIDES = (3.0, 1.5)  # DiffStride's strides at the cost range's low and high ends (assumed)


@dataclass(frozen=True)
class RunCost:
    images: int  # images passed forward in training
    eval_images: int  # images passed forward in evaluation
    forward_flops: float  # one image, one forward pass
    train_flops: float  # the whole run, evaluation included
    images_per_s: float  # the training throughput assumed for it
    model: ModelConfig  # the net, and the image side it trains at
    image_size: int

    @property
    def gpu_hours(self) -> float:
        return (self.images + self.eval_images / EVAL_SPEEDUP) / self.images_per_s / 3600

    @property
    def diffstride(self) -> bool:
        return has_diffstride(self.model)

    @property
    def range_flops(self) -> tuple[float, ...]:
        """One forward pass at RANGE_STRIDES (counted on first use: `run_gpu_hours` needs none)."""
        return stride_range_flops(self.model, self.image_size)

    @property
    def gpu_hours_range(self) -> tuple[float, ...]:
        """GPU-hours at RANGE_STRIDES: time proportional to FLOPs."""
        return tuple(self.gpu_hours * f / self.forward_flops for f in self.range_flops)


def has_diffstride(model_config) -> bool:
    return any(model_config.site_kind(site) == "diffstride" for site in model_config.spec.sites)


def throughput(model_config, rates: Mapping = MEASURED_IMAGES_PER_S) -> float:
    """Training images/s of one GPU for this model: `rates[arch]["diffstride"]` when any
    site downsamples with DiffStride, else `rates[arch]["fixed"]`."""
    family = "diffstride" if has_diffstride(model_config) else "fixed"
    try:
        return float(rates[model_config.arch][family])
    except KeyError:
        raise ValueError(f"cost.images_per_s: no {family!r} throughput for {model_config.arch}; "
                         f"give cost.images_per_s.{model_config.arch}.{family} (bench/throughput.py "
                         "measures it)") from None


@cache
def forward_flops(model_config, image_size: int) -> float:
    """One image's forward FLOPs at the initial strides, counted from the map sizes without
    building the net (`models.flops.count_flops`, equal to `model.cost`), memoised per model."""
    return count_flops(model_config, (image_size, image_size))["flops"]


def at_stride(model_config, stride: float):
    """The net with every DiffStride stride that starts above 1 set to `stride` (both axes);
    the other sites' strides, and DiffStride's at 1 (the CIFAR stem's), as they are."""
    spec, kind = model_config.spec, model_config.site_kind
    strides = tuple(stride if stage in spec.sites and kind(stage) == "diffstride" and s != 1.0 else s
                    for stage, s in zip(spec.stages, model_config.init_stride))
    return replace(model_config, init_stride=strides)


def stride_range_flops(model_config, image_size: int) -> tuple[float, ...]:
    """One image's forward FLOPs at each of RANGE_STRIDES (the initial strides' twice
    for a net without DiffStride)."""
    if not has_diffstride(model_config):
        return (forward_flops(model_config, image_size),) * len(RANGE_STRIDES)
    return tuple(forward_flops(at_stride(model_config, s), image_size) for s in RANGE_STRIDES)


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
    return RunCost(images, t.epochs * n_test, flops, flops * (3 * images + t.epochs * n_test), rate,
                   config.model, size)


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


def packing(config: Mapping) -> tuple[int, float | None]:
    """(k, speed-up): `resources.runs_per_gpu` and `cost.aggregate_speedup`, the measured
    aggregate throughput of k runs sharing one GPU over one run's (None: not measured)."""
    k = int((config.get("resources") or {}).get("runs_per_gpu", 1))
    return k, (config.get("cost") or {}).get("aggregate_speedup")


def mean_diffstride_flops(costs: list[RunCost]) -> tuple[float, ...] | None:
    """The forward FLOPs per image at the initial strides and at RANGE_STRIDES, averaged over
    the DiffStride runs `costs` by the images they train (None without any)."""
    seen = sum(c.images for c in costs)
    if not seen:
        return None
    columns = zip(*[(c.forward_flops, *c.range_flops) for c in costs])
    return tuple(sum(c.images * f for c, f in zip(costs, column)) / seen for column in columns)


def study_costs(runs, rates: Mapping = MEASURED_IMAGES_PER_S, speedup: float = 1.0) -> list[dict]:
    """One row per study and a total (each run counted once there): runs, images, FLOPs,
    GPU-hours (divided by `speedup`, packing's measured gain) at the initial strides and
    at RANGE_STRIDES, and the mean forward FLOPs per image of its DiffStride runs at each
    (None without any)."""
    costs = {run.run_id: run_cost(run.config, rates) for run in runs}
    studies = list(dict.fromkeys(s for run in runs for s in run.studies))
    rows = []
    for name in [*studies, None]:
        ids = [r.run_id for r in runs if name is None or name in r.studies]
        ranged = zip(*[costs[i].gpu_hours_range for i in ids])
        rows.append({"study": name or "total (each run once)", "runs": len(ids),
                     "images": sum(costs[i].images for i in ids),
                     "train_flops": sum(costs[i].train_flops for i in ids),
                     "gpu_hours": sum(costs[i].gpu_hours for i in ids) / speedup,
                     "gpu_hours_range": tuple(sum(hours) / speedup for hours in ranged),
                     "diffstride_flops": mean_diffstride_flops([costs[i] for i in ids if costs[i].diffstride])})
    return rows


def print_costs(runs, config: Mapping) -> None:
    rates, source = cost_settings(config)
    k, speedup = packing(config)
    rows = study_costs(runs, rates, speedup if k > 1 and speedup else 1.0)
    lo, hi = (f"{s:g}" for s in RANGE_STRIDES)
    print(f"{'study':<26} {'runs':>5} {'images (M)':>10} {'PFLOP':>9} {f'DiffStride GFLOP/img init/{lo}/{hi}':>32} "
          f"{f'GPU-h @{lo}-@{hi}':>15} {'GPU-h':>7}")
    for r in rows:
        ds = "/".join(f"{f / 1e9:.3g}" for f in r["diffstride_flops"]) if r["diffstride_flops"] else "-"
        span = "{:.4g}-{:.4g}".format(*r["gpu_hours_range"])
        print(f"{r['study']:<26} {r['runs']:>5} {r['images'] / 1e6:>10.4g} {r['train_flops'] / 1e15:>9.4g} {ds:>32} "
              f"{span:>15} {r['gpu_hours']:>7.4g}")
    table = "; ".join(f"{arch} {', '.join(f'{family} {v:g}' for family, v in fam.items())}" for arch, fam in rates.items())
    print(f"GPU-hours at training images/s per GPU of {table} (measured on {source}; set cost.images_per_s "
          f"for your GPUs) at {MEASURED_SIZE} px, scaled by the FLOPs ratio for larger inputs; PFLOP and GPU-h "
          "at the initial strides.")
    if not (config.get("cost") or {}).get("images_per_s"):
        print(f"The rates were measured before {MEASURED_BEFORE}; re-measure with bench/throughput.py on your GPU "
              "and set cost.images_per_s.")
    print(f"DiffStride moves its strides in training: GPU-h @{lo}-@{hi} and GFLOP/img (forward, a mean over the "
          f"study's DiffStride runs) with every DiffStride stride that starts above 1 set to {lo} and to {hi}, "
          "taking a DiffStride net's time as proportional to its FLOPs (an assumption, not a measurement).")
    if k > 1 and speedup:
        print(f"resources.runs_per_gpu {k}: GPU-hours divided by the measured aggregate speed-up of {k} runs on "
              f"one GPU, cost.aggregate_speedup {speedup:g}.")
    elif k > 1:
        print(f"resources.runs_per_gpu {k}: packing's gain was not measured (set cost.aggregate_speedup from "
              f"bench/throughput.py --runs-per-device {k}); GPU-hours as at one run per GPU, no speed-up assumed.")
