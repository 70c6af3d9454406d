"""The official ResNets: both residual layers, both architectures, per-site kinds, the
hybrid heads, shapes, gradients and trainability. Whole-network parity with the official
TensorFlow code is tests/test_official.py."""

import pytest
import torch
import torch.nn.functional as F

from hybrid.nn import (
    POOR_STRIDES,
    VARIANTS,
    Conv2dSame,
    ModelConfig,
    PostActBlock,
    PreActBlock,
    ScaleHead,
    build_variant,
    resnet,
    resnet56,
    same_padding,
)
from hybrid.nn.layers import DiffStride2d, SpectralPool2d


def _postact(variant: str) -> dict:
    head = VARIANTS[variant].get("head_pool", "none") != "none"
    return {"block": "postact", **({"head_pool_at": "after_norm"} if head else {})}


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("block", ["preact", "postact"])
@pytest.mark.parametrize("size", [(32, 32), (31, 29), (17, 23)])
def test_every_variant_gives_logits_on_any_size(variant, block, size):
    options = _postact(variant) if block == "postact" else {}
    model = build_variant(variant, width=8, num_classes=7, **options)
    assert model(torch.randn(3, 3, *size)).shape == (3, 7)


def test_official_parameter_counts():
    # google-research/diffstride, counted by the official code (tests/fixtures/official_resnet.README.md).
    assert n_params(resnet()) == 11_172_170  # HEAD, pre-activation, strided, 10 classes
    assert n_params(resnet(num_classes=100)) == 11_218_340
    assert n_params(resnet(block="postact")) == 11_173_962  # the first release (1f9e8f4)
    # DiffStride adds one (vertical, horizontal) stride per downsampling layer, nothing else.
    assert n_params(build_variant("diffstride")) == 11_172_170 + 2 * 4
    assert n_params(build_variant("diffstride", shared_stride=True)) == 11_172_170 + 4


def test_tf_same_padding_pads_the_smaller_half_first():
    assert same_padding(32, 3, 2) == (0, 1) and same_padding(31, 3, 2) == (1, 1)
    assert same_padding(32, 3, 3) == (0, 1) and same_padding(32, 3, 1) == (1, 1)
    torch.manual_seed(0)
    conv = Conv2dSame(2, 4, 3, stride=2)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)  # TensorFlow's 'same'
    torch.testing.assert_close(conv(x), expected)
    assert not torch.allclose(conv(x), F.conv2d(x, conv.weight, stride=2, padding=1))  # PyTorch's symmetric
    assert conv(torch.randn(1, 2, 7, 9)).shape[-2:] == (4, 5)  # ceil(size / stride)


def test_the_pre_activation_layer_is_the_official_head_s():
    model = resnet(width=8, downsample="diffstride")
    assert model.stem_bn is None and model.head_bn is not None  # stem: conv -> pool; head: BN -> ReLU
    layer = model.layer2[0]
    assert isinstance(layer, PreActBlock) and layer.bn1.num_features == 8 and layer.shortcut_conv.in_channels == 8
    assert not hasattr(layer, "shortcut_bn") or layer.shortcut_bn is None
    # The shortcut takes the raw input (not the pre-activated one), and nothing follows the sum.
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16)
    y, s = layer.conv1(F.relu(layer.bn1(x))), layer.shortcut_conv(x)
    y, s = layer.pool(y), layer.pool(s)
    torch.testing.assert_close(layer(x), layer.conv2(F.relu(layer.bn2(y))) + s)
    assert (layer(x) < 0).any()
    assert all(isinstance(m, PreActBlock) and m.shortcut_conv is None for m in (*model.layer1, model.layer2[1]))


def test_the_post_activation_layer_is_the_first_release_s():
    model = resnet(width=8, block="postact")
    assert model.stem_bn is not None and model.head_bn is None
    layer = model.layer2[0]
    assert isinstance(layer, PostActBlock) and layer.shortcut_bn is not None
    assert layer.conv1.stride == (2, 2) and layer.pool is None  # strided: the convolutions stride
    assert (layer(torch.randn(2, 8, 16, 16)) >= 0).all()  # ReLU after the sum


def test_default_placement_and_the_stem_s_raised_stride():
    model = build_variant("diffstride", width=8)
    assert set(model.learned_strides()) == {"stem_pool", "layer2.0.pool", "layer3.0.pool", "layer4.0.pool"}
    model(torch.randn(1, 3, 32, 32))  # the stem starts at 1, raised to the minimum 32 / (32 - R)
    assert model.learned_strides()["stem_pool"] == pytest.approx([32 / 28, 32 / 28])
    assert model.learned_strides()["layer3.0.pool"] == [2.0, 2.0]


def test_downsample_at_keeps_strided_convs_elsewhere():
    model = resnet(width=8, downsample="diffstride", downsample_at=["layer3"])
    assert list(model.learned_strides()) == ["layer3.0.pool"]
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].shortcut_conv.stride == (2, 2)
    assert model.layer2[0].pool is None and model.layer3[0].conv1.stride == (1, 1)
    assert model.stem_pool is None and model.stem_conv.stride == (1, 1)


