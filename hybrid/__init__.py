"""DiffStride, spectral pooling and the official DiffStride ResNets (arXiv 2401.09008 reproduction).

The package never imports `analysis` or Snakemake.
"""

from hybrid.layers import BlurPool2d, ConvStride, DiffStride2d, SpectralPool2d, build_downsample
from hybrid.models import VARIANTS, ModelConfig, ResNet, build_variant, resnet, resnet18, resnet56

__all__ = [
    "BlurPool2d",
    "ConvStride",
    "DiffStride2d",
    "SpectralPool2d",
    "build_downsample",
    "VARIANTS",
    "ModelConfig",
    "ResNet",
    "build_variant",
    "resnet",
    "resnet18",
    "resnet56",
]
