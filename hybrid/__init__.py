"""DiffStride, spectral pooling and the official DiffStride ResNets (arXiv 2401.09008 reproduction).

Four rooms, each importing only the ones below it (tests/test_layout.py checks):

- `hybrid.studies`: studies resolved into runs, the workflow's checks, cost, progress;
- `hybrid.train`: one training run (the loop, its config, checkpoints, results, MLflow);
- `hybrid.nn`: what is trained (layers, ResNets, the official-weights bridge);
- `hybrid.data`: what it is fed (CIFAR, the generated set, packed image folders, batches).

`fields`, `strict_yaml` and `checksummed` are the small helpers they share. The package
never imports `analysis` or Snakemake.
"""

import importlib

__all__ = [
    "BlurPool2d", "ConvStride", "DiffStride2d", "SpectralPool2d", "build_downsample", "VARIANTS", "ModelConfig",
    "ResNet", "build_variant", "resnet", "resnet18", "resnet56",
]


def __getattr__(name: str):
    """The layers and networks of `hybrid.nn`, loaded on first use: `python -m hybrid.train`
    installs its signal handler before torch is imported."""
    if name in __all__:
        return getattr(importlib.import_module("hybrid.nn"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
