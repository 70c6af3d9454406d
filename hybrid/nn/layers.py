"""Downsampling layers: DiffStride, spectral pooling and the spatial baselines.

`DiffStride2d` and `SpectralPool2d` follow the official TensorFlow implementation
(google-research/diffstride, `pooling.DiffStride` and `pooling.FixedSpectralPooling`,
channels_first) in output shapes, values and gradients; `tests/test_layers.py` holds them
to reference outputs of that code. Every layer here downsamples the output of a
stride-1 convolution; `ConvStride` instead asks the convolution before it to stride.

`build_downsample(kind, stride, **options)` picks a layer by name, so that a config string
selects it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Stride = Union[float, Sequence[float]]


def _pair(stride: Stride, name: str = "stride") -> tuple[float, float]:
    if isinstance(stride, (int, float)):
        pair = (float(stride), float(stride))
    else:
        pair = tuple(float(s) for s in stride)
        if len(pair) != 2:
            raise ValueError(f"{name} must be a number or a (vertical, horizontal) pair, got {stride!r}")
    if min(pair) < 1.0:
        raise ValueError(f"{name} must be >= 1 on both axes, got {stride!r}")
    return pair  # type: ignore[return-value]


def _integer_pair(stride: Stride, layer: str) -> tuple[int, int]:
    pair = _pair(stride)
    if not all(s.is_integer() for s in pair):
        raise ValueError(
            f"{layer} needs integer strides, got {stride!r}; use 'spectral' or 'diffstride' "
            "for fractional strides"
        )
    return int(pair[0]), int(pair[1])


def clip_passing_bounds(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """`x.clamp(low, high)` whose gradient also flows where `x` sits exactly on a bound.

    This is TensorFlow's `clip_by_value` gradient (zero only strictly outside the range);
    `torch.clamp` gives zero on the bounds too. Integer stride initialisations put the
    DiffStride mask exactly on its clipping points, so the difference is a different
    stride gradient, not a rounding error.
    """
    inside = (x >= low) & (x <= high)
    return torch.where(inside, x, x.detach().clamp(low, high))


def _float32(x: float) -> np.float32:
    return np.float32(x)


@lru_cache(maxsize=256)
def _vertical_positions(height: int) -> np.ndarray:
    """The official code's distance-to-DC of each row of an rfft2 output (after fftshift).

    Rows are numbered as the official layer numbers them, off-by-one on the negative
    frequencies included: parity means the same rows kept and the same mask values.
    """
    half = np.arange(height // 2 + height % 2, dtype=np.float32)
    positions = np.concatenate([half[height % 2:][::-1], half])
    return np.fft.fftshift(positions)


@lru_cache(maxsize=256)
def _horizontal_positions(width: int) -> np.ndarray:
    return np.arange(width // 2 + 1, dtype=np.float32)


@lru_cache(maxsize=1024)
def _kept_span(positions_key: tuple[str, int], threshold: float, smoothness: float) -> tuple[int, int]:
    """How many leading and trailing coefficients the soft mask keeps (mask > 0).

    Evaluated in float32, in the official order of operations, so that a coefficient
    whose mask is exactly zero is dropped exactly when the official layer drops it.
    """
    axis, size = positions_key
    positions = _vertical_positions(size) if axis == "v" else _horizontal_positions(size)
    r = _float32(smoothness)
    ramp = (_float32(1.0) / r) * (r + _float32(threshold) - positions)
    kept = ramp > 0
    lead = int(np.argmin(kept)) if not kept.all() else len(kept)
    trail = 0 if lead == len(kept) else int(np.argmin(kept[::-1]))
    if int(kept.sum()) != lead + trail:  # positions rise then fall, so this cannot happen
        raise AssertionError(f"non-contiguous DiffStride crop on axis {axis} of size {size}")
    return lead, trail


class DiffStride2d(nn.Module):
    """Downsampling with learnable strides in the Fourier domain (Riad et al., ICLR 2022).

    Multiplies the input's spectrum by a separable low-pass window whose cut-off is
    size/stride and whose ramp is `smoothness_factor` coefficients wide, crops what the
    window zeroes (`cropping=True`) and transforms back. `strides` is a parameter
    of shape (2,) (vertical, horizontal), or (1,) with `shared_stride`.

    As in the official layer, each forward pass first raises a stride below
    size / (size - R) to that minimum (the parameter itself is updated; gradients keep
    flowing), and the value used is clipped to [lower_limit, upper_limit]. Call
    `constrain_()` after an optimizer step to project the parameter onto those limits,
    as Keras does with the official layer's constraint.
    """

    def __init__(
        self,
        stride: Stride = 2.0,
        smoothness_factor: float = 4.0,
        shared_stride: bool = False,
        lower_limit: float | None = None,
        upper_limit: float | None = None,
        cropping: bool = True,
    ):
        super().__init__()
        init = _pair(stride)
        if shared_stride and init[0] != init[1]:
            raise ValueError(f"shared_stride needs equal vertical and horizontal strides, got {stride!r}")
        if not smoothness_factor > 0:
            raise ValueError(f"smoothness_factor must be > 0, got {smoothness_factor}")
        self.smoothness_factor = float(smoothness_factor)
        self.shared_stride = shared_stride
        self.lower_limit = 1.0 if lower_limit is None else float(lower_limit)
        self.upper_limit = math.inf if upper_limit is None else float(upper_limit)
        if self.lower_limit > self.upper_limit:
            raise ValueError(f"lower_limit {lower_limit} is above upper_limit {upper_limit}")
        self.cropping = cropping
        values = init[:1] if shared_stride else init
        self.strides = nn.Parameter(torch.tensor(values, dtype=torch.float32))
        self._positions: dict[tuple, torch.Tensor] = {}  # kept positions per crop, on device

    def extra_repr(self) -> str:
        limits = f", limits=({self.lower_limit}, {self.upper_limit})" if self.upper_limit < math.inf or self.lower_limit != 1.0 else ""
        return (
            f"strides={[round(s, 4) for s in self.strides.detach().tolist()]}, "
            f"smoothness_factor={self.smoothness_factor}, shared_stride={self.shared_stride}"
            f"{limits}, cropping={self.cropping}"
        )

    def _minimum_strides(self, height: int, width: int) -> tuple[float, float]:
        # float32, as the official layer computes it. A map no larger than R has no
        # minimum (the official formula divides by zero or turns negative there).
        r = _float32(self.smoothness_factor)
        mins = []
        for size in (height, width):
            n = _float32(size)
            mins.append(float(n / (n - r)) if size > self.smoothness_factor else 1.0)
        return mins[0], mins[1]

    @torch.no_grad()
    def _raise_to_minimum(self, height: int, width: int) -> None:
        min_v, min_h = self._minimum_strides(height, width)
        data = self.strides.data  # in place, without bumping autograd's version counter
        if self.shared_stride:
            data.clamp_(min=max(min_v, min_h))
        else:
            data[0].clamp_(min=min_v)
            data[1].clamp_(min=min_h)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the strides onto [lower_limit, upper_limit] (the Keras constraint)."""
        self.strides.data.clamp_(self.lower_limit, self.upper_limit)

    def current_strides(self) -> tuple[float, float]:
        values = self.strides.detach().tolist()
        return (values[0], values[0]) if self.shared_stride else (values[0], values[1])

    def _window(self, size: int, stride: torch.Tensor, stride_host: float, axis: str) -> tuple[torch.Tensor, int, int]:
        """The soft mask over the kept coefficients of one axis, and the crop (lead, trail)."""
        r = self.smoothness_factor
        reduced_host = max(float(_float32(size) / _float32(stride_host)), 2.0)
        reduced = size / stride
        # torch.maximum splits the gradient on a tie; the official tf.maximum gives it all
        # to its first argument.
        reduced = torch.where(reduced >= 2.0, reduced, torch.full_like(reduced, 2.0))
        if axis == "v":
            threshold, threshold_host = reduced / 2.0, reduced_host / 2.0
        else:
            threshold, threshold_host = reduced / 2.0 + 1.0, reduced_host / 2.0 + 1.0
        threshold_host = float(_float32(threshold_host))
        positions_np = _vertical_positions(size) if axis == "v" else _horizontal_positions(size)
        lead, trail = len(positions_np), 0
        if self.cropping:
            lead, trail = _kept_span((axis, size), threshold_host, r)
            positions_np = np.concatenate([positions_np[:lead], positions_np[len(positions_np) - trail:]])
        key = (axis, size, lead, trail, stride.device)
        positions = self._positions.get(key)
        if positions is None:
            positions = self._positions[key] = torch.from_numpy(positions_np).to(stride.device)
        ramp = (1.0 / r) * (r + threshold - positions)
        return clip_passing_bounds(ramp, 0.0, 1.0), lead, trail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        self._raise_to_minimum(height, width)
        stride_v = self.strides[0]
        stride_h = self.strides[0] if self.shared_stride else self.strides[1]
        stride_v = clip_passing_bounds(stride_v, self.lower_limit, self.upper_limit)
        stride_h = clip_passing_bounds(stride_h, self.lower_limit, self.upper_limit)
        # One host read per call: the crop size depends on the stride's value.
        host_v, host_h = (min(max(s, self.lower_limit), self.upper_limit) for s in self.current_strides())
        if not (math.isfinite(host_v) and math.isfinite(host_h)):
            raise FloatingPointError(f"DiffStride2d strides are not finite: {self.current_strides()}")

        mask_v, lead, trail = self._window(height, stride_v, host_v, "v")
        mask_h, cols, _ = self._window(width, stride_h, host_h, "h")

        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float())
            if self.cropping:
                if lead + trail < height:
                    spectrum = torch.cat([spectrum[..., :lead, :], spectrum[..., height - trail:, :]], dim=-2)
                spectrum = spectrum[..., :cols]
            spectrum = spectrum * (mask_v[:, None] * mask_h[None, :])  # one pass over the spectrum
            out = torch.fft.irfft2(spectrum, s=(spectrum.shape[-2], 2 * (spectrum.shape[-1] - 1)))
        return out.to(dtype)


