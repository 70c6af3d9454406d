"""One run's configuration: typed dataclasses, validated once when read.

A run config is nested (`dataset`, `model`, `train`, `tracking`, `seed`), as in RUN.yaml:

    dataset: {name: cifar10, root: data}
    model: {downsample: diffstride, head_pool: spectral, width: 64}
    train: {recipe: hybrid-paper, epochs: 200}
    seed: 0

`train.recipe` names a set of defaults (`RECIPES`): `train` settings, which every other
`train` key overrides, and the model keys the recipe depends on (`model.block`), which a
run config may leave out but not contradict. Unknown keys and values of the wrong type are errors that name the dotted
key. `RunConfig.run_id()` is a content hash of what determines the result, so the same
run asked for twice (by two studies, or after an unrelated config edit) trains once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from hybrid.data import NORMALIZATIONS, NUM_CLASSES, DataConfig
from hybrid.models import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    recipe: str = "hybrid-paper"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    # PyTorch weight decay (a gradient term wd * w); applied to `decay_on`:
    # "all" (every parameter but the strides) or "weights" (conv and dense kernels and the
    # dense bias, as the official code's Keras regularisers).
    weight_decay: float = 5e-4
    decay_on: str = "all"
    # "step": lr * gamma^k after each milestone (fractions of the epochs);
    # "piecewise": lr_values[i] between the step boundaries lr_boundaries (lr unused).
    lr_schedule: str = "step"
    milestones: tuple[float, ...] = (0.25, 0.5, 0.75)
    lr_gamma: float = 0.1
    lr_boundaries: tuple[int, ...] = ()
    lr_values: tuple[float, ...] = ()
    label_smoothing: float = 0.0
    # Mixup as the official data pipeline does it: consecutive examples are mixed in
    # pairs, each pair with its own Beta(alpha, alpha) weight, so an epoch sees N / 2
    # mixed examples. 0 disables it.
    mixup_alpha: float = 0.0
    crop_padding: int = 4
    flip: bool = True
    # "dataset": the training set's channel mean and std; "cifar-fixed": the official HEAD's
    # constants (mean 0.4914/0.4822/0.4465, std 0.2023/0.1994/0.2010); "unit": pixels / 255.
    normalization: str = "dataset"
    # The stride parameters: their own lr multiplier and weight decay (none by default).
    stride_lr_mult: float = 1.0
    stride_weight_decay: float = 0.0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (the FFT layers stay float32); ignored on CPU
    channels_last: bool = False
    cudnn_benchmark: bool = True
    deterministic: bool = False
    threads: int = 0  # CPU threads; 0 keeps torch's default
    eval_batch_size: int = 1000

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"train.recipe: unknown {self.recipe!r}; known recipes: {', '.join(RECIPES)}")
        choices = {"decay_on": ("all", "weights"), "lr_schedule": ("step", "piecewise"),
                   "normalization": NORMALIZATIONS}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"train.{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("train.epochs and train.batch_size must be >= 1")
        if self.lr_schedule == "piecewise" and len(self.lr_values) != len(self.lr_boundaries) + 1:
            raise ValueError(
                f"train.lr_values needs one more value than train.lr_boundaries "
                f"({len(self.lr_boundaries)} boundaries, {len(self.lr_values)} values)"
            )
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError(f"train.milestones are fractions of the epochs in (0, 1), got {list(self.milestones)}")


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
RECIPES: dict[str, Recipe] = {
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


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None  # else MLFLOW_TRACKING_URI, else SQLite under the results dir
    experiment: str = "hybrid-pooling"
    enabled: bool = True


@dataclass(frozen=True)
class RunConfig:
    dataset: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0
    name: str = ""  # readable run name, e.g. cifar10/hybrid/seed0 (not part of the id)

    # Keys that say where or how to run, not what: left out of the run id.
    NOT_IN_ID: typing.ClassVar[tuple[str, ...]] = ("dataset.root", "tracking", "name", "train.threads")

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    def run_id(self) -> str:
        identity = self.to_dict()
        for dotted in self.NOT_IN_ID:
            *parents, leaf = dotted.split(".")
            node = identity
            for p in parents:
                node = node[p]
            node.pop(leaf, None)
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def display_name(self) -> str:
        return self.name or f"{self.dataset.name}/{self.model.downsample}/seed{self.seed}"

    def recipe(self) -> Recipe:
        return RECIPES[self.train.recipe]


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        return "a list" if args[-1] is Ellipsis else f"a list of {len(args)}"
    if origin is dict:
        return "a mapping"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _check_type(value, annotation, key: str):
    """`value` converted to `annotation` (int -> float, list -> tuple), or a ValueError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _check_type(value, option, key)
            except ValueError as err:
                errors.append(err)
        nested = [e for e in errors if str(e).startswith((f"{key}[", f"{key}."))]
        if nested or len(errors) == 1:  # the option that matched in shape says what is wrong inside
            raise (nested or errors)[0]
        raise ValueError(f"{key}: expected {_type_name(annotation)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected {_type_name(annotation)}, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_check_type(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{key}: expected {_type_name(annotation)}, got {list(value)!r}")
        return tuple(_check_type(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return {_check_type(k, key_type, key): _check_type(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    raise ValueError(f"{key}: expected {_type_name(annotation)}, got {value!r}")


def _build(cls, data, prefix: str, defaults: dict | None = None):
    if not isinstance(data, dict):
        raise ValueError(f"{prefix}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; known keys: {', '.join(known)}")
    values = dict(defaults or {})
    for key, value in data.items():
        values[key] = _check_type(value, hints[key], f"{prefix}.{key}")
    try:
        return cls(**values)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(prefix) else f"{prefix}: {message}") from None


def parse_run_config(data: dict) -> RunConfig:
    """A RunConfig from its nested dict form; errors name the offending dotted key."""
    if not isinstance(data, dict):
        raise ValueError(f"a run config is a mapping, got {type(data).__name__}")
    sections = {"dataset": DataConfig, "model": ModelConfig, "train": TrainConfig, "tracking": TrackingConfig}
    unknown = sorted(set(data) - set(sections) - {"seed", "name"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join([*sections, 'seed', 'name'])}")
    raw_train = data.get("train") or {}
    recipe_name = raw_train.get("recipe", TrainConfig.recipe) if isinstance(raw_train, dict) else TrainConfig.recipe
    if recipe_name not in RECIPES:
        raise ValueError(f"train.recipe: unknown {recipe_name!r}; known recipes: {', '.join(RECIPES)}")
    recipe = RECIPES[recipe_name]
    built = {}
    for section, cls in sections.items():
        raw = data.get(section) or {}
        defaults = None
        if cls is ModelConfig and isinstance(raw, dict):
            dataset = (data.get("dataset") or {}).get("name", DataConfig.name)
            defaults = {"num_classes": NUM_CLASSES.get(dataset, ModelConfig.num_classes), **recipe.model}
            for key, wanted in recipe.model.items():
                if key in raw and raw[key] != wanted:
                    raise ValueError(
                        f"model.{key}: {raw[key]!r} contradicts train.recipe {recipe_name!r}, which runs "
                        f"model.{key}: {wanted} ({recipe.source}); drop model.{key} or choose another recipe"
                    )
        if cls is TrainConfig:
            hints = typing.get_type_hints(TrainConfig)
            defaults = {k: _check_type(v, hints[k], f"train.{k}") for k, v in recipe.train.items()}
        built[section] = _build(cls, raw, section, defaults)
    seed = _check_type(data.get("seed", 0), int, "seed")
    name = _check_type(data.get("name", ""), str, "name")
    return RunConfig(seed=seed, name=name, **built)


def load_run_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"run config {path} does not exist") from None
    try:
        return parse_run_config(data or {})
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
