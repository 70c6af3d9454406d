"""The official DiffStride ResNets (ResNet-18, ResNet-56; the HEAD's pre-activation layer
or the first release's post-activation one), with any downsampling kind at any site and
the hybrid paper's spectral head.

- `options`: `ModelConfig`, the architectures (`ARCHS`) and the named variants;
- `blocks`: the residual layers, TensorFlow's 'same' convolution, the scale-only head;
- `resnet`: the network, its builders and its cost.
"""

from hybrid.models.blocks import BLOCKS, Conv2dSame, PostActBlock, PreActBlock, ScaleHead, same_padding
from hybrid.models.options import ARCHS, POOR_STRIDES, VARIANTS, Arch, ModelConfig
from hybrid.models.resnet import ResNet, build_variant, he_normal_, resnet, resnet18, resnet56

__all__ = [
    "ARCHS", "BLOCKS", "POOR_STRIDES", "VARIANTS", "Arch", "Conv2dSame", "ModelConfig", "PostActBlock",
    "PreActBlock", "ResNet", "ScaleHead", "build_variant", "he_normal_", "resnet", "resnet18", "resnet56",
    "same_padding",
]
