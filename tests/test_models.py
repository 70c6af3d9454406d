"""The ResNet-18 family: shapes, gradients, the official architecture, trainability."""

import pytest
import torch
import torch.nn.functional as F

from hybrid.layers import DiffStride2d, SpectralPool2d
from hybrid.models import POOR_STRIDES, VARIANTS, ModelConfig, build_variant, resnet18


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(32, 32), (31, 29), (17, 23)])
def test_every_variant_gives_logits_on_any_size(variant, size):
    model = build_variant(variant, width=8, num_classes=7)
    assert model(torch.randn(3, 3, *size)).shape == (3, 7)


def test_official_baseline_parameter_count():
    # The CIFAR ResNet-18 of the official code: 11,173,962 parameters with 10 classes.
    model = resnet18()
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    # DiffStride adds two stride parameters per downsampling layer, nothing else.
    diffstride = build_variant("diffstride")
    assert sum(p.numel() for p in diffstride.parameters()) == 11_173_962 + 2 * 4


@pytest.mark.parametrize("variant", ["diffstride", "hybrid"])
def test_every_stride_receives_a_gradient(variant):
    model = build_variant(variant, width=8)
    assert len(model.stride_parameters()) == 4
    F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.arange(4)).backward()
    for name, layer in model.diffstride_layers().items():
        grad = layer.strides.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_default_placement_is_the_official_one():
    model = build_variant("diffstride", width=8)
    assert set(model.learned_strides()) == {"stem_pool", "layer2.0.pool", "layer3.0.pool", "layer4.0.pool"}
    # The stem starts at stride 1, raised on the first pass to the minimum 32 / (32 - R).
    model(torch.randn(1, 3, 32, 32))
    assert model.learned_strides()["stem_pool"] == pytest.approx([32 / 28, 32 / 28])
    assert model.learned_strides()["layer3.0.pool"] == [2.0, 2.0]


def test_downsample_at_keeps_strided_convs_elsewhere():
    model = resnet18(width=8, downsample="diffstride", downsample_at=["layer3"])
    assert list(model.learned_strides()) == ["layer3.0.pool"]
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].pool is None
    assert model.layer3[0].conv1.stride == (1, 1)
    assert model.stem_pool is None and model.stem_conv.stride == (1, 1)


def test_poor_init_strides_shrink_the_maps_accordingly():
    model = resnet18(width=8, init_stride=POOR_STRIDES)
    # 32 -> layer2 stride 3 -> 11 -> stride 2 -> 6 -> stride 3 -> 2
    assert model.features(torch.randn(1, 3, 32, 32)).shape[-2:] == (2, 2)
    spectral = resnet18(width=8, downsample="spectral", init_stride=POOR_STRIDES)
    assert spectral.features(torch.randn(1, 3, 32, 32)).shape[-2:] == (2, 2)


def test_hybrid_head_spectral_pool_only_rescales_the_pooled_features():
    # The mean of an inverse DFT is its DC coefficient over the output size, and spectral
    # pooling keeps the DC coefficient: pooling spectrally right before global average
    # pooling multiplies the pooled features by (H * W) / (h * w). A finding worth knowing
    # when reading the hybrid paper's gain.
    torch.manual_seed(0)
    model = build_variant("hybrid", width=8).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.head_pool, head = None, model.head_pool
        before = model.features(x)
        model.head_pool = head
        after = head(before)
        scale = before.shape[-2] * before.shape[-1] / (after.shape[-2] * after.shape[-1])
        torch.testing.assert_close(after.mean(dim=(-2, -1)), before.mean(dim=(-2, -1)) * scale, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(x), model.fc(before.mean(dim=(-2, -1)) * scale), atol=1e-4, rtol=1e-4)
    assert isinstance(model.head_pool, SpectralPool2d)


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="unknown model option.*'depth'"):
        resnet18(depth=34)
    with pytest.raises(ValueError, match="model.downsample_at.*'layer1'"):
        resnet18(downsample_at=["layer1"])
    with pytest.raises(ValueError, match="model.init_stride.*layer1"):
        resnet18(init_stride=(1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="model.downsample: unknown kind 'fft'"):
        ModelConfig(downsample="fft")
    with pytest.raises(ValueError, match="unknown variant 'foo'"):
        build_variant("foo")


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


def test_cost_of_strided_baseline_matches_hand_count():
    model = resnet18(width=8, num_classes=10)
    # Dense FLOPs: 2 * MACs of every conv and of the classifier, counted by hand.
    f = [8, 8, 16, 32, 64]
    size = {"stem": 32, "layer1": 32, "layer2": 16, "layer3": 8, "layer4": 4}
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
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        model.constrain_strides()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    if variant in ("diffstride", "hybrid"):
        assert any(isinstance(m, DiffStride2d) for m in model.modules())
