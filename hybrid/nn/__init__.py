"""What is trained: the layers and the official DiffStride ResNets (ResNet-18, ResNet-56;
the HEAD's pre-activation layer or the first release's post-activation one), with any
downsampling kind at any site and the hybrid paper's spectral head.

- `layers`: DiffStride, spectral pooling, blur pooling, strided convolution, and
  `build_downsample`, the string-keyed factory a config picks them by;
- `options`: `ModelConfig`, the architectures (`ARCHS`) and the named variants;
- `blocks`: the residual layers, TensorFlow's 'same' convolution, the scale-only head;
- `resnet`: the network, its builders and its cost;
- `flops`: a configuration's FLOPs and feature-map sizes, without building the network;
- `official`: the bridge to official Keras weights (tests and users, never training);
- `summary`: every variant's parameters, cost and maps (`python -m hybrid.nn.summary`).
"""

from hybrid.nn.blocks import BLOCKS, Conv2dSame, PostActBlock, PreActBlock, ScaleHead, same_padding
from hybrid.nn.layers import BlurPool2d, ConvStride, DiffStride2d, SpectralPool2d, build_downsample
from hybrid.nn.options import ARCHS, POOR_STRIDES, VARIANTS, Arch, ModelConfig
from hybrid.nn.resnet import ResNet, build_variant, he_normal_, resnet, resnet18, resnet56

__all__ = [
    "ARCHS", "BLOCKS", "POOR_STRIDES", "VARIANTS", "Arch", "BlurPool2d", "Conv2dSame", "ConvStride",
    "DiffStride2d", "ModelConfig", "PostActBlock", "PreActBlock", "ResNet", "ScaleHead", "SpectralPool2d",
    "build_downsample", "build_variant", "he_normal_", "resnet", "resnet18", "resnet56", "same_padding",
]