def spectral_output_size(height: int, width: int, stride: tuple[float, float]) -> tuple[int, int]:
    """The official FixedSpectralPooling output size: floor(size / stride), height made
    even, both at least 2."""
    sh = np.floor(_float32(height) / _float32(stride[0]))
    sh -= np.fmod(sh, _float32(2))
    sw = np.floor(_float32(width) / _float32(stride[1]))
    return int(max(sh, 2)), int(max(sw, 2))


class SpectralPool2d(nn.Module):
    """Fixed spectral pooling (Rippel et al., 2015) with the official DiffStride code's
    output-size rule: keep the lowest frequencies, transform back to the smaller size.

    Like the official layer it does not renormalise: the output is scaled by the area
    ratio (H * W) / (h * w) (the forward FFT is unnormalised, the inverse divides by the
    output size). DiffStride2d does the same; batch norm after either absorbs it."""

    def __init__(self, stride: Stride = 2.0):
        super().__init__()
        self.stride = _pair(stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        out_h, out_w = spectral_output_size(height, width, self.stride)
        lower = out_h // 2
        upper = height - lower
        cols = out_w // 2 + 1
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float())
            spectrum = torch.cat([spectrum[..., :lower, :cols], spectrum[..., upper:, :cols]], dim=-2)
            out = torch.fft.irfft2(spectrum, s=(out_h, out_w))
        return out.to(dtype)


