"""The bridge to the official Keras code (google-research/diffstride): its weights in, and
out, of the PyTorch models of `hybrid.nn`.

    load_keras_weights(model, weights)   # weights: arrays in the Keras `model.weights` order
    to_keras_weights(model)              # the inverse
    keras_weight_paths(model)            # readable names, e.g. block2.layer0.bns1.gamma

The Keras order of an official `Resnet` (both releases): the layers in sequence (stem
convolution, the stem's pooling, [postact: the stem's batch norm], the residual layers,
[preact: the head's batch norm], the dense layer); inside a residual layer its trainable
weights first, then its non-trainable ones, each in the order the layer creates its
sublayers (pooling, strided conv, unstrided conv, the two batch norms, the shortcut conv
[and postact: the shortcut's batch norm]). A batch norm's four arrays are therefore not
adjacent inside a residual layer. DiffStride's `strides` is trainable; fixed spectral
pooling has a non-trainable `strides` weight too, which the model holds as a constant:
it is checked, not loaded.

Layouts: convolution kernels HWIO (PyTorch OIHW), the dense kernel (in, out) (PyTorch
(out, in)), batch norm gamma, beta, moving mean, moving variance.

Used by the tests and by users comparing with official checkpoints; never by training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hybrid.nn.blocks import PostActBlock
from hybrid.nn.layers import DiffStride2d, SpectralPool2d
from hybrid.nn.resnet import ResNet

BN_TRAINABLE = (("gamma", "weight"), ("beta", "bias"))
BN_MOVING = (("moving_mean", "running_mean"), ("moving_variance", "running_var"))


@dataclass(frozen=True)
class KerasWeight:
    """One entry of the Keras weight list: its readable path, its kind, and the PyTorch
    tensor it corresponds to (for a fixed spectral stride, the layer's constant strides)."""

    path: str
    kind: str  # conv_kernel, dense_kernel, dense_bias, bn_gamma, bn_beta, bn_moving_mean, bn_moving_variance, strides, fixed_strides
    target: torch.Tensor

    @property
    def keras_shape(self) -> tuple[int, ...]:
        shape = tuple(self.target.shape)
        if self.kind == "conv_kernel":
            out, cin, kh, kw = shape
            return (kh, kw, cin, out)
        if self.kind == "dense_kernel":
            return shape[::-1]
        return shape

    def to_torch(self, array: np.ndarray) -> torch.Tensor:
        array = np.asarray(array, dtype=np.float32)
        if self.kind == "conv_kernel":
            array = array.transpose(3, 2, 0, 1)
        elif self.kind == "dense_kernel":
            array = array.T
        return torch.from_numpy(np.ascontiguousarray(array))

    def to_keras(self) -> np.ndarray:
        array = self.target.detach().cpu().float().numpy()
        if self.kind == "conv_kernel":
            return array.transpose(2, 3, 1, 0).copy()
        if self.kind == "dense_kernel":
            return array.T.copy()
        return array.copy()


def _bn(path: str, bn: nn.BatchNorm2d, part: tuple) -> list[KerasWeight]:
    return [KerasWeight(f"{path}.{keras}", f"bn_{keras}", getattr(bn, torch_name)) for keras, torch_name in part]


def _pooling(path: str, pool: nn.Module | None, trainable: bool) -> list[KerasWeight]:
    """The pooling layer's `strides` weight, in the trainable or the non-trainable part."""
    if isinstance(pool, DiffStride2d) and trainable:
        return [KerasWeight(f"{path}.strides", "strides", pool.strides)]
    if isinstance(pool, SpectralPool2d) and not trainable:
        return [KerasWeight(f"{path}.strides", "fixed_strides", torch.tensor(pool.stride))]
    return []


def _residual_layer(path: str, layer: nn.Module) -> list[KerasWeight]:
    postact = isinstance(layer, PostActBlock)
    # Keras' sublayer names -> ours: bns0 is the first batch norm (pre-act: on the layer's
    # input; post-act: after the pooling), bns1 the second.
    bns = (layer.bn1, layer.bn2)
    trainable = _pooling(f"{path}.pooling", layer.pool, True)
    trainable.append(KerasWeight(f"{path}.strided_conv.kernel", "conv_kernel", layer.conv1.weight))
    trainable.append(KerasWeight(f"{path}.unstrided_conv.kernel", "conv_kernel", layer.conv2.weight))
    for i, bn in enumerate(bns):
        trainable += _bn(f"{path}.bns{i}", bn, BN_TRAINABLE)
    if layer.shortcut_conv is not None:
        trainable.append(KerasWeight(f"{path}.shortcut_conv.kernel", "conv_kernel", layer.shortcut_conv.weight))
        if postact:
            trainable += _bn(f"{path}.shortcut_bn", layer.shortcut_bn, BN_TRAINABLE)
    moving = _pooling(f"{path}.pooling", layer.pool, False)
    for i, bn in enumerate(bns):
        moving += _bn(f"{path}.bns{i}", bn, BN_MOVING)
    if postact and layer.shortcut_bn is not None:
        moving += _bn(f"{path}.shortcut_bn", layer.shortcut_bn, BN_MOVING)
    return trainable + moving


def keras_weights(model: ResNet) -> list[KerasWeight]:
    """The model's tensors in the order of the official Keras model's `weights`."""
    out = [KerasWeight("stem.conv.kernel", "conv_kernel", model.stem_conv.weight)]
    out += _pooling("stem.pooling", model.stem_pool, True) + _pooling("stem.pooling", model.stem_pool, False)
    if model.stem_bn is not None:
        out += _bn("stem.bn", model.stem_bn, BN_TRAINABLE + BN_MOVING)
    for b, stage in enumerate(model.stages(), start=1):
        for i, layer in enumerate(stage):
            out += _residual_layer(f"block{b}.layer{i}", layer)
    head_pool = [] if model.head_pool is None else _pooling("head_pool", model.head_pool, False)
    if model.config.head_pool_at == "before_norm":
        out += head_pool
    if model.head_bn is not None:
        out += _bn("final_bn", model.head_bn, BN_TRAINABLE + BN_MOVING)
    if model.config.head_pool_at == "after_norm":
        out += head_pool
    out += [KerasWeight("fc.kernel", "dense_kernel", model.fc.weight),
            KerasWeight("fc.bias", "dense_bias", model.fc.bias)]
    return out


def keras_weight_paths(model: ResNet) -> list[str]:
    return [w.path for w in keras_weights(model)]


def load_keras_weights(model: ResNet, weights: Sequence[np.ndarray]) -> ResNet:
    """Copy official Keras weights (arrays in the Keras `model.weights` order) into `model`,
    which must be built with the same architecture, block, pooling kinds, strides and
    number of classes. Every shape is checked before anything is copied; a fixed spectral
    stride must equal the model's. Returns the model."""
    slots = keras_weights(model)
    weights = list(weights)
    if len(weights) != len(slots):
        raise ValueError(
            f"the model ({model.config.arch}, {model.config.block}) has {len(slots)} Keras weights, got {len(weights)}: "
            "build it with the official model's architecture, block, pooling at each site and head "
            f"(its first weights: {', '.join(keras_weight_paths(model)[:4])}, ...)"
        )
    converted = []
    for i, (slot, array) in enumerate(zip(slots, weights)):
        shape = tuple(np.shape(array))
        if shape != slot.keras_shape:
            raise ValueError(f"Keras weight {i} ({slot.path}, {slot.kind}) has shape {shape}; the model expects {slot.keras_shape}")
        value = slot.to_torch(array)
        if slot.kind == "fixed_strides" and not torch.allclose(value, slot.target):
            raise ValueError(f"Keras weight {i} ({slot.path}): fixed spectral strides {value.tolist()}, the model's are {slot.target.tolist()}")
        converted.append(value)
    with torch.no_grad():
        for slot, value in zip(slots, converted):
            if slot.kind != "fixed_strides":
                slot.target.copy_(value.to(slot.target.device, slot.target.dtype))
    return model


def to_keras_weights(model: ResNet) -> list[np.ndarray]:
    """The model's weights as the official Keras model lists them (float32 arrays)."""
    return [slot.to_keras() for slot in keras_weights(model)]
