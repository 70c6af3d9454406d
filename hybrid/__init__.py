"""DiffStride, spectral pooling and the CIFAR ResNet-18 family (arXiv 2401.09008 reproduction).

The package never imports `analysis` or Snakemake.
"""

from hybrid.layers import BlurPool2d, ConvStride, DiffStride2d, SpectralPool2d, build_downsample
from hybrid.models import VARIANTS, ModelConfig, build_variant, resnet18

__all__ = [
    "BlurPool2d",
    "ConvStride",
    "DiffStride2d",
    "SpectralPool2d",
    "build_downsample",
    "VARIANTS",
    "ModelConfig",
    "build_variant",
    "resnet18",
]
