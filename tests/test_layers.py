"""The downsampling layers, held to the official DiffStride implementation's outputs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hybrid.nn.layers import (
    DOWNSAMPLE_KINDS,
    BlurPool2d,
    ConvStride,
    DiffStride2d,
    SpectralPool2d,
    build_downsample,
    clip_passing_bounds,
)

FIXTURE = np.load(Path(__file__).parent / "fixtures" / "official_pooling.npz")


def _cases(prefix: str) -> list[int]:
    return sorted({int(k[len(prefix):].split("_")[0]) for k in FIXTURE.files if k.startswith(prefix)})


def _case(prefix: str, k: int):
    return lambda name: FIXTURE[f"{prefix}{k}_{name}"]


@pytest.mark.parametrize("k", _cases("diffstride"))
def test_diffstride_matches_official(k):
    case = _case("diffstride", k)
    layer = DiffStride2d(
        tuple(case("init_strides").tolist()),
        smoothness_factor=float(case("smoothness")),
        shared_stride=bool(case("shared_stride")),
    )
    x = torch.tensor(case("x"), requires_grad=True)
    y = layer(x)
    assert y.shape == case("y").shape
    np.testing.assert_allclose(y.detach().numpy(), case("y"), atol=1e-4, rtol=0)

    (y * torch.tensor(case("upstream"))).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), case("grad_x"), atol=1e-4, rtol=0)
    expected = case("grad_strides")
    scale = np.abs(expected).max()
    np.testing.assert_allclose(layer.strides.grad.numpy() / scale, expected / scale, atol=1e-3, rtol=0)
    np.testing.assert_allclose(layer.strides.detach().numpy(), case("strides_after_forward"), rtol=1e-6)


@pytest.mark.parametrize("k", _cases("spectral"))
def test_spectral_pooling_matches_official(k):
    case = _case("spectral", k)
    y = SpectralPool2d(tuple(case("strides").tolist()))(torch.tensor(case("x")))
    assert y.shape == case("y").shape
    np.testing.assert_allclose(y.numpy(), case("y"), atol=1e-4, rtol=0)


def test_clip_passes_gradient_on_the_bounds_only():
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = clip_passing_bounds(x, 0.0, 1.0)
    y.sum().backward()
    assert y.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_stride_below_minimum_is_raised_and_still_learns():
    layer = DiffStride2d(1.0, smoothness_factor=4.0)
    x = torch.randn(2, 3, 16, 20)
    y = layer(x)
    # The official minimum, computed in float32: size / (size - R).
    expected = [np.float32(16) / np.float32(12), np.float32(20) / np.float32(16)]
    np.testing.assert_array_equal(layer.strides.detach().numpy(), np.array(expected, dtype=np.float32))
    y.square().sum().backward()
    assert torch.all(layer.strides.grad != 0)


def test_shared_stride_is_raised_to_the_larger_minimum():
    layer = DiffStride2d(1.0, smoothness_factor=4.0, shared_stride=True)
    assert layer.strides.shape == (1,)
    layer(torch.randn(1, 1, 16, 40))
    assert layer.strides.item() == pytest.approx(16 / 12)


def test_stride_limits_clip_forward_value_and_constrain_projects():
    layer = DiffStride2d(3.0, upper_limit=2.5)
    x = torch.randn(1, 2, 32, 32)
    capped = DiffStride2d(2.5)(x)
    y = layer(x)
    torch.testing.assert_close(y, capped)  # the value used is clipped to the limit
    y.square().sum().backward()
    assert torch.all(layer.strides.grad == 0)  # strictly above the limit: no gradient
    layer.constrain_()
    assert layer.strides.tolist() == [2.5, 2.5]


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (7, 4), (15, 17), (33, 31)])
@pytest.mark.parametrize("stride", [1.0, 1.7, 2.0, 3.0])
def test_diffstride_any_size(size, stride):
    layer = DiffStride2d(stride, smoothness_factor=2.0)
    x = torch.randn(2, 3, *size, requires_grad=True)
    y = layer(x)
    assert y.shape[:2] == (2, 3)
    assert 1 <= y.shape[-2] <= size[0] and 1 <= y.shape[-1] <= size[1] + 1
    y.square().sum().backward()
    assert torch.isfinite(layer.strides.grad).all() and torch.isfinite(x.grad).all()


def test_larger_stride_gives_smaller_map():
    x = torch.randn(1, 1, 32, 32)
    sizes = [DiffStride2d(s)(x).shape[-1] for s in (1.5, 2.0, 3.0, 4.0)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]


@pytest.mark.parametrize("size,stride,expected", [((32, 32), 2, (16, 16)), ((15, 17), 2, (6, 8)), ((3, 3), 4, (2, 2))])
def test_spectral_output_size_rule(size, stride, expected):
    assert SpectralPool2d(stride)(torch.randn(1, 1, *size)).shape[-2:] == expected


def test_spectral_pooling_keeps_low_frequencies_exactly():
    # A pure low-frequency cosine survives 2x spectral pooling as the same cosine on the
    # coarser grid, scaled by the area ratio 4: as in the official code, the forward
    # transform is unnormalised and the inverse divides by the smaller output size.
    n = torch.arange(32, dtype=torch.float32)
    image = torch.cos(2 * torch.pi * 3 * n / 32)[None, :].expand(32, 32)[None, None]
    m = torch.arange(16, dtype=torch.float32)
    expected = torch.cos(2 * torch.pi * 3 * m / 16)[None, :].expand(16, 16)
    torch.testing.assert_close(SpectralPool2d(2)(image)[0, 0], 4 * expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("layer", [DiffStride2d(2.0), SpectralPool2d(2.0)])
def test_fft_layers_run_in_float32_under_autocast(layer):
    x = torch.randn(2, 4, 16, 16)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    # Only the input and output roundings to bf16 differ from the float32 result.
    torch.testing.assert_close(y.float(), reference, atol=0.05, rtol=0.02)


def test_registry_builds_every_kind():
    x = torch.randn(2, 3, 32, 32)
    for kind in DOWNSAMPLE_KINDS:
        layer = build_downsample(kind, 2)
        if kind == "strided":
            assert isinstance(layer, ConvStride) and layer.conv_stride == (2, 2)
        else:
            assert layer(x).shape[-1] < 32, kind


def test_registry_rejects_unknown_kind_listing_known_ones():
    with pytest.raises(ValueError, match="unknown downsample kind 'median'.*strided.*diffstride"):
        build_downsample("median")


def test_registry_rejects_bad_options_and_strides():
    with pytest.raises(ValueError, match="bad options.*'max'"):
        build_downsample("max", 2, smoothness_factor=3)
    with pytest.raises(ValueError, match="integer strides"):
        build_downsample("blur", 1.5)
    with pytest.raises(ValueError, match=">= 1"):
        build_downsample("spectral", 0.5)
    with pytest.raises(ValueError, match="smoothness_factor"):
        DiffStride2d(2.0, smoothness_factor=0.0)
    with pytest.raises(ValueError, match="shared_stride"):
        DiffStride2d((2.0, 3.0), shared_stride=True)


@pytest.mark.parametrize("kind", ["max", "avg", "blur"])
def test_spatial_pools_take_ceil_size_on_odd_maps(kind):
    assert build_downsample(kind, 2)(torch.randn(1, 2, 15, 17)).shape[-2:] == (8, 9)
    assert isinstance(build_downsample(kind, 1), torch.nn.Identity)


def test_blurpool_preserves_constants_and_removes_nyquist():
    layer = BlurPool2d(2, filter_size=4)
    torch.testing.assert_close(layer(torch.full((1, 3, 8, 8), 2.0)), torch.full((1, 3, 4, 4), 2.0))
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    out = layer(checker.float()[None, None])
    # Plain subsampling would return all zeros or all ones; the blur returns the mean.
    assert out[0, 0, 1:-1, 1:-1].sub(0.5).abs().max() < 1e-6
