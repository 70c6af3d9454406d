"""The residual layers of the two official releases, the TF-'same' convolution they both
use, and the head's pooling layers.

A block class also says how the network around it is wired (the stem's padding and norm,
the head's norm), so that `models.resnet` builds either release from one registry entry.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from hybrid.nn.layers import spectral_output_size


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's padding='same': ceil(size / stride) outputs, the total padding split
    with the smaller half before (a stride-2 3x3 convolution on an even map pads 0 before
    and 1 after, where PyTorch's padding=1 pads 1 on both sides)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A bias-free convolution with TensorFlow's padding='same', as the official Keras
    layers pad; at stride 1 with an odd kernel that is PyTorch's symmetric padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride=1):
        stride = _pair(stride)
        symmetric = stride == (1, 1) and kernel % 2 == 1
        super().__init__(cin, cout, kernel, stride=stride, padding=kernel // 2 if symmetric else 0, bias=False)
        self.symmetric = symmetric

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.symmetric else ", padding='same' (TensorFlow)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            return super().forward(x)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        return self._conv_forward(F.pad(x, (left, right, top, bottom)), self.weight, None)


def _shortcut(cin: int, cout: int, stride) -> nn.Conv2d:
    # A 1x1 convolution never pads under 'same' or 'valid': PyTorch's padding=0.
    return nn.Conv2d(cin, cout, 1, stride=_pair(stride), bias=False)


def _pooled(pool: nn.Module | None, y: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both paths through the block's one pooling layer: one call on the stacked batch (one
    FFT launch, one stride read), the same as the official code's two calls."""
    if pool is None:
        return y, s
    return pool(torch.cat([y, s])).chunk(2)


class PreActBlock(nn.Module):
    """The official HEAD's residual layer (google-research/diffstride b3ef50f
    `resnet.ResidualLayer`, "the pre-act formulation"):

        BN -> ReLU -> conv3x3 -> pool -> BN -> ReLU -> conv3x3, plus the shortcut: the raw
        input, or in a projection layer conv1x1 of the raw input -> the same pool;

    no BN on the shortcut, no ReLU after the sum. Where a pooling layer follows, the
    convolutions run at stride 1; the strided baseline strides them instead (`conv_stride`).
    """

    stem_same_padding = True  # the stem: conv 'same' -> pool, no BN or ReLU
    stem_norm = False
    head_norm = True  # the head: BN -> ReLU -> global average pooling -> dense

    def __init__(self, cin: int, cout: int, project: bool = False, pool: nn.Module | None = None, conv_stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = Conv2dSame(cin, cout, 3, conv_stride)
        self.pool = pool
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = Conv2dSame(cout, cout, 3)
        self.shortcut_conv = _shortcut(cin, cout, conv_stride) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x)))
        if self.shortcut_conv is None:
            return self.conv2(F.relu(self.bn2(y))) + x
        y, s = _pooled(self.pool, y, self.shortcut_conv(x))
        return self.conv2(F.relu(self.bn2(y))) + s


class PostActBlock(nn.Module):
    """The first release's residual layer (google-research/diffstride 1f9e8f4
    `resnet.ResidualLayer`):

        conv3x3 -> pool -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut: the input, or
        conv1x1 -> the same pool -> BN; then ReLU of the sum.
    """

    stem_same_padding = False  # the stem: zero-pad 1, conv 'valid' -> pool -> BN -> ReLU
    stem_norm = True
    head_norm = False  # the head: global average pooling -> dense

    def __init__(self, cin: int, cout: int, project: bool = False, pool: nn.Module | None = None, conv_stride=1):
        super().__init__()
        self.conv1 = Conv2dSame(cin, cout, 3, conv_stride)
        self.pool = pool
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = Conv2dSame(cout, cout, 3)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut_conv = _shortcut(cin, cout, conv_stride) if project else None
        self.shortcut_bn = nn.BatchNorm2d(cout) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        s = x
        if self.shortcut_conv is not None:
            y, s = _pooled(self.pool, y, self.shortcut_conv(x))
            s = self.shortcut_bn(s)
        y = self.bn2(self.conv2(F.relu(self.bn1(y))))
        return F.relu(y + s)


BLOCKS: dict[str, type[nn.Module]] = {"preact": PreActBlock, "postact": PostActBlock}


class ScaleHead(nn.Module):
    """The scale-only control of the `after_norm` spectral head: multiplies the features by
    the constant that spectral pooling right before global average pooling multiplies the
    pooled features by, (H * W) / (h * w), with h x w the spectral output size for the map
    the head sees on its first call (the initial strides), then kept fixed. No FFT.

    The constant is a buffer, so a checkpoint keeps it."""

    def __init__(self, stride: float = 2.0):
        super().__init__()
        self.stride = (float(stride), float(stride))
        self.register_buffer("scale", torch.tensor(math.nan))
        self._scale: float | None = None  # the buffer's value on the host, read once

    def extra_repr(self) -> str:
        return f"stride={self.stride}, scale={'set on the first call' if self._scale is None else self._scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._scale is None:
            value = float(self.scale)
            if math.isnan(value):
                height, width = x.shape[-2:]
                out_h, out_w = spectral_output_size(height, width, self.stride)
                value = height * width / (out_h * out_w)
                self.scale.fill_(value)
            self._scale = value
        return x * self._scale

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._scale = None  # re-read the loaded buffer