def test_site_kinds_set_single_sites():
    model = build_variant("hybrid-layer4", width=8)
    assert isinstance(model.layer4[0].pool, SpectralPool2d)
    assert list(model.learned_strides()) == ["stem_pool", "layer2.0.pool", "layer3.0.pool"]
    assert model.head_pool is None
    mixed = resnet(width=8, downsample="diffstride", downsample_at=["layer2"], site_kinds={"stem": "spectral"})
    assert isinstance(mixed.stem_pool, SpectralPool2d) and list(mixed.learned_strides()) == ["layer2.0.pool"]
    assert mixed.config.site_kind("layer4") == "strided"


def test_init_strides_take_numbers_and_pairs():
    model = resnet(width=8, downsample="diffstride", init_stride=[1.5, 1, [1.7, 2.3], 2.5, [2.9, 1.6]])
    strides = {name: m.strides.tolist() for name, m in model.diffstride_layers().items()}
    assert strides == {"stem_pool": [1.5, 1.5], "layer2.0.pool": pytest.approx([1.7, 2.3]),
                       "layer3.0.pool": [2.5, 2.5], "layer4.0.pool": pytest.approx([2.9, 1.6])}
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # A pair of equal strides is that number: the same config, the same run id.
    assert ModelConfig(init_stride=[1, 1, [2, 2], 2, 2]) == ModelConfig()
    assert resnet(width=8, init_stride=[1, 1, [2, 1], 2, 2]).layer2[0].conv1.stride == (2, 1)


def test_poor_init_strides_shrink_the_maps_accordingly():
    model = resnet(width=8, init_stride=POOR_STRIDES)
    # 32 -> layer2 stride 3 -> 11 -> stride 2 -> 6 -> stride 3 -> 2
    assert model.features(torch.randn(1, 3, 32, 32)).shape[-2:] == (2, 2)
    spectral = resnet(width=8, downsample="spectral", init_stride=POOR_STRIDES)
    assert spectral.features(torch.randn(1, 3, 32, 32)).shape[-2:] == (2, 2)


