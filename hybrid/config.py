"""One run's configuration: typed dataclasses, validated once when read.

A run config is nested (`dataset`, `model`, `train`, `tracking`, `seed`), as in RUN.yaml:

    dataset: {name: cifar10, root: data}
    model: {downsample: diffstride, head_pool: spectral, width: 64}
    train: {recipe: hybrid-paper, epochs: 200}
    seed: 0

`train.recipe` names a set of defaults (`RECIPES`); every other `train` key overrides
one of them. Unknown keys and values of the wrong type are errors that name the dotted
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

from hybrid.data import NUM_CLASSES, DataConfig
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
        choices = {"decay_on": ("all", "weights"), "lr_schedule": ("step", "piecewise")}
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


# The two recipes. Keras conventions of the official code, translated:
# - a Keras L2 regulariser of 5e-4 adds 5e-4 * w^2 to the loss, whose gradient 1e-3 * w
#   is a PyTorch weight decay of 1e-3, on the regularised weights only (conv and dense
#   kernels, the dense bias): decay_on="weights";
# - Keras batch-norm momentum 0.9 keeps 0.9 of the running statistic, PyTorch momentum
#   0.1 takes 0.1 of the new one: the same, and PyTorch's default, as is epsilon 1e-5.
RECIPES: dict[str, dict] = {
    # The hybrid paper: SGD 0.9, wd 5e-4, batch 128, 200 epochs, lr 0.1 divided by 10 at
    # 1/4, 1/2 and 3/4 of training, crop (4-pixel padding) and flip.
    "hybrid-paper": {},
    # google-research/diffstride examples/cifar10.gin and examples/data.py.
    "official-diffstride": {
        "epochs": 400,
        "batch_size": 128,
        "lr": 0.1,
        "weight_decay": 1e-3,
        "decay_on": "weights",
        "lr_schedule": "piecewise",
        "lr_boundaries": (400, 18_000, 32_000),
        "lr_values": (0.01, 0.1, 0.01, 0.001),
        "label_smoothing": 0.2,
        "mixup_alpha": 0.2,
        "crop_padding": 2,
    },
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


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


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
        raise errors[0]
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return tuple(_check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    raise ValueError(f"{key}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


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
    built = {}
    for section, cls in sections.items():
        raw = data.get(section) or {}
        defaults = None
        if cls is ModelConfig and isinstance(raw, dict) and "num_classes" not in raw:
            dataset = (data.get("dataset") or {}).get("name", DataConfig.name)
            defaults = {"num_classes": NUM_CLASSES.get(dataset, ModelConfig.num_classes)}
        if cls is TrainConfig:
            recipe = raw.get("recipe", TrainConfig.recipe) if isinstance(raw, dict) else None
            if recipe not in RECIPES:
                raise ValueError(f"train.recipe: unknown {recipe!r}; known recipes: {', '.join(RECIPES)}")
            defaults = {k: _check_type(v, typing.get_type_hints(TrainConfig)[k], f"train.{k}") for k, v in RECIPES[recipe].items()}
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
