"""The CIFAR ResNet-18 of the official DiffStride code, with the downsampling layer, its
placement and the hybrid paper's spectral head as options.

Architecture as in google-research/diffstride `resnet.py`: a 3x3 stem, four stages of two
residual blocks with filters 64-64-128-256-512 (times `width / 64`), no max-pool, global
average pooling and a dense layer. Blocks are post-activation (conv, BN, ReLU, conv, BN,
add, ReLU), as the official code writes them. The first stage never downsamples (identity
blocks); the stem and the first block of stages 2-4 downsample by `init_stride`.

In a downsampling block the convolutions run at stride 1 and one downsampling layer,
shared by the main path and the 1x1 projection shortcut (as in the official code, so
that a learned stride keeps both paths the same size), follows each of them. The
strided-convolution baseline instead strides those two convolutions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybrid.layers import DOWNSAMPLE_KINDS, DiffStride2d, SpectralPool2d, build_downsample

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
DOWNSAMPLE_SITES = ("stem", "layer2", "layer3", "layer4")
HEAD_POOLS = ("none", "spectral")
OFFICIAL_STRIDES = (1, 1, 2, 2, 2)
POOR_STRIDES = (1, 1, 3, 2, 3)  # the official README's badly initialised strides
BASE_FILTERS = (64, 64, 128, 256, 512)


@dataclass(frozen=True)
class ModelConfig:
    """Every model option. `resnet18(**options)` and the run configs fill it."""

    num_classes: int = 10
    in_channels: int = 3
    width: int = 64
    downsample: str = "strided"
    downsample_at: tuple[str, ...] = DOWNSAMPLE_SITES
    init_stride: tuple[float, ...] = OFFICIAL_STRIDES
    smoothness: float = 4.0
    shared_stride: bool = False
    head_pool: str = "none"
    head_stride: float = 2.0
    blur_filter_size: int = 4

    def __post_init__(self):
        object.__setattr__(self, "downsample_at", tuple(self.downsample_at))
        # Floats, so that a stride written as 2 or 2.0 is the same run (and the same run id).
        object.__setattr__(self, "init_stride", tuple(float(s) for s in self.init_stride))
        if self.downsample not in DOWNSAMPLE_KINDS:
            raise ValueError(
                f"model.downsample: unknown kind {self.downsample!r}; known kinds: {', '.join(DOWNSAMPLE_KINDS)}"
            )
        unknown = [s for s in self.downsample_at if s not in DOWNSAMPLE_SITES]
        if unknown:
            raise ValueError(
                f"model.downsample_at: unknown site(s) {unknown}; choose among {', '.join(DOWNSAMPLE_SITES)} "
                "(layer1 never downsamples)"
            )
        if len(self.init_stride) != len(STAGES):
            raise ValueError(
                f"model.init_stride needs {len(STAGES)} strides ({', '.join(STAGES)}), got {list(self.init_stride)}"
            )
        if self.init_stride[1] != 1:
            raise ValueError(
                f"model.init_stride: layer1 is made of identity blocks and cannot stride; "
                f"its entry must be 1, got {self.init_stride[1]}"
            )
        if self.head_pool not in HEAD_POOLS:
            raise ValueError(f"model.head_pool: unknown {self.head_pool!r}; choose among {', '.join(HEAD_POOLS)}")
        if self.width < 1 or self.num_classes < 1 or self.in_channels < 1:
            raise ValueError("model.width, model.num_classes and model.in_channels must be >= 1")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# The papers' named variants, as overrides of ModelConfig.
VARIANTS: dict[str, dict] = {
    "strided": {"downsample": "strided"},
    "max": {"downsample": "max"},
    "avg": {"downsample": "avg"},
    "blur": {"downsample": "blur"},
    "spectral": {"downsample": "spectral"},
    "diffstride": {"downsample": "diffstride"},
    "hybrid": {"downsample": "diffstride", "head_pool": "spectral"},
}


def _he_normal_(weight: torch.Tensor) -> None:
    # Keras 'he_normal': a normal truncated at two standard deviations, rescaled so that
    # the truncated distribution keeps std sqrt(2 / fan_in).
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def _conv(cin: int, cout: int, kernel: int, stride) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def _pool_or_none(layer: nn.Module) -> nn.Module | None:
    return None if isinstance(layer, nn.Identity) else layer


class ResidualBlock(nn.Module):
    """Post-activation basic block; with `downsample`, a projection block."""

    def __init__(self, cin: int, cout: int, downsample: nn.Module | None = None):
        super().__init__()
        conv_stride = getattr(downsample, "conv_stride", 1)
        self.conv1 = _conv(cin, cout, 3, conv_stride)
        self.pool = _pool_or_none(downsample) if downsample is not None else None
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(cout, cout, 3, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.project = downsample is not None
        if self.project:
            self.shortcut_conv = nn.Conv2d(cin, cout, 1, stride=conv_stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if self.project:
            s = self.shortcut_conv(x)
            if self.pool is not None:
                # One call for both paths: the same layer, one FFT launch, one stride read.
                y, s = self.pool(torch.cat([y, s])).chunk(2)
            s = self.shortcut_bn(s)
        else:
            s = x
        y = F.relu(self.bn1(y))
        y = self.bn2(self.conv2(y))
        return F.relu(y + s)


class CifarResNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        filters = [max(1, f * config.width // 64) for f in BASE_FILTERS]

        def downsample(site: str, stride) -> nn.Module:
            kind = config.downsample if site in config.downsample_at else "strided"
            options = {}
            if kind == "diffstride":
                options = {"smoothness_factor": config.smoothness, "shared_stride": config.shared_stride}
            elif kind == "blur":
                options = {"filter_size": config.blur_filter_size}
            return build_downsample(kind, stride, **options)

        stem_down = downsample("stem", config.init_stride[0])
        self.stem_conv = _conv(config.in_channels, filters[0], 3, getattr(stem_down, "conv_stride", 1))
        self.stem_pool = _pool_or_none(stem_down)
        self.stem_bn = nn.BatchNorm2d(filters[0])

        stages = []
        for i, name in enumerate(STAGES[1:], start=1):
            cin, cout = filters[i - 1], filters[i]
            first = None if name == "layer1" else downsample(name, config.init_stride[i])
            stages.append(nn.Sequential(ResidualBlock(cin, cout, first), ResidualBlock(cout, cout)))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.head_pool = SpectralPool2d(config.head_stride) if config.head_pool == "spectral" else None
        self.fc = nn.Linear(filters[-1], config.num_classes)

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                _he_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_conv(x)
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        x = F.relu(self.stem_bn(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.head_pool is not None:
            x = self.head_pool(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(-2, -1)))

    # --- DiffStride bookkeeping -------------------------------------------------------

    def diffstride_layers(self) -> dict[str, DiffStride2d]:
        return {name: m for name, m in self.named_modules() if isinstance(m, DiffStride2d)}

    def stride_parameters(self) -> list[nn.Parameter]:
        return [m.strides for m in self.diffstride_layers().values()]

    def learned_strides(self) -> dict[str, list[float]]:
        """Each DiffStride layer's current (vertical, horizontal) strides, by module name."""
        return {name: list(m.current_strides()) for name, m in self.diffstride_layers().items()}

    @torch.no_grad()
    def constrain_strides(self) -> None:
        """Project every stride onto its layer's limits; call after each optimizer step."""
        for m in self.diffstride_layers().values():
            m.constrain_()

    @torch.no_grad()
    def cost(self, image_size: Sequence[int] = (32, 32)) -> dict[str, float]:
        """FLOPs and activation memory of one image's forward pass at the current strides.

        DiffStride changes the feature-map sizes, so this is measured by a real forward
        pass: convolution and dense FLOPs by torch's FlopCounterMode, FFT FLOPs estimated
        as 2.5 N log2 N per real transform of N points, activation memory as the bytes of
        every leaf module's output.
        """
        param = next(self.parameters())
        x = torch.zeros(1, self.config.in_channels, *image_size, device=param.device, dtype=param.dtype)
        fft_flops = 0.0
        activation_bytes = 0

        def count_fft(module, inputs, output):
            nonlocal fft_flops
            for t in (inputs[0], output):
                n = t.shape[-2] * t.shape[-1]
                fft_flops += 2.5 * t.shape[0] * t.shape[1] * n * math.log2(max(n, 2))

        def count_activation(module, inputs, output):
            nonlocal activation_bytes
            if isinstance(output, torch.Tensor):
                activation_bytes += output.numel() * output.element_size()

        hooks = []
        for module in self.modules():
            if isinstance(module, (DiffStride2d, SpectralPool2d)):
                hooks.append(module.register_forward_hook(count_fft))
            if not list(module.children()):
                hooks.append(module.register_forward_hook(count_activation))
        was_training = self.training
        self.eval()
        try:
            with FlopCounterMode(display=False) as counter:
                self(x)
        finally:
            self.train(was_training)
            for h in hooks:
                h.remove()
        dense_flops = float(counter.get_total_flops())
        return {
            "flops": dense_flops + fft_flops,
            "conv_flops": dense_flops,
            "fft_flops": fft_flops,
            "activation_bytes": float(activation_bytes),
        }


def resnet18(config: ModelConfig | None = None, **options) -> CifarResNet:
    """The official CIFAR ResNet-18; `options` override fields of `config`."""
    try:
        config = replace(config or ModelConfig(), **options)
    except TypeError:
        unknown = sorted(set(options) - set(ModelConfig.field_names()))
        raise ValueError(f"unknown model option(s) {unknown}; known: {', '.join(ModelConfig.field_names())}") from None
    return CifarResNet(config)


def build_variant(name: str, **options) -> CifarResNet:
    """A named variant of the papers (`VARIANTS`), with further option overrides."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}")
    return resnet18(**{**VARIANTS[name], **options})
