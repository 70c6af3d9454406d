"""DiffStride, spectral pooling and the official DiffStride ResNets (arXiv 2401.09008 reproduction).

Four rooms, each importing only the ones below it (tests/test_project.py checks):

- `hybrid.studies`: studies resolved into runs, the workflow's checks, cost, progress;
- `hybrid.train`: one training run (the loop, its config, checkpoints, results, MLflow);
- `hybrid.nn`: what is trained (layers, ResNets, the official-weights bridge);
- `hybrid.data`: what it is fed (CIFAR, the generated set, packed image folders, batches).

`fields`, `strict_yaml` and `checksummed` are the small helpers they share. The package
never imports `analysis` or Snakemake.
"""

from hybrid.nn import (
                       VARIANTS,
                       BlurPool2d,
                       ConvStride,
                       DiffStride2d,
                       ModelConfig,
                       ResNet,
                       SpectralPool2d,
                       build_downsample,
                       build_variant,
                       resnet,
                       resnet18,
                       resnet56,
)

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
