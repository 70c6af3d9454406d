"""The official generic ResNet (ResNet-18 and ResNet-56 of google-research/diffstride), with
either release's residual layer, any downsampling kind at any site, and the hybrid
paper's head.

    stem:   conv3x3 -> the stem's downsampling layer [-> BN -> ReLU: postact]   (stem: cifar)
    stages: per stage, a projecting layer that downsamples (unless the stage is identity
            only), then identity layers (`blocks.PreActBlock` or `blocks.PostActBlock`)
    head:   [head pool: before_norm] [BN -> ReLU: preact] [head pool: after_norm]
            -> global average pooling -> dense

`stem: imagenet` is torchvision's ResNet stem (torchvision/models/resnet.py: a 7x7
convolution of stride 2 and padding 3, BN -> ReLU, a 3x3 max pool of stride 2 and padding
1), with the block's stem norm rule (the pre-activation net has no BN -> ReLU there):

    strided stem site:  conv7x7 stride 2 [-> BN -> ReLU: postact] -> maxpool3x3 stride 2
    any other kind:     conv7x7 stride 1 -> one layer of that kind at stride 4 [-> BN -> ReLU]

The second line follows the DiffStride paper's recipe (a strided layer becomes a stride-1
convolution and a pooling layer of the same stride), with one layer doing both factors of
2; the official code (google-research/diffstride b3ef50f) builds only the 3x3 stem, so
this is not official code. Its reduction is fixed at 4: `init_stride`'s stem entry must be
1 (DiffStride starts there at 4 and learns). Both 7x7 convolutions pad 3 on every side,
as torchvision does (not TensorFlow's 'same', which pads 2 before and 3 after an even map
at stride 2): n pixels give ceil(n / 2), then ceil(n / 4) after the max pool.

Keras' initialisers: `he_normal` for convolution and dense kernels, zero biases, batch
norm at gamma 1, beta 0 (momentum 0.9 and epsilon 1e-5 in Keras' terms are PyTorch's
defaults). A downsampling site whose kind is `strided` has no layer of its own: its
convolutions (the 3x3 and the 1x1 shortcut) take the stride.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hybrid.nn.blocks import BLOCKS, Conv2dSame, ScaleHead
from hybrid.nn.layers import DiffStride2d, SpectralPool2d, build_downsample
from hybrid.nn.options import IMAGENET_STEM_STRIDE, VARIANTS, ModelConfig


def he_normal_(weight: torch.Tensor) -> None:
    """Keras 'he_normal': a normal truncated at two standard deviations, rescaled so that
    the truncated distribution keeps std sqrt(2 / fan_in)."""
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def site_downsample(config: ModelConfig, site: str, stride) -> nn.Module:
    """The downsampling layer of `site`'s kind at `stride`, with the config's options for
    that kind (an `nn.Identity` where the convolution strides instead, or at stride 1)."""
    kind = config.site_kind(site)
    options = {}
    if kind == "diffstride":
        options = {"smoothness_factor": config.smoothness, "shared_stride": config.shared_stride}
    elif kind == "blur":
        options = {"filter_size": config.blur_filter_size}
    return build_downsample(kind, stride, **options)


def _layer_or_none(layer: nn.Module) -> nn.Module | None:
    return None if isinstance(layer, nn.Identity) else layer


class ResNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        arch, block = config.spec, BLOCKS[config.block]
        filters = config.filters()

        def downsample(site: str, stride) -> tuple[nn.Module | None, object]:
            """(the site's layer or None, the stride its convolutions take)."""
            layer = site_downsample(config, site, stride)
            return _layer_or_none(layer), getattr(layer, "conv_stride", 1)

        cin, stem_max_pool = config.in_channels, None
        if config.stem == "cifar":
            stem_pool, stem_stride = downsample("stem", config.init_stride[0])
            if block.stem_same_padding:
                self.stem_conv = Conv2dSame(cin, filters[0], 3, stem_stride)
            else:  # the first release pads by one on every side, then a 'valid' convolution
                self.stem_conv = nn.Conv2d(cin, filters[0], 3, stride=stem_stride, padding=1, bias=False)
        elif config.site_kind("stem") == "strided":  # torchvision's stem
            stem_pool, stem_max_pool = None, nn.MaxPool2d(3, stride=2, padding=1)
            self.stem_conv = nn.Conv2d(cin, filters[0], 7, stride=2, padding=3, bias=False)
        else:  # its equivalent: the convolution at stride 1, one layer doing the whole reduction
            stem_pool, _ = downsample("stem", IMAGENET_STEM_STRIDE)
            self.stem_conv = nn.Conv2d(cin, filters[0], 7, stride=1, padding=3, bias=False)
        self.stem_pool = stem_pool
        self.stem_bn = nn.BatchNorm2d(filters[0]) if block.stem_norm else None
        self.stem_max_pool = stem_max_pool

        self.stage_names = arch.stages[1:]
        for i, name in enumerate(self.stage_names):
            cin, cout = filters[i], filters[i + 1]
            layers = []
            if name in arch.sites:
                pool, conv_stride = downsample(name, config.init_stride[i + 1])
                layers.append(block(cin, cout, project=True, pool=pool, conv_stride=conv_stride))
                cin = cout
            layers += [block(cin, cout) for _ in range(arch.num_layers - len(layers))]
            self.add_module(name, nn.Sequential(*layers))

        self.head_bn = nn.BatchNorm2d(filters[-1]) if block.head_norm else None
        self.head_pool = {"none": None, "spectral": SpectralPool2d(config.head_stride),
                          "scale": ScaleHead(config.head_stride)}[config.head_pool]
        self.fc = nn.Linear(filters[-1], config.num_classes)

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                he_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        # What `plan_strides` walks every step, listed once: the modules that change the map's
        # size in the order the map meets them, and the DiffStride layers among them (all of
        # the net's: a block's shortcut takes the same path through the same layer).
        self._resizing = self._resizing_modules()
        self._diffstride = [m for m in self._resizing if isinstance(m, DiffStride2d)]
        if len(self._diffstride) != len(self.diffstride_layers()):
            raise RuntimeError("ResNet: a DiffStride layer off the main path; _resizing_modules is out of date")
        self._sizes: dict[tuple, tuple[int, int]] = {}  # (module id, height, width) -> its output's size
        self.crops_planned: set[tuple] = set()  # the tuples of crops planned: a compiled net compiles for each

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, name) for name in self.stage_names]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The map the first stage sees."""
        x = self.stem_conv(x)
        if self.stem_pool is not None:
            x = self.stem_pool(x)
        if self.stem_bn is not None:
            x = torch.relu(self.stem_bn(x))
        if self.stem_max_pool is not None:
            x = self.stem_max_pool(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The map global average pooling averages."""
        x = self.stem(x)
        for stage in self.stages():
            x = stage(x)
        at = self.config.head_pool_at
        if self.head_pool is not None and at == "before_norm":
            x = self.head_pool(x)
        if self.head_bn is not None:
            x = torch.relu(self.head_bn(x))
        if self.head_pool is not None and at == "after_norm":
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
        """Project every stride onto its layer's limits; call after each optimizer step (it
        ends the step's plan: the next forward pass needs a new one)."""
        for m in self._diffstride:
            m.constrain_()

    @torch.no_grad()
    def plan_strides(self, image_size: Sequence[int]) -> None:
        """Fix every DiffStride layer's crop for the next forward passes on images of
        `image_size`: one read of all the strides (one small device-to-host copy, the only
        host synchronisation a DiffStride net needs per step), each layer's strides raised
        to their minimum, then each layer's crop in the order the maps flow, since a crop
        sets the size of every map after it. Until `constrain_strides` or `clear_plan`, the
        forward pass reads nothing from the device. A no-op without DiffStride layers."""
        if not self._diffstride:
            return
        values = iter(torch.cat([m.strides.detach() for m in self._diffstride]).tolist())
        height, width = image_size
        crops = []
        for module in self._resizing:
            if isinstance(module, DiffStride2d):
                module.crop = module.plan(height, width, [next(values) for _ in range(module.strides.numel())])
                crops.append(module.crop)
                height, width = module.crop.out_size
            else:
                height, width = self._size_through(module, height, width)
        self.crops_planned.add(tuple(crops))

    def clear_plan(self) -> None:
        """Forget the planned crops: each DiffStride layer plans its own calls again."""
        for m in self._diffstride:
            m.crop = None

    def _resizing_modules(self) -> list[nn.Module]:
        """The modules that change the map's size, in the order the map meets them: the
        stem's convolution and layers, then each stage's first convolution and pooling
        layer."""
        path = [self.stem_conv, self.stem_pool, self.stem_max_pool]
        for stage in self.stages():
            path += [stage[0].conv1, stage[0].pool]
        return [m for m in path if m is not None]

    def _size_through(self, module: nn.Module, height: int, width: int) -> tuple[int, int]:
        """The size of `module`'s output for an input of height x width: run once on a map of
        zeros of that size (a sample of one, no gradient), then remembered."""
        key = (id(module), height, width)
        if key not in self._sizes:
            weight = next(module.parameters(), None)
            probe = torch.zeros(1, getattr(module, "in_channels", 1), height, width,
                                device=weight.device if weight is not None else "cpu",
                                dtype=weight.dtype if weight is not None else torch.float32)
            self._sizes[key] = tuple(module(probe).shape[-2:])
        return self._sizes[key]

    @torch.no_grad()
    def cost(self, image_size: Sequence[int] = (32, 32)) -> dict[str, float]:
        """FLOPs, activation memory and the last stage's map size of one image's forward
        pass at the current strides.

        DiffStride changes the feature-map sizes, so this is measured by a real forward
        pass: convolution and dense FLOPs by torch's FlopCounterMode, FFT FLOPs estimated
        as 2.5 N log2 N per real transform of N points, activation memory as the bytes of
        every leaf module's output. `models.flops.count_flops` counts the same FLOPs from
        the config alone, without building the net.
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

        final_map: list[int] = []

        def record_final_map(module, inputs, output):
            final_map[:] = [int(output.shape[-2]), int(output.shape[-1])]

        hooks = [list(self.stages())[-1].register_forward_hook(record_final_map)]
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
            "final_map": final_map,  # the last stage's output, [height, width], before any head pooling
        }


def resnet(config: ModelConfig | None = None, **options) -> ResNet:
    """The official ResNet of `config` (default: the HEAD ResNet-18, strided); `options`
    are ModelConfig fields, overriding those of `config`."""
    unknown = sorted(set(options) - set(ModelConfig.field_names()))
    if unknown:
        raise ValueError(f"unknown model option(s) {unknown}; known: {', '.join(ModelConfig.field_names())}")
    if config is None:
        return ResNet(ModelConfig(**options))
    return ResNet(replace(config, **options) if options else config)


def resnet18(**options) -> ResNet:
    return resnet(**{"arch": "resnet18", **options})


def resnet56(**options) -> ResNet:
    return resnet(**{"arch": "resnet56", **options})


def build_variant(name: str, **options) -> ResNet:
    """A named variant of the papers (`VARIANTS`), with further option overrides."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(VARIANTS)}")
    return resnet(**{**VARIANTS[name], **options})
