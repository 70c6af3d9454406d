"""One run's configuration: typed sections (pydantic dataclasses, hybrid.fields), validated once when read.

A run config is nested (`dataset`, `model`, `train`, `tracking`, `seed`), as in RUN.yaml:

    dataset: {name: cifar10, root: data}
    model: {downsample: diffstride, head_pool: spectral, width: 64}
    train: {recipe: hybrid-paper, epochs: 200}
    seed: 0

`train.recipe` names a set of defaults (`RECIPES`): `train` settings, which every other
`train` key overrides, and the model keys the recipe depends on (`model.block`), which a
run config may leave out but not contradict. Defaults that follow the data are filled in
here: `model.num_classes` from the data set (an image folder's from its class folders,
read when it is left out), `dataset.crop_size` from the packed side and
`train.augmentation` (`hybrid.data.default_crop_size`). Unknown keys, a section given as
null, values of the wrong type or out of range, contradictory settings, and the relations a
training job would meet on loading its data (`model.num_classes` against the data set's
classes, a `dataset.val_fraction` carve that leaves no validation or no training image) are
errors that name the dotted key, here, before any job.
`RunConfig.run_id()` is a content hash of what determines the result, so the same run
asked for twice (by two studies, or after an unrelated config edit) trains once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from hybrid.data import NORMALIZATIONS, NUM_CLASSES, PACKED, PACKED_SIZES, DataConfig, default_crop_size, split_sizes
from hybrid.data.layouts import PackingError, imagefolder_classes
from hybrid.fields import Bool, Float, Int, Str, describe, section
from hybrid.nn import ModelConfig
from hybrid.strict_yaml import load_yaml
from hybrid.train.recipes import RECIPES, Recipe

# The bounds of train.epochs and train.lr: far beyond any recipe (400 epochs, lr 0.1), short of
# a run that never ends or a step that overflows the weights.
MAX_EPOCHS = 10_000
MAX_LR = 10.0
RECIPE_NAMES = ("hybrid-paper", "official-diffstride", "diffstride-first-release", "torchvision-imagenet")  # RECIPES' keys


@section("train")
class TrainConfig:
    recipe: Literal[RECIPE_NAMES] = describe("named train defaults (RECIPES)", default="hybrid-paper")
    epochs: Int = describe(f"training epochs; at most {MAX_EPOCHS} (the longest recipe runs 400)",
                           default=200, ge=1, le=MAX_EPOCHS)
    batch_size: Int = describe("training batch size", default=128, ge=1)
    lr: Float = describe(f"peak learning rate (lr_schedule step); at most {MAX_LR:g}, 100 times the recipes' "
                         "peak: a value such as 1e300 is a typo that overflows the weights", default=0.1, gt=0,
                         le=MAX_LR)
    momentum: Float = describe("SGD momentum", default=0.9, ge=0, lt=1)
    nesterov: Bool = describe("Nesterov momentum", default=False)
    # PyTorch weight decay (a gradient term wd * w); applied to `decay_on`:
    # "all" (every parameter but the strides) or "weights" (conv and dense kernels and the
    # dense bias, as the official code's Keras regularisers).
    weight_decay: Float = describe("PyTorch weight decay (gradient term wd * w)", default=5e-4, ge=0)
    decay_on: Literal["all", "weights"] = describe(
        "all: every parameter but the strides; weights: conv and dense kernels and the dense bias",
        default="all")
    # "step": lr * gamma^k after each milestone (fractions of the epochs);
    # "piecewise": lr_values[i] between the step boundaries lr_boundaries (lr unused).
    lr_schedule: Literal["step", "piecewise"] = describe(
        "step: lr * lr_gamma at each milestone; piecewise: lr_values between lr_boundaries (steps)",
        default="step")
    milestones: tuple[Annotated[Float, Field(gt=0, lt=1)], ...] = describe(
        "step schedule: lr *= lr_gamma at these fractions of the epochs", default=(0.25, 0.5, 0.75))
    lr_gamma: Float = describe("step schedule's factor", default=0.1, gt=0)
    lr_boundaries: tuple[Annotated[Int, Field(ge=1)], ...] = describe(
        "piecewise schedule: the steps where the lr changes, increasing", default=())
    lr_values: tuple[Annotated[Float, Field(gt=0, le=MAX_LR)], ...] = describe(
        f"piecewise schedule: one lr before, between and after the boundaries, each at most {MAX_LR:g} "
        "(as train.lr)", default=())
    label_smoothing: Float = describe("cross-entropy label smoothing", default=0.0, ge=0, lt=1)
    # Mixup as the official data pipeline does it: consecutive examples are mixed in
    # pairs, each pair with its own Beta(alpha, alpha) weight, so an epoch sees N / 2
    # mixed examples. 0 disables it.
    mixup_alpha: Float = describe("Beta(alpha, alpha) mixup of consecutive pairs; 0: none",
                                  default=0.0, ge=0)
    # "pad-crop": CIFAR's random crop after zero padding (crop_padding); "random-resized-crop":
    # torchvision's RandomResizedCrop to dataset.crop_size (area fraction in
    # [rrc_min_scale, 1], aspect ratio in [3/4, 4/3]), for the larger packed data sets.
    augmentation: Literal["pad-crop", "random-resized-crop"] = describe(
        "pad-crop: random crop after crop_padding pixels of zeros; random-resized-crop: "
        "torchvision's RandomResizedCrop to dataset.crop_size", default="pad-crop")
    crop_padding: Int = describe("random-crop padding in pixels; 0: no crop", default=4, ge=0)
    rrc_min_scale: Float = describe("random-resized-crop: the smallest area fraction (torchvision: 0.08)",
                                    default=0.08, gt=0, le=1)
    flip: Bool = describe("random horizontal flips", default=True)
    # "dataset": the training set's channel mean and std; "cifar-fixed": the official HEAD's
    # constants (mean 0.4914/0.4822/0.4465, std 0.2023/0.1994/0.2010); "unit": pixels / 255.
    normalization: Literal[NORMALIZATIONS] = describe(
        "dataset: the training set's channel statistics; cifar-fixed: the official HEAD's "
        "constants; unit: pixels / 255", default="dataset")
    # The stride parameters: their own lr multiplier and weight decay (none by default).
    stride_lr_mult: Float = describe("lr multiplier of the DiffStride strides", default=1.0, ge=0)
    stride_weight_decay: Float = describe("weight decay of the strides", default=0.0, ge=0)
    device: Annotated[Str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$")] = describe(
        "auto | cpu | cuda | cuda:N", default="auto")
    amp: Bool = describe("bf16 autocast on CUDA (the FFT layers stay float32); ignored on CPU",
                         default=True)
    channels_last: Bool = describe("channels_last memory format on CUDA", default=False)
    cudnn_benchmark: Bool = describe("let cuDNN pick its fastest kernels (off when deterministic)",
                                     default=True)
    deterministic: Bool = describe("deterministic kernels (slower)", default=False)
    threads: Int = describe("CPU threads; 0 keeps torch's default", default=0, ge=0)
    eval_batch_size: Int = describe("evaluation batch size", default=1000, ge=1)
    checkpoint_minutes: Float = describe(
        "minutes between checkpoints, each taken at the end of an epoch (and one on SIGTERM, at the "
        "step); 0: after every epoch", default=10.0, ge=0)
    compile: Literal["none", "default", "reduce-overhead"] = describe(
        "torch.compile the model (CUDA only; DiffStride compiles once per crop-size tuple): none, "
        "default, or reduce-overhead (CUDA graphs)", default="none")
    save_weights: Bool = describe("also write the final weights (weights.pt, a state_dict) and "
                                  "log them to MLflow", default=False)

    def __post_init__(self):
        if self.lr_schedule == "piecewise" and len(self.lr_values) != len(self.lr_boundaries) + 1:
            raise ValueError(
                f"train.lr_values needs one more value than train.lr_boundaries "
                f"({len(self.lr_boundaries)} boundaries, {len(self.lr_values)} values)"
            )
        if list(self.lr_boundaries) != sorted(set(self.lr_boundaries)):
            raise ValueError(f"train.lr_boundaries must increase, got {list(self.lr_boundaries)}")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"train.milestones must increase, got {list(self.milestones)}")


@section("tracking")
class TrackingConfig:
    uri: Str | None = describe("MLflow tracking URI; else MLFLOW_TRACKING_URI, else SQLite under "
                               "the results dir", default=None)
    experiment: Str = describe("MLflow experiment", default="hybrid-pooling", min_length=1)
    enabled: Bool = describe("log the run to MLflow", default=True)


@dataclass(frozen=True)
class RunConfig:
    dataset: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    seed: int = 0
    name: str = ""  # readable run name, e.g. cifar10/hybrid/seed0 (not part of the id)

    # Keys that say where or how to run, not what: left out of the run id.
    NOT_IN_ID: typing.ClassVar[tuple[str, ...]] = ("dataset.root", "tracking", "name", "train.threads",
                                                   "train.save_weights", "dataset.device_budget_gb",
                                                   "train.checkpoint_minutes", "train.compile")

    # Keys added after the id scheme was fixed (7191e28), hashed only when they differ from
    # their default: a run that does not use them keeps the id, and the results, it had.
    # Append every new key that changes what trains here.
    IN_ID_UNLESS_DEFAULT: typing.ClassVar[tuple[str, ...]] = (
        "model.stem", "dataset.image_size", "dataset.crop_size", "dataset.imagenette_size",
        "train.augmentation", "train.rrc_min_scale")

    # Keys added after run.yaml's text was fixed that say how to run: left out of to_dict()
    # (run.yaml, MLflow) at their default, so that a finished run's run.yaml stays the same text
    # (the workflow writes it from to_dict(); a new text would retrain the run).
    OMITTED_AT_DEFAULT: typing.ClassVar[tuple[str, ...]] = ("train.checkpoint_minutes", "train.compile")

    def to_dict(self) -> dict:
        plain = _to_plain(dataclasses.asdict(self))
        for dotted in self.OMITTED_AT_DEFAULT:
            section, key = dotted.split(".")
            if plain[section][key] == _section_default(type(getattr(self, section)), key):
                del plain[section][key]
        return plain

    def run_id(self) -> str:
        identity = self.to_dict()
        defaults = _default_identity()
        for dotted in (*self.NOT_IN_ID, *self.IN_ID_UNLESS_DEFAULT):
            *parents, leaf = dotted.split(".")
            node, default = identity, defaults
            for p in parents:
                node, default = node[p], default[p]
            if dotted in self.NOT_IN_ID or node.get(leaf) == default.get(leaf):
                node.pop(leaf, None)
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def display_name(self) -> str:
        return self.name or (f"dataset={self.dataset.name} downsample={self.model.downsample} "
                             f"recipe={self.train.recipe} seed={self.seed}")

    def recipe(self) -> Recipe:
        return RECIPES[self.train.recipe]


@functools.cache
def _section_default(section: type, key: str):
    return getattr(section(), key)


@functools.cache
def _default_identity() -> dict:
    """The default run config as a dict, built once (run_id compares keys against it; never mutated)."""
    return RunConfig().to_dict()


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _build(cls, data, prefix: str, defaults: dict | None = None):
    """A section from its mapping over `defaults`; every error names the dotted key."""
    if not isinstance(data, dict):
        raise ValueError(f"{prefix}: expected a mapping, got {data!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; known keys: {', '.join(known)}")
    return cls(**{**(defaults or {}), **data})


def parse_run_config(data: dict) -> RunConfig:
    """A RunConfig from its nested dict form; errors name the offending dotted key."""
    if not isinstance(data, dict):
        raise ValueError(f"a run config is a mapping, got {type(data).__name__}")
    sections = {"dataset": DataConfig, "model": ModelConfig, "train": TrainConfig, "tracking": TrackingConfig}
    unknown = sorted(set(data) - set(sections) - {"seed", "name"})
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join([*sections, 'seed', 'name'])}")
    for key in sections:
        if key in data and data[key] is None:
            raise ValueError(f"{key}: null (the key with nothing under it) is no section; leave {key} out for "
                             f"its defaults, or give its settings as a mapping")
    raw_train = data.get("train", {})
    recipe_name = raw_train.get("recipe", TrainConfig.recipe) if isinstance(raw_train, dict) else TrainConfig.recipe
    if recipe_name not in RECIPES:
        raise ValueError(f"train.recipe: unknown {recipe_name!r}; known recipes: {', '.join(RECIPES)}")
    recipe = RECIPES[recipe_name]
    built = {}
    for key, cls in sections.items():
        raw = data.get(key, {})
        defaults = None
        if cls is ModelConfig and isinstance(raw, dict):
            dataset = built["dataset"]  # built first
            classes = NUM_CLASSES.get(dataset.name, ModelConfig.num_classes)
            if dataset.name == "imagefolder" and "num_classes" not in raw:
                classes = _folder_num_classes(dataset)
            defaults = {"num_classes": classes, **recipe.model}
            for option, wanted in recipe.model.items():
                if option in raw and raw[option] != wanted:
                    raise ValueError(
                        f"model.{option}: {raw[option]!r} contradicts train.recipe {recipe_name!r}, which runs "
                        f"model.{option}: {wanted} ({recipe.source}); drop model.{option} or choose another recipe"
                    )
        if cls is TrainConfig:
            defaults = recipe.train
        built[key] = _build(cls, raw, key, defaults)
    seed, name = data.get("seed", 0), data.get("name", "")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    if not isinstance(name, str):
        raise ValueError(f"name: expected a string, got {name!r}")
    train, dataset = built["train"], built["dataset"]
    _check_num_classes(built["model"], dataset, given="num_classes" in data.get("model", {}))
    _check_val_carve(dataset)
    if dataset.name in PACKED and dataset.crop_size is None:
        # Written out, and so in the run id as an explicit crop_size of the same value is,
        # unless it is the data set's conventional crop: the runs that left it out before
        # this default followed the augmentation keep their ids.
        crop = default_crop_size(dataset.name, dataset.packed_size, train.augmentation)
        if crop != PACKED_SIZES[dataset.name][1]:
            dataset = built["dataset"] = dataclasses.replace(dataset, crop_size=crop)
    if train.augmentation == "pad-crop" and dataset.input_size != dataset.packed_size:
        raise ValueError(
            f"train.augmentation: pad-crop keeps the image size, but dataset.crop_size "
            f"{dataset.input_size} differs from the packed {dataset.packed_size} px; use "
            "train.augmentation: random-resized-crop, or leave dataset.crop_size out")
    n_train = split_sizes(dataset)[0]
    if train.mixup_alpha > 0 and n_train < 2 * train.batch_size:
        raise ValueError(
            f"train.mixup_alpha: mixup takes 2 x train.batch_size = {2 * train.batch_size} images a step, "
            f"more than the {n_train} training images of dataset {built['dataset'].name}: an epoch would "
            "have no step; lower train.batch_size or set train.mixup_alpha: 0")
    return RunConfig(seed=seed, name=name, **built)


def _check_num_classes(model: ModelConfig, dataset: DataConfig, given: bool) -> None:
    """`model.num_classes` against the data set's class count (the training job's first check
    after loading it): the known counts, an image folder's when its folder is there to read."""
    expected, source = NUM_CLASSES.get(dataset.name), f"dataset {dataset.name}"
    if dataset.name == "imagefolder" and given:
        try:  # a folder not there yet: the run's own count stands (the job checks it against the pack)
            expected = len(imagefolder_classes(Path(dataset.root)))
            source = f"the image folder at dataset.root {dataset.root}"
        except PackingError:
            expected = None
    if expected is not None and model.num_classes != expected:
        raise ValueError(
            f"model.num_classes: {model.num_classes}, but {source} has {expected} classes; leave "
            "model.num_classes out to take the data set's, or set it to that")


