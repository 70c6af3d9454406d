"""`model.stem`: the official 3x3 stem (cifar) and torchvision's ResNet stem (imagenet) or,
at a stem site of another kind, its equivalent (7x7 at stride 1, one layer of stride 4);
every downsampling kind and the hybrid head at every input size, odd ones included."""

import pytest
import torch

from hybrid.nn import ModelConfig, resnet, resnet56
from hybrid.nn.layers import DOWNSAMPLE_KINDS, DiffStride2d
from hybrid.train.config import parse_run_config

KINDS = list(DOWNSAMPLE_KINDS)
BLOCKS = ["preact", "postact"]


def ceil_div(n: int, d: int) -> int:
    return -(-n // d)


def expected_stem_size(stem: str, kind: str, size: int) -> int:
    """The stem's output side for a square input of `size` pixels."""
    if stem == "cifar":  # stride 1 at the arch's default; DiffStride raised to size / (size - R)
        return {"diffstride": None}.get(kind, size)
    return {
        "strided": ceil_div(ceil_div(size, 2), 2),  # conv 7x7/2 pad 3, then max pool 3x3/2 pad 1
        "max": ceil_div(size, 4),  # ceil_mode keeps the last partial window
        "avg": ceil_div(size, 4),
        "blur": (size - 1) // 4 + 1,  # filter 4, padded by 3 in all
        "spectral": max(2, (size // 4) - (size // 4) % 2),  # floor(size / 4), made even
        "diffstride": None,  # cut-off size / 4 plus the window's ramp: DiffStride's own rule
    }[kind]


def forward_backward(model, size: int, batch: int = 2) -> torch.Tensor:
    x = torch.randn(batch, model.config.in_channels, size, size)
    y = model(x)
    assert y.shape == (batch, model.config.num_classes) and torch.isfinite(y).all()
    y.square().mean().backward()
    starved = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or not p.grad.any()]
    assert not starved, f"parameters without a gradient: {starved}"
    return y


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("block", BLOCKS)
def test_every_kind_at_every_site_trains_at_any_size(stem, kind, block):
    torch.manual_seed(0)
    for size in (32, 33, 57, 64):
        model = resnet(width=4, stem=stem, block=block, downsample=kind)
        forward_backward(model, size)
        side = model.stem(torch.randn(2, 3, size, size)).shape[-1]
        expected = expected_stem_size(stem, kind, size)
        if expected is None:  # DiffStride: the stem layer's own output size at its stride
            layer = DiffStride2d(model.stem_pool.current_strides(), model.config.smoothness)
            expected = layer(torch.zeros(1, 1, size, size)).shape[-1]
        assert side == expected, (size, side, expected)


@pytest.mark.parametrize("kind", ["strided", "diffstride"])
def test_imagenet_stem_at_224(kind):
    torch.manual_seed(0)
    model = resnet(width=4, stem="imagenet", downsample=kind, block="postact", num_classes=5)
    forward_backward(model, 224)
    if kind == "strided":  # 224 -> 112 -> 56, then layer2..4 halve it: 7
        assert model.stem(torch.randn(2, 3, 224, 224)).shape[-2:] == (56, 56)
        assert model.eval().features(torch.randn(1, 3, 224, 224)).shape[-2:] == (7, 7)
    else:  # one DiffStride layer starts at the stem's whole reduction, and learns
        assert model.learned_strides()["stem_pool"] == [4.0, 4.0]
        assert model.stem_pool.strides.grad.abs().sum() > 0


def test_the_imagenet_stem_is_torchvision_s():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    ours = resnet(stem="imagenet", block="postact", num_classes=1000).eval()
    reference = torchvision.models.resnet18().eval()
    # Same layers as torchvision's resnet18: same parameter count and convolution FLOPs at 224.
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == 11_689_512
    assert ours.cost((224, 224))["conv_flops"] == 3_628_146_688  # torchvision's, by FlopCounterMode
    # And the same stem, value for value: conv -> BN -> ReLU -> max pool.
    ours.stem_conv.load_state_dict(reference.conv1.state_dict())
    ours.stem_bn.load_state_dict(reference.bn1.state_dict())
    x = torch.randn(2, 3, 64, 64)
    expected = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
    torch.testing.assert_close(ours.stem(x), expected)


def test_imagenet_stem_layouts():
    preact = resnet(width=8, stem="imagenet")
    assert preact.stem_conv.kernel_size == (7, 7) and preact.stem_conv.stride == (2, 2)
    assert preact.stem_conv.padding == (3, 3) and preact.stem_bn is None and preact.stem_pool is None
    assert preact.stem_max_pool.kernel_size == 3 and preact.stem_max_pool.stride == 2
    spectral = resnet(width=8, stem="imagenet", downsample="spectral")
    assert spectral.stem_conv.stride == (1, 1) and spectral.stem_conv.padding == (3, 3)
    assert spectral.stem_pool.stride == (4.0, 4.0) and spectral.stem_max_pool is None
    blur = resnet(width=8, stem="imagenet", block="postact", downsample="blur")
    assert blur.stem_pool.stride == (4, 4) and blur.stem_bn is not None and blur.stem_max_pool is None
    # Only the stem site's kind picks the stem: DiffStride elsewhere leaves torchvision's.
    mixed = resnet(width=8, stem="imagenet", downsample="diffstride", site_kinds={"stem": "strided"})
    assert mixed.stem_max_pool is not None and "stem_pool" not in mixed.learned_strides()
    forward_backward(mixed, 33)


def test_resnet56_takes_the_imagenet_stem():
    model = resnet56(width=4, stem="imagenet", downsample="diffstride")
    assert set(model.learned_strides()) == {"stem_pool", "layer1.0.pool", "layer2.0.pool", "layer3.0.pool"}
    forward_backward(model, 57)


HEADS = [  # (block, head): the post-activation head has no norm, so its pool sits after_norm
    ("preact", {"head_pool": "spectral", "head_pool_at": "before_norm"}),
    ("preact", {"head_pool": "spectral", "head_pool_at": "after_norm"}),
    ("preact", {"head_pool": "scale", "head_pool_at": "after_norm"}),
    ("postact", {"head_pool": "spectral", "head_pool_at": "after_norm"}),
    ("postact", {"head_pool": "scale", "head_pool_at": "after_norm"}),
]


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("block, head", HEADS)
def test_hybrid_head_at_odd_sizes(stem, block, head):
    torch.manual_seed(0)
    for size in (33, 57, 31):
        model = resnet(width=4, stem=stem, block=block, downsample="diffstride", **head)
        forward_backward(model, size)
        if head["head_pool"] == "scale":
            assert torch.isfinite(model.head_pool.scale) and model.head_pool.scale >= 1


def test_cost_counts_the_imagenet_stem():
    strided = resnet(width=8, stem="imagenet").cost((64, 64))
    stem_conv = 2 * 32 * 32 * 8 * 3 * 7 * 7  # 7x7 at stride 2: a 32x32 map of 8 filters
    cifar_body = resnet(width=8, init_stride=[1, 1, 2, 2, 2]).cost((16, 16))  # the same body on 16 px
    cifar_stem = 2 * 16 * 16 * 8 * 3 * 3 * 3
    assert strided["conv_flops"] == stem_conv + cifar_body["conv_flops"] - cifar_stem
    spectral = resnet(width=8, stem="imagenet", downsample="spectral").cost((64, 64))
    assert spectral["fft_flops"] > 0 and spectral["conv_flops"] > strided["conv_flops"]  # the 7x7 at stride 1
    diffstride = resnet(width=8, stem="imagenet", downsample="diffstride").cost((57, 57))
    assert all(v > 0 for k, v in diffstride.items() if k != "final_map") and min(diffstride["final_map"]) > 0


def test_the_cifar_stem_is_today_s_network():
    assert ModelConfig(stem="cifar") == ModelConfig() and ModelConfig().stem == "cifar"
    for kind in KINDS:
        for block in BLOCKS:
            torch.manual_seed(0)
            today = resnet(width=8, block=block, downsample=kind)
            torch.manual_seed(0)
            explicit = resnet(width=8, block=block, downsample=kind, stem="cifar")
            assert str(explicit) == str(today) and explicit.stem_max_pool is None
            shapes = {k: v.shape for k, v in today.state_dict().items()}
            assert {k: v.shape for k, v in explicit.state_dict().items()} == shapes
            x = torch.randn(2, 3, 33, 33)
            torch.testing.assert_close(explicit(x), today(x))


@pytest.mark.parametrize("init_stride", [[2, 1, 2, 2, 2], [[1, 2], 1, 2, 2, 2], [1.5, 1, 2, 2, 2]])
def test_imagenet_stem_fixes_the_stem_stride(init_stride):
    message = r"model\.init_stride: model\.stem imagenet reduces by a fixed 4 .* its stem entry must be 1, got "
    with pytest.raises(ValueError, match=message):
        ModelConfig(stem="imagenet", init_stride=init_stride)
    with pytest.raises(ValueError, match=message):
        parse_run_config({"model": {"stem": "imagenet", "downsample": "diffstride", "init_stride": init_stride}})
    assert ModelConfig(stem="imagenet", init_stride=[[1, 1], 1, 3, 2, 3]).init_stride == (1.0, 1.0, 3.0, 2.0, 3.0)
    assert ModelConfig(init_stride=init_stride).stem == "cifar"  # the cifar stem strides as told
    with pytest.raises(ValueError, match=r"model\.stem: input should be 'cifar' or 'imagenet'"):
        ModelConfig(stem="tiny")