def test_resnet56_is_the_official_generic_resnet():
    model = resnet56(downsample="diffstride")
    assert model.config.filters() == [16, 16, 32, 64] and model.config.init_stride == (1, 1, 2, 2)
    assert [len(stage) for stage in model.stages()] == [9, 9, 9]
    # No identity-only stage: layer1 projects 16 -> 16 and is a site too.
    assert set(model.learned_strides()) == {"stem_pool", "layer1.0.pool", "layer2.0.pool", "layer3.0.pool"}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 56  # 55 3x3 convolutions and the dense layer
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_config_errors_name_the_option_and_the_arch():
    with pytest.raises(ValueError, match="unknown model option.*'depth'"):
        resnet(depth=34)
    with pytest.raises(ValueError, match=r"model\.downsample_at: \['layer1'\] is not a site of resnet18"):
        resnet(downsample_at=["layer1"])
    with pytest.raises(ValueError, match=r"model\.site_kinds: \['layer4'\] is not a site of resnet56"):
        resnet56(site_kinds={"layer4": "spectral"})
    with pytest.raises(ValueError, match=r"model\.init_stride: resnet56 needs 4 strides \(stem, layer1, layer2, layer3\)"):
        resnet56(init_stride=[1, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="model.init_stride: layer1 of resnet18 is made of identity layers"):
        resnet(init_stride=(1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match=r"model\.init_stride\[2\]: input should be greater than or equal to 1, got 0\.5"):
        resnet(init_stride=(1, 1, 0.5, 2, 2))
    with pytest.raises(ValueError, match=r"model\.init_stride\[1\]: tuple should have at most 2 items"):
        resnet(init_stride=(1, (1, 1, 1), 2, 2, 2))
    with pytest.raises(ValueError, match="model.downsample: input should be 'strided', .*, got 'fft'"):
        ModelConfig(downsample="fft")
    with pytest.raises(ValueError, match="model.site_kinds.layer4: input should be 'strided', .*, got 'fft'"):
        ModelConfig(site_kinds={"layer4": "fft"})
    with pytest.raises(ValueError, match="model.block: input should be 'preact' or 'postact', got 'resnext'"):
        ModelConfig(block="resnext")
    with pytest.raises(ValueError, match="post-activation net has no norm in its head.*after_norm"):
        ModelConfig(block="postact", head_pool="spectral")
    with pytest.raises(ValueError, match="scale before the head's batch norm is a no-op"):
        ModelConfig(head_pool="scale", head_pool_at="before_norm")
    with pytest.raises(ValueError, match="unknown variant 'foo'"):
        build_variant("foo")


def test_head_options_without_a_head_pool_do_not_split_configs():
    assert ModelConfig(head_pool_at="after_norm", head_stride=3) == ModelConfig()
    # Configs are values: equal ones hash equal, a dict field included.
    assert len({ModelConfig(site_kinds={"layer4": "spectral"}), ModelConfig(site_kinds={"layer4": "spectral"})}) == 1


def _features_before_head(model, x):
    head = model.head_pool
    model.head_pool = None
    try:
        x = model.stem_conv(x)
        x = model.stem_pool(x) if model.stem_pool is not None else x
        for stage in model.stages():
            x = stage(x)
        return x
    finally:
        model.head_pool = head


def test_after_norm_head_only_rescales_before_norm_head_does_not():
    # The mean of an inverse DFT is its DC coefficient over the output size, and spectral
    # pooling keeps the DC coefficient: right before global average pooling it multiplies the
    # pooled features by (H * W) / (h * w). Before the head's BN -> ReLU it does not.
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    after = build_variant("hybrid-after-norm", width=8).eval()
    before = build_variant("hybrid", width=8).eval()
    before.load_state_dict(after.state_dict())
    with torch.no_grad():
        for bn in (after.head_bn, before.head_bn):  # a non-trivial head norm
            bn.running_mean.uniform_(-0.5, 0.5), bn.bias.uniform_(-0.5, 0.5)
        before.load_state_dict(after.state_dict())
        body = _features_before_head(after, x)
        activated = F.relu(after.head_bn(body))
        pooled = after.features(x)
        scale = body.shape[-2] * body.shape[-1] / (pooled.shape[-2] * pooled.shape[-1])
        torch.testing.assert_close(pooled.mean((-2, -1)), activated.mean((-2, -1)) * scale, atol=1e-4, rtol=1e-4)
        ratio = before.features(x).mean((-2, -1)) / activated.mean((-2, -1)).clamp_min(1e-6)
        assert ratio.std() > 0.05  # per-channel ratios differ: not a rescaling


def test_scale_control_is_the_after_norm_head_without_the_fft():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    control = build_variant("scale-control", width=8).eval()
    hybrid = build_variant("hybrid-after-norm", width=8).eval()
    hybrid.load_state_dict(control.state_dict(), strict=False)
    assert isinstance(control.head_pool, ScaleHead) and not control.head_pool.scale.isfinite()
    with torch.no_grad():
        torch.testing.assert_close(control(x), hybrid(x), atol=1e-4, rtol=1e-4)
    assert control.head_pool.scale.item() == pytest.approx(18 * 18 / (8 * 9))  # 18x18 map -> 8x9
    # The constant is fixed at its first value, and a checkpoint keeps it.
    fresh = build_variant("scale-control", width=8)
    fresh.load_state_dict(control.state_dict())
    fresh(torch.randn(1, 3, 64, 64))
    assert fresh.head_pool.scale.item() == pytest.approx(18 * 18 / (8 * 9))


@pytest.mark.parametrize("variant", ["diffstride", "hybrid", "hybrid-after-norm", "scale-control", "hybrid-layer4"])
def test_every_stride_receives_a_gradient(variant):
    model = build_variant(variant, width=8)
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4)).backward()
    assert model.diffstride_layers()
    for name, layer in model.diffstride_layers().items():
        grad = layer.strides.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_cost_follows_the_learned_strides():
    model = build_variant("diffstride", width=8)
    before = model.cost()
    assert before["fft_flops"] > 0 and before["conv_flops"] > 0 and before["activation_bytes"] > 0
    with torch.no_grad():
        for p in model.stride_parameters():
            p.fill_(3.0)
    after = model.cost()
    assert after["flops"] < before["flops"] and after["activation_bytes"] < before["activation_bytes"]
    assert model.training  # cost() restores the mode


@pytest.mark.parametrize("block", ["preact", "postact"])
def test_cost_of_strided_baseline_matches_hand_count(block):
    model = resnet(width=8, num_classes=10, block=block)
    # Dense FLOPs: 2 * MACs of every conv and of the classifier, counted by hand.
    f = [8, 8, 16, 32, 64]
    size = {"layer2": 16, "layer3": 8, "layer4": 4}
    macs = 3 * 3 * 3 * f[0] * 32 * 32
    macs += 4 * 9 * f[1] * f[1] * 32 * 32
    for i, name in enumerate(["layer2", "layer3", "layer4"], start=2):
        s = size[name] ** 2
        macs += 9 * f[i - 1] * f[i] * s + 3 * 9 * f[i] * f[i] * s + f[i - 1] * f[i] * s
    macs += f[4] * 10
    assert model.cost()["conv_flops"] == 2 * macs


def test_constrain_strides_projects_onto_limits():
    model = build_variant("diffstride", width=8)
    for layer in model.diffstride_layers().values():
        layer.upper_limit = 2.5
    with torch.no_grad():
        model.stride_parameters()[0].fill_(9.0)
    model.constrain_strides()
    assert model.stride_parameters()[0].tolist() == [2.5, 2.5]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_few_dozen_steps_fit_one_batch(variant):
    torch.manual_seed(0)
    model = build_variant(variant, width=8)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        model.constrain_strides()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    if VARIANTS[variant].get("downsample") == "diffstride":
        assert any(isinstance(m, DiffStride2d) for m in model.modules())
