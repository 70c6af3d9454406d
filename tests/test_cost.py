"""The cost estimate's FLOPs, counted from the map sizes (`models.flops`), against a real
forward pass (`ResNet.cost`), and the per-run GPU-hours the workflow asks for."""

import time
from pathlib import Path

import pytest
import torch
import yaml

from hybrid.nn import VARIANTS, ModelConfig, resnet
from hybrid.nn.flops import count_flops
from hybrid.studies import resolve_runs
from hybrid.studies.cost import cost_settings, forward_flops, run_cost, run_gpu_hours

ROOT = Path(__file__).resolve().parents[1]

# Small widths, so that the real forward passes take milliseconds; every kind of site layer,
# head and stem the configs use, and the sizes where the DiffStride crop is delicate.
NETS = {
    **{name: ({**VARIANTS[name], "width": 8}, 32) for name in (
        "strided", "max", "blur", "spectral", "diffstride", "hybrid", "hybrid-after-norm", "scale-control",
        "hybrid-layer4")},
    "postact-diffstride": ({"block": "postact", "downsample": "diffstride", "width": 8}, 32),
    "postact-hybrid": ({"block": "postact", "downsample": "diffstride", "head_pool": "spectral",
                        "head_pool_at": "after_norm", "width": 8}, 32),
    "resnet56-strided": ({"arch": "resnet56", "width": 4}, 32),
    "resnet56-diffstride": ({"arch": "resnet56", "downsample": "diffstride", "width": 4}, 32),  # layer1 at stride 1
    "resnet56-hybrid": ({"arch": "resnet56", "downsample": "diffstride", "head_pool": "spectral", "width": 4}, 32),
    "imagenet-strided-64px": ({"stem": "imagenet", "width": 8}, 64),
    "imagenet-diffstride-64px": ({"stem": "imagenet", "downsample": "diffstride", "width": 8}, 64),
    "imagenet-hybrid-64px": ({"stem": "imagenet", "downsample": "diffstride", "head_pool": "spectral",
                              "width": 8, "num_classes": 200}, 64),
    "imagenet-spectral-57px": ({"stem": "imagenet", "downsample": "spectral", "width": 8}, 57),
    **{f"smoothness-{r:g}": ({"downsample": "diffstride", "smoothness": r, "width": 8}, 32) for r in (1.0, 8.0, 16.0)},
    "poor-strides": ({"downsample": "diffstride", "init_stride": [1, 1, 3, 2, 3], "width": 8}, 32),
    "poor-strides-strided": ({"init_stride": [1, 1, 3, 2, 3], "width": 8}, 32),
    "stride-pairs": ({"downsample": "diffstride", "init_stride": [[1, 2], 1, [2, 3], 2, 2], "width": 8}, 33),
    "stride-pairs-strided": ({"init_stride": [2, 1, [2, 3], 2, 2], "width": 8}, 33),
    "shared-stride-layer4": ({"downsample": "diffstride", "shared_stride": True, "downsample_at": ["layer4"],
                              "width": 8}, 31),
    "blur-odd": ({"downsample": "blur", "blur_filter_size": 3, "width": 8}, 31),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny forward passes: a thread pool only waits on a busy machine (seconds, not ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list(NETS))
def test_counted_flops_equal_a_real_forward_pass(name):
    options, size = NETS[name]
    config = ModelConfig(**options)
    real = resnet(config).cost((size, size))
    counted = count_flops(config, (size, size))
    # exact, the FFT estimate included: the same terms, summed in the same order
    assert counted == {k: real[k] for k in ("flops", "conv_flops", "fft_flops", "final_map")}
    assert (counted["fft_flops"] > 0) == any(k in str(options) for k in ("diffstride", "spectral"))


def test_run_hours_for_the_paper_study_take_milliseconds():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    runs = resolve_runs(config)
    rates, _ = cost_settings(config)
    forward_flops.cache_clear()
    start = time.perf_counter()
    hours = [run_gpu_hours(run.config, rates) for run in runs]
    elapsed = time.perf_counter() - start
    assert len(hours) == 736 and elapsed < 3.0, f"{len(hours)} runs took {elapsed:.2f} s"
    assert forward_flops.cache_info().misses < 100  # once per distinct network and input size
    assert all(h > 0 for h in hours)
    assert hours[0] == run_cost(runs[0].config, rates).gpu_hours


def test_the_last_map_shows_what_the_smoothness_factor_does_to_the_net():
    """At R = 8 or 16 on 32 px DiffStride does not downsample at initialisation: its last
    map is the input's size, where a strided net's is 4 px (the smoothness table shows it)."""
    maps = {r: count_flops(ModelConfig(downsample="diffstride", smoothness=r))["final_map"] for r in (1, 4, 16)}
    assert count_flops(ModelConfig(downsample="strided"))["final_map"] == [4, 4]
    assert maps[1][0] < maps[4][0] < maps[16][0] and maps[16] == [32, 32]
