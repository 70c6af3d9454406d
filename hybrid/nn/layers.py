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

from hybrid.nn.spectral_window import (
    Crop,
    Window,
    horizontal_positions,
    kept_span,
    vertical_positions,
)
from hybrid.nn.spectral_window import float32 as _float32
from hybrid.transfer import to_device

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


@lru_cache(maxsize=1024)
def _minimum_strides(smoothness: float, height: int, width: int) -> tuple[float, float]:
    # float32, as the official layer computes it. A map no larger than R has no minimum (the
    # official formula divides by zero or turns negative there).
    r = _float32(smoothness)
    mins = []
    for size in (height, width):
        n = _float32(size)
        mins.append(float(n / (n - r)) if size > smoothness else 1.0)
    return mins[0], mins[1]


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

    The crop depends on the strides' values, so a forward pass needs them on the host. Alone,
    the layer reads them itself (one small device-to-host copy per call). In a network,
    `ResNet.plan_strides` reads every layer's strides in one copy before the forward pass,
    raises them, and hands each layer its `crop`: the forward pass then reads nothing from
    the device and depends on the strides' values only through those integers, which is
    what lets `torch.compile` trace it whole and keep its graph while the strides move
    within one crop.
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
        self.crop: Crop | None = None  # this step's, set by ResNet.plan_strides; None: plan per call
        # The window's constants for the current crop (kept positions; [height, width], [0, 1],
        # [-height/2, -width/2], as `spectral_window.Window` takes them; the rfft2 rows kept),
        # swapped in by `plan` from a cache, so that a crop seen before costs no copy.
        self.register_buffer("positions", torch.zeros(0), persistent=False)
        self.register_buffer("axes", torch.zeros(3, 2), persistent=False)
        self.register_buffer("kept_rows", torch.zeros(0, dtype=torch.long), persistent=False)
        self._constants: dict[tuple, tuple[torch.Tensor, ...]] = {}
        self._constants_in_use: tuple | None = None

    def extra_repr(self) -> str:
        limits = f", limits=({self.lower_limit}, {self.upper_limit})" if self.upper_limit < math.inf or self.lower_limit != 1.0 else ""
        return (
            f"strides={[round(s, 4) for s in self.strides.detach().tolist()]}, "
            f"smoothness_factor={self.smoothness_factor}, shared_stride={self.shared_stride}"
            f"{limits}, cropping={self.cropping}"
        )

    def minimum_strides(self, height: int, width: int) -> tuple[float, float]:
        """The official lower bound of each stride for a map of this size, size / (size - R)."""
        return _minimum_strides(self.smoothness_factor, height, width)

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the strides onto [lower_limit, upper_limit] (the Keras constraint)."""
        self.strides.data.clamp_(self.lower_limit, self.upper_limit)
        self.crop = None

    def current_strides(self) -> tuple[float, float]:
        values = self.strides.detach().tolist()
        return (values[0], values[0]) if self.shared_stride else (values[0], values[1])

    @torch.no_grad()
    def plan(self, height: int, width: int, values: Sequence[float] | None = None) -> Crop:
        """The crop of a map of `height` x `width` at the strides' `values` (the parameter's,
        read by the caller; read here when None), after raising each stride to its minimum.

        The raise is the official forward pass's first step: on the host values, and on the
        parameter (in place, without bumping autograd's version counter) only where one is
        below its minimum. Non-finite strides raise FloatingPointError.
        """
        values = self.strides.detach().tolist() if values is None else list(values)
        min_v, min_h = self.minimum_strides(height, width)
        data = self.strides.data
        if self.shared_stride:
            floor = max(min_v, min_h)
            if values[0] < floor:
                data.clamp_(min=floor)
                values[0] = floor
            values = [values[0], values[0]]
        else:
            for i, floor in enumerate((min_v, min_h)):
                if values[i] < floor:
                    data[i].clamp_(min=floor)
                    values[i] = floor
        host_v, host_h = (min(max(s, self.lower_limit), self.upper_limit) for s in values)
        if not (math.isfinite(host_v) and math.isfinite(host_h)):
            raise FloatingPointError(f"DiffStride2d strides are not finite: {values}")
        lead, trail = self._span(height, host_v, "v")
        cols, _ = self._span(width, host_h, "h")
        crop = Crop(height, width, lead, trail, cols)
        self._use_constants(crop)
        return crop

    def _span(self, size: int, stride: float, axis: str) -> tuple[int, int]:
        """The leading and trailing coefficients the window keeps on one axis (all of them
        without cropping), in the float32 arithmetic of the official layer."""
        positions = vertical_positions(size) if axis == "v" else horizontal_positions(size)
        if not self.cropping:
            return len(positions), 0
        reduced = max(float(_float32(size) / _float32(stride)), 2.0)
        threshold = float(_float32(reduced / 2.0 + (1.0 if axis == "h" else 0.0)))
        return kept_span((axis, size), threshold, self.smoothness_factor)

    def _use_constants(self, crop: Crop) -> None:
        device = self.strides.device
        key = (crop, device)
        if self._constants_in_use == key:  # the usual step: the crop of the step before
            return
        if key not in self._constants:
            rows = vertical_positions(crop.height)
            kept_rows = np.concatenate([rows[:crop.lead], rows[len(rows) - crop.trail:]])
            positions = np.concatenate([kept_rows, horizontal_positions(crop.width)[:crop.cols]])
            axes = torch.tensor([[crop.height, crop.width], [0.0, 1.0], [-crop.height / 2, -crop.width / 2]],
                                dtype=torch.float32)
            rows = torch.cat([torch.arange(crop.lead), torch.arange(crop.height - crop.trail, crop.height)])
            self._constants[key] = tuple(to_device(t, device) for t in (torch.from_numpy(positions), axes, rows))
        self.positions, self.axes, self.kept_rows = self._constants[key]
        self._constants_in_use = key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        crop = self.crop
        if crop is None or (crop.height, crop.width) != (height, width):
            crop = self.plan(height, width)
        kept_rows = crop.lead + crop.trail
        mask = Window.apply(self.strides, self.positions, self.axes, kept_rows, self.smoothness_factor,
                             self.lower_limit, self.upper_limit)
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.rfft2(x.float())
            if self.cropping:
                if kept_rows < height:
                    spectrum = spectrum.index_select(-2, self.kept_rows)
                spectrum = spectrum[..., :crop.cols]
            spectrum = spectrum * mask  # one pass over the spectrum
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