def _check_val_carve(dataset: DataConfig) -> None:
    """`dataset.val_fraction` against the training set it is carved from, as the carve takes it
    (hybrid.data.splits: round(count x fraction) images of each class, float32, half to even;
    the classes of CIFAR and the generated set balanced): some validation image, some left to
    train on. A packed set's fraction is refused when it is loaded."""
    if dataset.val_fraction == 0 or dataset.name in PACKED:
        return
    whole, classes = split_sizes(dataclasses.replace(dataset, val_fraction=0.0))[0], NUM_CLASSES[dataset.name]
    per_class, extra = divmod(whole, classes)
    counts = torch.tensor([per_class + 1] * extra + [per_class] * (classes - extra))
    held = torch.round(counts * dataset.val_fraction).long()
    each = f"{per_class}-{per_class + 1}" if extra else f"{per_class}"
    sizes = f"{dataset.name}'s {whole} training images ({classes} classes of {each})"
    if not held.any():
        # CIFAR's classes hold hundreds: only a small generated set has fewer than two images a class
        fix = (f"raise it to at least {math.ceil(10_000 / per_class) / 10_000:g} (one image of each class)"
               if per_class >= 2 else "raise dataset.synthetic_train")
        raise ValueError(f"dataset.val_fraction: {dataset.val_fraction:g} of {sizes} leaves no validation "
                         f"image (round(count x fraction) of each class is 0); {fix}, or set it to 0 for no "
                         "validation split")
    if torch.equal(held, counts):
        raise ValueError(f"dataset.val_fraction: {dataset.val_fraction:g} of {sizes} holds out every image, "
                         "leaving none to train on; lower it")


def _folder_num_classes(dataset: DataConfig) -> int:
    """`model.num_classes` of an image-folder run that leaves it out: its class folders."""
    try:
        return len(imagefolder_classes(Path(dataset.root)))
    except PackingError as error:
        raise ValueError(
            f"model.num_classes: dataset imagefolder takes it from the class folders of its train split, "
            f"but {error}; put the image folder at dataset.root before the workflow starts, or set "
            "model.num_classes (1000 for ImageNet-1k)") from None


def load_run_config(path: str | Path) -> RunConfig:
    """The run config in a YAML file, read strictly (hybrid.strict_yaml: duplicate keys and
    syntax errors name the line); every error names the file. An empty file is an error,
    not a run of every default."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"run config {path} does not exist")
    data = load_yaml(path)
    if data is None:
        raise ValueError(f"{path}: the run config is empty; write at least `dataset: {{name: cifar10}}`")
    try:
        return parse_run_config(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
