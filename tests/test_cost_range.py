"""The cost estimate's DiffStride range (FLOPs and GPU-hours at strides 3 and 1.5) and its
packing arithmetic (`resources.runs_per_gpu`, `cost.aggregate_speedup`)."""

import copy
from pathlib import Path

import pytest
import yaml

from hybrid.nn import VARIANTS, ModelConfig
from hybrid.studies import resolve_runs
from hybrid.studies.cost import (
    at_stride,
    forward_flops,
    print_costs,
    run_cost,
    stride_range_flops,
    study_costs,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


@pytest.mark.parametrize("variant", ["diffstride", "hybrid"])
def test_the_paper_resnet18_flops_at_strides_3_and_1_5(variant):
    """Forward GFLOP per image on 32x32: about 8.45 at the initial strides (2 at layer2-4),
    5.47 with them at 3 and 17.86 at 1.5 (training: 3x, 16.4 and 53.6), within 2%."""
    model = ModelConfig(**VARIANTS[variant])
    low, high = stride_range_flops(model, 32)
    assert low < forward_flops(model, 32) < high
    assert low / 1e9 == pytest.approx(5.5, rel=0.02) and high / 1e9 == pytest.approx(17.9, rel=0.02)
    assert forward_flops(model, 32) / 1e9 == pytest.approx(8.45, rel=0.01)


def test_only_diffstride_strides_above_1_move():
    layer4 = ModelConfig(**VARIANTS["hybrid-layer4"])  # DiffStride at stem (1), layer2, layer3; spectral at layer4
    assert at_stride(layer4, 3.0).init_stride == (1.0, 1.0, 3.0, 3.0, 2.0)
    pair = ModelConfig(downsample="diffstride", init_stride=[1, 1, [2, 3], 2, 2])
    assert at_stride(pair, 1.5).init_stride == (1.0, 1.0, 1.5, 1.5, 1.5)
    strided = ModelConfig()
    assert stride_range_flops(strided, 32) == (forward_flops(strided, 32),) * 2


def test_gpu_hours_range_scales_diffstride_runs_by_their_flops():
    runs = resolve_runs(DEMO)
    costs = [(r.variant, run_cost(r.config)) for r in runs]
    # the pooling study's DiffStride at every site (the others', at layer4 only, keep its 4x4 map at any stride)
    ds = max((c for v, c in costs if v == "diffstride"), key=lambda c: c.forward_flops)
    fixed = next(c for v, c in costs if v == "strided")
    assert ds.gpu_hours_range == pytest.approx(tuple(ds.gpu_hours * f / ds.forward_flops for f in ds.range_flops))
    assert ds.gpu_hours_range[0] < ds.gpu_hours < ds.gpu_hours_range[1]
    assert fixed.gpu_hours_range == (fixed.gpu_hours, fixed.gpu_hours)
    rows = {r["study"]: r for r in study_costs(runs)}
    total = rows["total (each run once)"]
    assert total["gpu_hours_range"][0] < total["gpu_hours"] < total["gpu_hours_range"][1]
    assert total["diffstride_flops"][1] < total["diffstride_flops"][0] < total["diffstride_flops"][2]
    halved = {r["study"]: r for r in study_costs(runs, speedup=2.0)}["total (each run once)"]
    assert halved["gpu_hours"] == pytest.approx(total["gpu_hours"] / 2)
    assert halved["gpu_hours_range"] == pytest.approx(tuple(h / 2 for h in total["gpu_hours_range"]))


def printed(config, capsys) -> tuple[float, str]:
    print_costs(resolve_runs(config), config)
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    return float(total.split()[-1]), out


def test_printout_packing_and_the_rates_age(capsys):
    one, out = printed(DEMO, capsys)
    assert "GPU-h @3-@1.5" in out and "DiffStride GFLOP/img init/3/1.5" in out
    assert "time as proportional to its FLOPs" in out
    assert "measured before the loop's host syncs were removed" in out and "set cost.images_per_s" in out
    assert "runs_per_gpu" not in out

    packed = copy.deepcopy(DEMO)
    packed["resources"]["runs_per_gpu"] = 3
    hours, out = printed(packed, capsys)  # not measured: no speed-up assumed
    assert hours == one
    assert ("resources.runs_per_gpu 3: packing's gain was not measured" in out
            and "--runs-per-device 3" in out and "no speed-up assumed" in out)

    packed["cost"] = {"aggregate_speedup": 1.6, "images_per_s": {"resnet18": {"fixed": 9800.0}}}
    hours, out = printed(packed, capsys)
    assert hours == pytest.approx(one / 1.6, rel=1e-3)
    assert "divided by the measured aggregate speed-up of 3 runs on one GPU, cost.aggregate_speedup 1.6" in out
    assert "measured before" not in out  # the config's own rates

    packed["resources"]["runs_per_gpu"] = 1  # a speed-up without packing changes nothing
    assert printed(packed, capsys)[0] == one
