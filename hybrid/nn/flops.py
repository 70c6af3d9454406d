"""One image's forward FLOPs of a `ModelConfig`, counted from its feature-map sizes without
building the network.

`ResNet.cost` measures a built network by a real forward pass: seconds per ResNet-18 on a
CPU, most of them in initialising the weights. This walks the same network, stem ->
stages -> head as `models.resnet` wires it, in well under a millisecond, and counts what
that pass counts:

- convolutions and the dense layer as torch's FlopCounterMode does: 2 x output pixels x
  kernel area x input channels x output channels (bias, batch norm, ReLU and additions
  uncounted);
- each DiffStride or spectral pooling layer's FFTs as 2.5 N log2 N per real transform of
  N points, for its input and its output, added in the order of the forward pass, so that
  the float sum is the same to the last bit.

A downsampling layer's output size comes from the layer's own code: DiffStride's kept size
depends on its stride values (raised to a minimum per map size, in float32), so a fresh
layer takes the steps of its forward pass that decide it, from its CPU-initialised stride
parameter (the FFTs left out); spectral pooling's from `spectral_output_size`; a spatial
layer runs once on a one-channel map. `tests/test_cost.py` holds the count equal to
`ResNet.cost`, exactly, on every kind of layer, head and stem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from hybrid.nn.blocks import BLOCKS, same_padding
from hybrid.nn.layers import BlurPool2d, DiffStride2d, SpectralPool2d, spectral_output_size
from hybrid.nn.options import IMAGENET_STEM_STRIDE, ModelConfig
from hybrid.nn.resnet import site_downsample

Size = tuple[int, int]
Padding = tuple[tuple[int, int], tuple[int, int]]  # (top, bottom), (left, right)


@dataclass
class _Tally:
    dense: int = 0  # convolution and dense FLOPs (exact integers)
    fft: float = 0.0  # the FFT estimate, summed in forward order


@dataclass(frozen=True)
class _Through:
    """What one downsampling layer does to a map of a given size."""

    size: Size  # its output size
    flops_per_map: int  # FLOPs it counts per channel of one image (blur's depthwise convolution)
    transforms: bool  # DiffStride or spectral pooling: an FFT in and out


_THROUGH: dict[tuple, _Through] = {}


def _through(layer_key: tuple, build, size: Size) -> _Through:
    """What the layer `build()` makes does to a map of `size` (once per layer and size)."""
    key = (*layer_key, size)
    if key not in _THROUGH:
        layer = build()
        if isinstance(layer, DiffStride2d):  # FFTs and products: nothing torch counts
            _THROUGH[key] = _Through(_diffstride_size(layer, size), 0, True)
        elif isinstance(layer, SpectralPool2d):
            _THROUGH[key] = _Through(spectral_output_size(*size, layer.stride), 0, True)
        else:  # a spatial layer, run once on a one-channel map
            with torch.no_grad():
                out = tuple(layer(torch.zeros(1, 1, *size)).shape[-2:])
            # blur pooling's depthwise convolution, as torch's counter counts it (max and
            # average pooling count nothing); not torch's counter itself: its first use
            # imports seconds of modules
            flops = 2 * layer.filter_size ** 2 * out[0] * out[1] if isinstance(layer, BlurPool2d) else 0
            _THROUGH[key] = _Through(out, flops, False)
    return _THROUGH[key]


def _diffstride_size(layer: DiffStride2d, size: Size) -> Size:
    """The map a fresh DiffStride layer returns for an input of `size`: its crop at its
    initial strides, raised to their minimum for this size and clipped to the limits (no
    FFT: they cost milliseconds each on a busy CPU)."""
    return layer.plan(*size).out_size


def _fft(tally: _Tally, batch: int, channels: int, size: Size) -> None:
    n = size[0] * size[1]
    tally.fft += 2.5 * batch * channels * n * math.log2(max(n, 2))


def _pool(tally: _Tally, through: _Through, batch: int, channels: int, size: Size) -> Size:
    tally.dense += through.flops_per_map * batch * channels
    if through.transforms:
        _fft(tally, batch, channels, size)
        _fft(tally, batch, channels, through.size)
    return through.size


_CONV_STRIDES: dict[tuple, tuple[int, int]] = {}


def _site_key(config: ModelConfig, site: str, stride) -> tuple:
    return config.site_kind(site), stride, config.smoothness, config.shared_stride, config.blur_filter_size


def _conv_stride(config: ModelConfig, site: str, stride) -> tuple[int, int]:
    """The stride the site's convolutions take: the layer's `conv_stride` (strided), else 1."""
    key = _site_key(config, site, stride)
    if key not in _CONV_STRIDES:
        conv_stride = getattr(site_downsample(config, site, stride), "conv_stride", 1)
        _CONV_STRIDES[key] = conv_stride if isinstance(conv_stride, tuple) else (conv_stride, conv_stride)
    return _CONV_STRIDES[key]


def _site(config: ModelConfig, site: str, stride, size: Size) -> _Through:
    """What the site's layer (a fresh one: DiffStride raises its strides on a call) does to `size`."""
    return _through(_site_key(config, site, stride), lambda: site_downsample(config, site, stride), size)