class ConvStride(nn.Identity):
    """The strided-convolution baseline: no layer of its own; the convolution before it
    takes `conv_stride`."""

    def __init__(self, stride: Stride = 2):
        super().__init__()
        self.conv_stride = _integer_pair(stride, "strided convolution")

    def extra_repr(self) -> str:
        return f"conv_stride={self.conv_stride}"


def _binomial_filter(size: int) -> torch.Tensor:
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling (Zhang, ICML 2019): a binomial low-pass filter with
    reflect padding, then subsampling. Depthwise, so it needs no channel count."""

    def __init__(self, stride: Stride = 2, filter_size: int = 4):
        super().__init__()
        if filter_size < 1:
            raise ValueError(f"filter_size must be >= 1, got {filter_size}")
        self.stride = _integer_pair(stride, "BlurPool2d")
        self.filter_size = filter_size
        self.register_buffer("kernel", _binomial_filter(filter_size)[None, None], persistent=False)
        total = filter_size - 1
        self.padding = (total // 2, total - total // 2) * 2  # left, right, top, bottom

    def extra_repr(self) -> str:
        return f"stride={self.stride}, filter_size={self.filter_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        mode = "reflect" if min(h, w) > max(self.padding) else "replicate"
        y = F.pad(x.reshape(n * c, 1, h, w), self.padding, mode=mode)
        y = F.conv2d(y, self.kernel.to(y.dtype), stride=self.stride)
        return y.reshape(n, c, *y.shape[-2:])


def _spatial_pool(pool_cls: type[nn.Module], name: str) -> Callable[..., nn.Module]:
    def build(stride: Stride = 2) -> nn.Module:
        pair = _integer_pair(stride, name)
        if pair == (1, 1):
            return nn.Identity()
        # ceil_mode keeps the last partial window, so odd sizes give ceil(size / stride).
        return pool_cls(kernel_size=pair, stride=pair, ceil_mode=True)

    return build


def _blur(stride: Stride = 2, filter_size: int = 4) -> nn.Module:
    return nn.Identity() if _integer_pair(stride, "blur") == (1, 1) else BlurPool2d(stride, filter_size)


DOWNSAMPLE_KINDS: dict[str, Callable[..., nn.Module]] = {
    "strided": ConvStride,
    "max": _spatial_pool(nn.MaxPool2d, "max pooling"),
    "avg": _spatial_pool(nn.AvgPool2d, "average pooling"),
    "blur": _blur,
    "spectral": SpectralPool2d,
    "diffstride": DiffStride2d,
}


def build_downsample(kind: str, stride: Stride = 2, **options) -> nn.Module:
    """The downsampling layer named `kind`; `options` go to its constructor
    (for example `smoothness_factor` for diffstride, `filter_size` for blur)."""
    try:
        builder = DOWNSAMPLE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown downsample kind {kind!r}; known kinds: {', '.join(DOWNSAMPLE_KINDS)}") from None
    try:
        return builder(stride, **options)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for downsample kind {kind!r}: {err}") from None
