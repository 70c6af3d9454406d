"""What a model is made of, as data: the architectures, the options, the named variants.

`ModelConfig` holds every model option; `__post_init__` checks each one against the
architecture it names and fills the architecture's defaults (filters, initial strides,
downsampling sites), so that a default written out and a default left out are the same
config, and the same run id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Literal, Union

from pydantic import Field

from hybrid.fields import Bool, Float, Int, describe, section
from hybrid.nn.layers import DOWNSAMPLE_KINDS

StrideValue = Annotated[Float, Field(ge=1)]
Stride = Union[StrideValue, tuple[StrideValue, StrideValue]]


@dataclass(frozen=True)
class Arch:
    """The official generic `Resnet(filters, strides, num_layers, id_only)`
    (google-research/diffstride b3ef50f `diffstride/resnet.py`): a 3x3 stem with
    `filters[0]` filters, then one stage per further entry of `num_layers` residual layers;
    a stage's first layer projects (1x1 shortcut) and downsamples by its stride, unless the
    stage is in `id_only` (0 = the first stage after the stem), whose layers are all
    identity layers that never downsample."""

    filters: tuple[int, ...]
    strides: tuple[float, ...]
    num_layers: int
    id_only: tuple[int, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        """stem, layer1, layer2, ...: one name per entry of `filters` and `strides`."""
        return ("stem", *(f"layer{i}" for i in range(1, len(self.filters))))

    @property
    def sites(self) -> tuple[str, ...]:
        """The stages that downsample: the stem and every projecting stage."""
        return tuple(s for i, s in enumerate(self.stages) if i == 0 or i - 1 not in self.id_only)


ARCHS: dict[str, Arch] = {
    # resnet18(): filters 64-64-128-256-512, strides 1,1,2,2,2, 2 layers, id_only=[0].
    "resnet18": Arch((64, 64, 128, 256, 512), (1.0, 1.0, 2.0, 2.0, 2.0), 2, (0,)),
    # resnet56(): filters 16-16-32-64, strides 1,1,2,2, 9 layers, every stage projecting
    # (its first stage projects 16 -> 16 at stride 1, so it is a site too).
    "resnet56": Arch((16, 16, 32, 64), (1.0, 1.0, 2.0, 2.0), 9),
}
BLOCKS = ("preact", "postact")
# cifar: the official 3x3 stem; imagenet: torchvision's 7x7 stride-2 convolution and 3x3
# stride-2 max pool (or their equivalent: see `models.resnet`), a fixed reduction of 4.
STEMS = ("cifar", "imagenet")
IMAGENET_STEM_STRIDE = 4.0
HEAD_POOLS = ("none", "spectral", "scale")
HEAD_POOL_AT = ("before_norm", "after_norm")
Kind = Literal[tuple(DOWNSAMPLE_KINDS)]
MAX_WIDTH = 1024  # model.width's bound (see the field)
POOR_STRIDES = (1.0, 1.0, 3.0, 2.0, 3.0)  # the official README's badly initialised ResNet-18 strides


def _stride(value) -> Stride:
    """A validated stride, canonical: a pair of equal values is that number."""
    if isinstance(value, tuple):
        return value[0] if value[0] == value[1] else value
    return value


@section("model")
class ModelConfig:
    """Every model option. `resnet(**options)` and the run configs fill it.

    `downsample` is the layer kind at every site of `downsample_at` (the others keep the
    strided convolution); `site_kinds` sets single sites outright, e.g. {layer4: spectral}
    with `downsample: diffstride` for DiffStride everywhere but a spectral layer4.
    `width`, `init_stride` and `downsample_at` left out (null) take the architecture's own.
    `stem: imagenet` swaps the official 3x3 stem for torchvision's ResNet stem, whose
    reduction is fixed at 4 (`init_stride`'s stem entry stays 1; see `models.resnet`).
    """

    arch: Literal[tuple(ARCHS)] = describe("the official generic ResNet's architecture",
                                           default="resnet18")
    block: Literal[BLOCKS] = describe("preact: the official HEAD's block; postact: the first "
                                      "release's", default="preact")
    stem: Literal[STEMS] = describe(
        "cifar: the official 3x3 convolution, striding by init_stride's stem entry; imagenet: "
        "torchvision's 7x7 stride-2 convolution and 3x3 stride-2 max pool (a stem site of another kind: "
        "the 7x7 at stride 1 and one layer of that kind at stride 4), a fixed reduction of 4, so "
        "init_stride's stem entry must be 1", default="cifar")
    num_classes: Int = describe("classes (filled from dataset.name in run configs)", default=10, ge=1)
    in_channels: Int = describe("input channels", default=3, ge=1)
    # At most MAX_WIDTH, 16 times ResNet-18's own: 2.9e9 parameters (resnet56's 3.5e9), 34 GB
    # of float32 weights, gradients and momentum; twice the width is four times that.
    width: Int | None = describe(
        f"stem filters (the others scale with it); null: the arch's; at most {MAX_WIDTH} (ResNet-18 "
        "at that width has 2.9e9 parameters, about the most one GPU trains)", default=None, ge=1, le=MAX_WIDTH)
    downsample: Kind = describe("the downsampling kind at every site of downsample_at",
                                default="strided")
    downsample_at: tuple[str, ...] | None = describe(
        "the sites that take `downsample` (the others stay strided); null: all", default=None)
    site_kinds: dict[str, Kind] = describe("a kind per site, over downsample",
                                           default_factory=dict)
    init_stride: tuple[Stride, ...] | None = describe(
        "initial stride per stage, a number or a [vertical, horizontal] pair, each >= 1; "
        "null: the arch's", default=None)
    smoothness: Float = describe("DiffStride's smoothness factor R of the spectral window",
                                 default=4.0, gt=0)
    shared_stride: Bool = describe("one stride for both axes", default=False)
    head_pool: Literal[HEAD_POOLS] = describe("pooling in the head before global average pooling",
                                              default="none")
    head_pool_at: Literal[HEAD_POOL_AT] = describe("where the head pool sits", default="before_norm")
    head_stride: Float = describe("the head's spectral pooling stride", default=2.0, ge=1)
    blur_filter_size: Int = describe("blur pooling's filter size", default=4, ge=1)

    def __post_init__(self):
        """The checks between fields (types and ranges are the fields' own), and the arch's
        defaults filled in, so that a default written out and one left out are equal."""
        def put(name, value):
            object.__setattr__(self, name, value)

        arch = ARCHS[self.arch]
        if self.width is None:
            put("width", arch.filters[0])
        put("downsample_at", arch.sites if self.downsample_at is None else tuple(self.downsample_at))
        for key, sites in (("model.downsample_at", self.downsample_at), ("model.site_kinds", tuple(self.site_kinds))):
            unknown = [s for s in sites if s not in arch.sites]
            if unknown:
                raise ValueError(
                    f"{key}: {unknown} {'is not a site' if len(unknown) == 1 else 'are not sites'} of {self.arch}; "
                    f"its downsampling sites are {', '.join(arch.sites)}"
                )
        put("site_kinds", dict(sorted(self.site_kinds.items())))
        strides = arch.strides if self.init_stride is None else self.init_stride
        if len(strides) != len(arch.stages):
            raise ValueError(
                f"model.init_stride: {self.arch} needs {len(arch.stages)} strides ({', '.join(arch.stages)}), "
                f"each a number or a [vertical, horizontal] pair; got {list(strides)!r}"
            )
        put("init_stride", tuple(_stride(s) for s in strides))
        if self.stem == "imagenet" and self.init_stride[0] != 1.0:
            raise ValueError(
                f"model.init_stride: model.stem imagenet reduces by a fixed {IMAGENET_STEM_STRIDE:g} (a stride-2 "
                f"convolution and a stride-2 max pool), so its stem entry must be 1, got {self.init_stride[0]}; "
                "set model.stem: cifar to choose the stem's stride"
            )
        for i, stage in enumerate(arch.stages):
            if stage not in arch.sites and self.init_stride[i] != 1.0:
                raise ValueError(
                    f"model.init_stride: {stage} of {self.arch} is made of identity layers and cannot stride; "
                    f"its entry must be 1, got {self.init_stride[i]}"
                )
        if self.head_pool == "none":
            # Irrelevant without a head pool: kept at their defaults, so they do not split run ids.
            put("head_pool_at", "before_norm")
            put("head_stride", 2.0)
        elif self.block == "postact" and self.head_pool_at != "after_norm":
            raise ValueError(
                "model.head_pool_at: the post-activation net has no norm in its head; its head pool sits after "
                "the last block's ReLU, right before global average pooling: set model.head_pool_at: after_norm"
            )
        elif self.head_pool == "scale" and self.head_pool_at != "after_norm":
            raise ValueError(
                "model.head_pool: scale before the head's batch norm is a no-op (batch norm removes a constant "
                "factor); the scale-only control belongs at model.head_pool_at: after_norm"
            )

    @property
    def spec(self) -> Arch:
        return ARCHS[self.arch]

    def filters(self) -> list[int]:
        """Filters of the stem and each stage, scaled by `width` / the architecture's own."""
        base = self.spec.filters
        return [max(1, f * self.width // base[0]) for f in base]

    def site_kind(self, site: str) -> str:
        """The downsampling kind at `site`: its `site_kinds` entry, else `downsample` where
        `downsample_at` lists it, else the strided convolution."""
        if site in self.site_kinds:
            return self.site_kinds[site]
        return self.downsample if site in self.downsample_at else "strided"

    def __hash__(self) -> int:  # `site_kinds` is a dict: hash the canonical form
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return {k: plain(v) for k, v in asdict(self).items()}


# The papers' named variants, as overrides of ModelConfig (the workflow configs declare the
# same presets under `variants:`).
VARIANTS: dict[str, dict] = {
    "strided": {"downsample": "strided"},
    "max": {"downsample": "max"},
    "avg": {"downsample": "avg"},
    "blur": {"downsample": "blur"},
    "spectral": {"downsample": "spectral"},
    "diffstride": {"downsample": "diffstride"},
    # The hybrid paper's "Residual Block -> Spectral Pooling -> Global Average Pooling", two
    # readings in the pre-activation net: before the head's BN -> ReLU, or right before GAP
    # (where it only rescales the pooled features), and the control that only rescales.
    "hybrid": {"downsample": "diffstride", "head_pool": "spectral", "head_pool_at": "before_norm"},
    "hybrid-after-norm": {"downsample": "diffstride", "head_pool": "spectral", "head_pool_at": "after_norm"},
    "scale-control": {"downsample": "diffstride", "head_pool": "scale", "head_pool_at": "after_norm"},
    # "Spectral pooling one level above global average pooling during convolutions":
    # spectral pooling at layer4's downsampling site, DiffStride at the others.
    "hybrid-layer4": {"downsample": "diffstride", "site_kinds": {"layer4": "spectral"}},
}