def _conv(tally: _Tally, cin: int, cout: int, kernel: int, size: Size, stride: tuple[int, int],
          padding: Padding) -> Size:
    out = tuple((n + lo + hi - kernel) // s + 1 for n, s, (lo, hi) in zip(size, stride, padding))
    tally.dense += 2 * out[0] * out[1] * kernel * kernel * cin * cout
    return out  # type: ignore[return-value]


def _same(size: Size, kernel: int, stride: tuple[int, int]) -> Padding:
    """`blocks.Conv2dSame`'s padding: symmetric at stride 1 with an odd kernel, else TensorFlow's."""
    if stride == (1, 1) and kernel % 2 == 1:
        return (kernel // 2, kernel // 2), (kernel // 2, kernel // 2)
    return same_padding(size[0], kernel, stride[0]), same_padding(size[1], kernel, stride[1])


def _stem(tally: _Tally, config: ModelConfig, size: Size) -> Size:
    cin, width = config.in_channels, config.filters()[0]
    if config.stem == "cifar":
        stride = _conv_stride(config, "stem", config.init_stride[0])
        if BLOCKS[config.block].stem_same_padding:
            size = _conv(tally, cin, width, 3, size, stride, _same(size, 3, stride))
        else:  # the first release: pad one on every side, then a 'valid' convolution
            size = _conv(tally, cin, width, 3, size, stride, ((1, 1), (1, 1)))
        return _pool(tally, _site(config, "stem", config.init_stride[0], size), 1, width, size)
    if config.site_kind("stem") == "strided":  # torchvision's: conv7x7 stride 2, maxpool3x3 stride 2
        size = _conv(tally, cin, width, 7, size, (2, 2), ((3, 3), (3, 3)))
        return tuple((n + 2 - 3) // 2 + 1 for n in size)  # type: ignore[return-value]
    size = _conv(tally, cin, width, 7, size, (1, 1), ((3, 3), (3, 3)))
    return _pool(tally, _site(config, "stem", IMAGENET_STEM_STRIDE, size), 1, width, size)


def _stages(tally: _Tally, config: ModelConfig, size: Size) -> Size:
    arch, filters = config.spec, config.filters()
    for i, name in enumerate(arch.stages[1:]):
        cin, cout = filters[i], filters[i + 1]
        identity_layers = arch.num_layers
        if name in arch.sites:  # the projecting layer: conv3x3 and the 1x1 shortcut, one pool for both
            stride = _conv_stride(config, name, config.init_stride[i + 1])
            conv1 = _conv(tally, cin, cout, 3, size, stride, _same(size, 3, stride))
            _conv(tally, cin, cout, 1, size, stride, ((0, 0), (0, 0)))
            # `blocks._pooled`: one call on the two paths stacked, a batch of 2
            size = _pool(tally, _site(config, name, config.init_stride[i + 1], conv1), 2, cout, conv1)
            size = _conv(tally, cout, cout, 3, size, (1, 1), _same(size, 3, (1, 1)))
            identity_layers, cin = identity_layers - 1, cout
        for _ in range(identity_layers):
            size = _conv(tally, cin, cout, 3, size, (1, 1), _same(size, 3, (1, 1)))
            size = _conv(tally, cout, cout, 3, size, (1, 1), _same(size, 3, (1, 1)))
            cin = cout
    return size


def count_flops(config: ModelConfig, image_size: Sequence[int] = (32, 32)) -> dict[str, float]:
    """`ResNet.cost`'s FLOPs of one image at the initial strides, without building the net:
    {"flops", "conv_flops", "fft_flops", "final_map"} (no activation memory); `final_map` is
    the last stage's output size, [height, width], before any head pooling."""
    tally = _Tally()
    size = _stages(tally, config, _stem(tally, config, (int(image_size[0]), int(image_size[1]))))
    final_map = [int(size[0]), int(size[1])]
    channels = config.filters()[-1]
    if config.head_pool == "spectral":  # before or after the head's norm, the same map size
        head = (float(config.head_stride), float(config.head_stride))
        size = _pool(tally, _through(("head", head), lambda: SpectralPool2d(head), size), 1, channels, size)
    # the scale-only head multiplies (uncounted); then global average pooling and the dense layer
    tally.dense += 2 * channels * config.num_classes
    return {"flops": float(tally.dense) + tally.fft, "conv_flops": float(tally.dense), "fft_flops": tally.fft,
            "final_map": final_map}
