"""The training recipes: named sets of `train` defaults (and the model keys they depend on),
each with where its settings come from: the hybrid paper's, the official DiffStride HEAD's,
its first release's, and torchvision's ImageNet reference."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recipe:
    """A named set of `train` defaults, with the model keys it depends on (`model`: a run
    config may not contradict them) and where each setting comes from."""

    source: str
    train: dict
    model: dict = field(default_factory=dict)


# Keras conventions of the official code, translated:
# - a Keras L2 regulariser of c adds c * w^2 to the loss, whose gradient 2c * w is a PyTorch
#   weight decay of 2c, on the regularised weights only (conv and dense kernels, the dense
#   bias): decay_on="weights";
# - Keras batch-norm momentum 0.9 keeps 0.9 of the running statistic, PyTorch momentum
#   0.1 takes 0.1 of the new one: the same, and PyTorch's default, as is epsilon 1e-5;
# - what a gin file binds reaches the code only through gin-configurable calls: the
#   official train.py builds its loss with `tf.keras.losses.CategoricalCrossentropy()`
#   directly, so cifar10.gin's `label_smoothing = 0.2` never applies, and
#   `data.load_datasets` keeps `augment_fn=None` (no binding), so no crop and no flip.
RECIPES: dict[str, Recipe] = {  # keys: RECIPE_NAMES
    # The hybrid paper (arXiv 2401.09008). Its facts: 200 epochs, lr 0.1 -> 0.01 -> 0.001
    # -> 0.0001. Assumed (the paper does not say): the steps at 1/4, 1/2 and 3/4 of
    # training, SGD momentum 0.9, weight decay 5e-4 on every parameter but the strides,
    # batch 128, crop (4-pixel padding) and flip, normalisation by the training set's
    # channel statistics, no mixup, and the official HEAD network (the model's defaults).
    "hybrid-paper": Recipe(source="arXiv 2401.09008 (200 epochs, lr steps); the rest assumed", train={}),
    # What google-research/diffstride b3ef50f runs (`examples/cifar10.gin`, `data.py`,
    # `train.py`, `resnet.py`): the pre-activation net, 400 epochs of batch 128, SGD 0.9,
    # piecewise-constant lr by step, L2 5e-4 (wd 1e-3) on conv/dense weights and the dense
    # bias, mixup 0.2 of consecutive pairs (an epoch is N / 2 mixed examples), no crop or
    # flip, no label smoothing, inputs normalised by fixed CIFAR statistics.
    "official-diffstride": Recipe(
        source="google-research/diffstride b3ef50f examples/cifar10.gin, data.py, train.py",
        model={"block": "preact"},
        train={
            "epochs": 400,
            "batch_size": 128,
            "weight_decay": 1e-3,
            "decay_on": "weights",
            "lr_schedule": "piecewise",
            "lr_boundaries": (400, 18_000, 32_000),
            "lr_values": (0.01, 0.1, 0.01, 0.001),
            "label_smoothing": 0.0,
            "mixup_alpha": 0.2,
            "crop_padding": 0,
            "flip": False,
            "normalization": "cifar-fixed",
        },
    ),
    # torchvision's ImageNet recipe for its ResNets (pytorch/vision references/classification,
    # README "ResNet": 90 epochs, 8 GPUs x batch 32, SGD 0.9, lr 0.1, wd 1e-4 on every
    # parameter, lr x0.1 every 30 epochs, RandomResizedCrop + flip, centre crop in evaluation),
    # on torchvision's ResNet stem; for the larger data sets. Inputs normalised by the
    # training set's statistics (torchvision's are ImageNet's).
    "torchvision-imagenet": Recipe(
        source="pytorch/vision references/classification README (ResNet) and train.py defaults",
        model={"stem": "imagenet"},
        train={
            "epochs": 90,
            "batch_size": 256,
            "lr": 0.1,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "decay_on": "all",
            "milestones": (1 / 3, 2 / 3),
            "lr_gamma": 0.1,
            "label_smoothing": 0.0,
            "augmentation": "random-resized-crop",
            "rrc_min_scale": 0.08,
            "flip": True,
            "crop_padding": 0,
            "normalization": "dataset",
        },
    ),
    # The first release (google-research/diffstride 3801ad4, lr schedule of 7e387d9, net of
    # 1f9e8f4): the post-activation net, 400 epochs of batch 256, SGD 0.9, lr 0.1 divided by
    # 10 at epochs 200 and 300, L2 5e-3 (wd 1e-2) on conv/dense weights and the dense bias, no
    # mixup, no crop or flip (`augment_fn` unbound), no label smoothing, inputs in [0, 1].
    "diffstride-first-release": Recipe(
        source="google-research/diffstride 3801ad4/7e387d9 examples/cifar10.gin, data.py, train.py; 1f9e8f4 resnet.py",
        model={"block": "postact"},
        train={
            "epochs": 400,
            "batch_size": 256,
            "weight_decay": 1e-2,
            "decay_on": "weights",
            "milestones": (0.5, 0.75),
            "crop_padding": 0,
            "flip": False,
            "normalization": "unit",
        },
    ),
}
