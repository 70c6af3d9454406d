"""Run configs: recipes, strict parsing, content-hashed ids, schedules and parameter groups."""

import pytest
import yaml

from hybrid.nn import build_variant
from hybrid.train import steps_per_epoch
from hybrid.train.config import load_run_config, parse_run_config
from hybrid.train.recipes import RECIPES
from hybrid.train.schedule import learning_rate, parameter_groups


def test_defaults_are_the_hybrid_paper_recipe():
    config = parse_run_config({})
    t = config.train
    assert (t.recipe, t.epochs, t.batch_size, t.lr, t.momentum, t.weight_decay) == ("hybrid-paper", 200, 128, 0.1, 0.9, 5e-4)
    assert (t.crop_padding, t.flip, t.mixup_alpha, t.label_smoothing) == (4, True, 0.0, 0.0)


def test_official_recipe_is_what_the_head_code_runs():
    config = parse_run_config({"train": {"recipe": "official-diffstride"}})
    t = config.train
    # cifar10.gin's label smoothing never reaches the loss train.py builds, and load_datasets'
    # augment_fn stays None: no smoothing, no crop, no flip; mixup 0.2 and fixed CIFAR statistics.
    assert (t.epochs, t.batch_size, t.mixup_alpha, t.label_smoothing) == (400, 128, 0.2, 0.0)
    assert (t.crop_padding, t.flip, t.normalization) == (0, False, "cifar-fixed")
    # Keras L2 5e-4 on conv/dense weights == PyTorch weight decay 1e-3 on those weights only.
    assert (t.weight_decay, t.decay_on) == (1e-3, "weights")
    assert t.lr_boundaries == (400, 18_000, 32_000) and t.lr_values == (0.01, 0.1, 0.01, 0.001)
    assert config.model.block == "preact"


def test_first_release_recipe():
    config = parse_run_config({"train": {"recipe": "diffstride-first-release"}})
    t = config.train
    assert config.model.block == "postact"
    assert (t.epochs, t.batch_size, t.lr, t.momentum, t.mixup_alpha, t.label_smoothing) == (400, 256, 0.1, 0.9, 0.0, 0.0)
    assert (t.crop_padding, t.flip, t.normalization) == (0, False, "unit")
    assert (t.weight_decay, t.decay_on) == (1e-2, "weights")  # Keras L2 5e-3
    lrs = [learning_rate(t, epoch * 195, 195) for epoch in (0, 199, 200, 299, 300, 399)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_a_run_config_may_not_contradict_its_recipe_s_model():
    with pytest.raises(ValueError, match=r"model\.block: 'postact' contradicts train\.recipe 'official-diffstride'.*b3ef50f"):
        parse_run_config({"train": {"recipe": "official-diffstride"}, "model": {"block": "postact"}})
    # Spelling out what the recipe runs is fine, and the same run.
    same = parse_run_config({"train": {"recipe": "official-diffstride"}, "model": {"block": "preact"}})
    assert same.run_id() == parse_run_config({"train": {"recipe": "official-diffstride"}}).run_id()
    # hybrid-paper constrains no model key.
    assert parse_run_config({"model": {"block": "postact"}}).model.block == "postact"


def test_model_values_of_every_shape_parse():
    model = parse_run_config({"model": {"init_stride": [1.5, 1, [1.7, 2.3], 2.5, [2.9, 1.6]],
                                        "site_kinds": {"layer4": "spectral"}, "width": 8}}).model
    assert model.init_stride == (1.5, 1.0, (1.7, 2.3), 2.5, (2.9, 1.6)) and model.site_kinds == {"layer4": "spectral"}
    assert parse_run_config({"model": {"arch": "resnet56"}}).model.init_stride == (1.0, 1.0, 2.0, 2.0)


def test_explicit_keys_override_the_recipe():
    t = parse_run_config({"train": {"recipe": "official-diffstride", "epochs": 3, "lr": 1}}).train
    assert t.epochs == 3 and t.lr == 1.0 and isinstance(t.lr, float) and t.mixup_alpha == 0.2


@pytest.mark.parametrize(
    "data,message",
    [
        ({"train": {"lrr": 0.1}}, r"unknown key\(s\) train\.lrr; known keys: recipe, epochs"),
        ({"model": {"smoothnes": 2}}, r"model\.smoothnes"),
        ({"optim": {}}, r"unknown key\(s\) optim"),
        ({"train": {"epochs": "ten"}}, r"train\.epochs: input should be a valid integer, got 'ten'"),
        ({"train": {"epochs": True}}, r"train\.epochs: input should be a valid integer"),
        ({"train": {"flip": 1}}, r"train\.flip: input should be a valid boolean"),
        ({"model": {"init_stride": 2}}, r"model\.init_stride: input should be a valid tuple, got 2"),
        ({"model": {"init_stride": [1, 1, [2, 2, 2], 2, 2]}},
         r"model\.init_stride\[2\]: tuple should have at most 2 items"),
        ({"model": {"site_kinds": ["layer4"]}}, r"model\.site_kinds: input should be a valid dictionary"),
        ({"model": {"arch": "resnet50"}}, r"model\.arch: input should be 'resnet18' or 'resnet56', got 'resnet50'"),
        ({"train": {"normalization": "imagenet"}},
         r"train\.normalization: input should be 'dataset', 'cifar-fixed' or 'unit', got 'imagenet'"),
        ({"train": {"recipe": "fast"}}, r"train\.recipe: unknown 'fast'; known recipes: hybrid-paper, official-diffstride, torchvision-imagenet, diffstride-first-release"),
        ({"model": {"downsample": "fft"}}, r"model\.downsample: input should be 'strided', .* or 'diffstride', got 'fft'"),
        ({"dataset": {"name": "mnist"}}, r"dataset\.name: input should be 'cifar10', 'cifar100', 'synthetic', 'tiny-imagenet', 'imagenette' or 'imagefolder'"),
        ({"seed": 1.5}, r"seed: expected an integer >= 0, got 1\.5"),
        ({"train": {"lr_schedule": "piecewise"}}, r"train\.lr_values needs one more value"),
        # ranges and relations, each named before any job (the workflow resolves every run)
        ({"model": {"smoothness": 0}}, r"model\.smoothness: input should be greater than 0, got 0"),
        ({"model": {"init_stride": [1, 1, 0.5, 2, 2]}}, r"model\.init_stride\[2\]: input should be greater than or equal to 1"),
        ({"model": {"head_pool": "spectral", "head_stride": 0.5}}, r"model\.head_stride: input should be greater than or equal to 1, got 0\.5"),
        ({"model": {"width": 0}}, r"model\.width: input should be greater than or equal to 1"),
        ({"train": {"lr": -0.1}}, r"train\.lr: input should be greater than 0, got -0\.1"),
        ({"train": {"lr": float("nan")}}, r"train\.lr: input should be a finite number, got nan"),
        ({"train": {"lr": float("inf")}}, r"train\.lr: input should be a finite number"),
        ({"train": {"momentum": -1}}, r"train\.momentum: input should be greater than or equal to 0, got -1"),
        ({"train": {"momentum": 1.0}}, r"train\.momentum: input should be less than 1"),
        ({"train": {"label_smoothing": 1.5}}, r"train\.label_smoothing: input should be less than 1, got 1\.5"),
        ({"train": {"eval_batch_size": 0}}, r"train\.eval_batch_size: input should be greater than or equal to 1, got 0"),
        ({"train": {"batch_size": 0}}, r"train\.batch_size: input should be greater than or equal to 1"),
        ({"train": {"crop_padding": -2}}, r"train\.crop_padding: input should be greater than or equal to 0, got -2"),
        ({"train": {"milestones": [0.75, 0.5]}}, r"train\.milestones must increase, got \[0\.75, 0\.5\]"),
        ({"train": {"milestones": [0.5, 2]}}, r"train\.milestones\[1\]: input should be less than 1, got 2"),
        ({"train": {"recipe": "official-diffstride", "lr_boundaries": [400, 300, 32000]}},
         r"train\.lr_boundaries must increase"),
        ({"train": {"device": "gpu"}}, r"train\.device: string should match pattern"),
        ({"train": {"mixup_alpha": -0.2}}, r"train\.mixup_alpha: input should be greater than or equal to 0"),
        ({"dataset": {"val_fraction": 1.0}}, r"dataset\.val_fraction: input should be less than 1"),
        ({"dataset": {"synthetic_train": 0}}, r"dataset\.synthetic_train: input should be greater than or equal to 1"),
        ({"tracking": {"uri": 3}}, r"tracking\.uri: input should be a valid string, got 3"),
        ({"dataset": {"synthetic_train": 100}, "train": {"mixup_alpha": 0.2, "batch_size": 64}},
         r"train\.mixup_alpha: mixup takes 2 x train\.batch_size = 128 images a step, more than the 100"),
    ],
)
def test_bad_keys_types_and_ranges_name_the_dotted_key(data, message):
    with pytest.raises(ValueError, match=message):
        parse_run_config(data)


# Run ids of the configs before their checks moved to pydantic (commit 7191e28): a finished
# run must keep its id, or every study would retrain it.
PINNED_IDS = {
    "5621ac881c758041": {},
    "49b0fcf08294a9a4": {"dataset": {"name": "cifar10"}, "seed": 3,
                         "model": {"downsample": "diffstride", "head_pool": "spectral"}},
    "6ec02c6a9dd7662d": {"dataset": {"name": "cifar100"}, "model": {"downsample": "diffstride"},
                         "train": {"recipe": "official-diffstride"}},
    "973f4aef5c76fe4f": {"model": {"downsample": "diffstride", "head_pool": "spectral",
                                   "head_pool_at": "after_norm"},
                         "train": {"recipe": "diffstride-first-release"}},
    "0b7d215fa7ba8c43": {"model": {"arch": "resnet56", "downsample": "diffstride",
                                   "init_stride": [1, 1, [2, 3], 2], "smoothness": 8},
                         "train": {"epochs": 5, "lr": 1}},
    "352ca0ffc44ea0e9": {"model": {"downsample": "diffstride", "site_kinds": {"layer4": "spectral"},
                                   "downsample_at": ["stem", "layer4"]}},
}


@pytest.mark.parametrize("run_id,data", PINNED_IDS.items())
def test_run_ids_do_not_move(run_id, data):
    assert parse_run_config(data).run_id() == run_id


def test_run_id_is_a_content_hash_of_what_determines_the_result():
    base = {"model": {"downsample": "diffstride"}, "seed": 0}
    same = {"seed": 0, "model": {"downsample": "diffstride", "smoothness": 4}}  # a default spelled out
    assert parse_run_config(base).run_id() == parse_run_config(same).run_id()
    assert parse_run_config(base).run_id() != parse_run_config({**base, "seed": 1}).run_id()
    assert parse_run_config(base).run_id() != parse_run_config({**base, "train": {"epochs": 5}}).run_id()
    # Where results go and how the run is tracked do not change what it computes.
    moved = {**base, "dataset": {"root": "/scratch/data"}, "tracking": {"experiment": "x"}, "name": "a/b"}
    assert parse_run_config(moved).run_id() == parse_run_config(base).run_id()


def test_num_classes_follows_the_dataset():
    assert parse_run_config({"dataset": {"name": "cifar100"}}).model.num_classes == 100
    assert parse_run_config({"dataset": {"name": "cifar10"}}).model.num_classes == 10


def test_load_run_config_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"epochz": 1}}))
    with pytest.raises(ValueError, match=r"run\.yaml: unknown key\(s\) train\.epochz"):
        load_run_config(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_run_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ValueError, match=r"empty\.yaml: the run config is empty"):
        load_run_config(empty)  # not a 200-epoch run of every default
    twice = tmp_path / "twice.yaml"
    twice.write_text("train: {epochs: 3}\ntrain: {epochs: 300}\n")
    with pytest.raises(ValueError, match=r"twice\.yaml: line 2, column 1: found key 'train' again"):
        load_run_config(twice)


def test_hybrid_paper_step_schedule():
    t = parse_run_config({}).train
    per_epoch = 391
    lrs = [learning_rate(t, epoch * per_epoch, per_epoch) for epoch in (0, 49, 50, 99, 100, 150, 199)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001])


def test_official_piecewise_schedule_is_by_step():
    t = parse_run_config({"train": {"recipe": "official-diffstride"}}).train
    lrs = [learning_rate(t, step, 195) for step in (0, 399, 400, 17_999, 18_000, 31_999, 32_000, 78_000)]
    assert lrs == [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    # Mixup mixes pairs: an epoch of 50,000 images is 195 steps of 128 mixed examples.
    assert steps_per_epoch(50_000, t) == 195
    assert steps_per_epoch(50_000, parse_run_config({}).train) == 391


def test_parameter_groups_decay_and_stride_options():
    model = build_variant("hybrid", width=8)
    official = parse_run_config({"train": {"recipe": "official-diffstride", "stride_lr_mult": 0.5}}).train
    groups = parameter_groups(model, official)
    decayed, undecayed, strides = groups
    assert decayed["weight_decay"] == 1e-3 and undecayed["weight_decay"] == 0.0
    assert all(p.dim() == 4 or p.shape in {(10, 64), (10,)} for p in decayed["params"])  # conv and dense only
    assert strides["params"] == model.stride_parameters() and strides["weight_decay"] == 0.0 and strides["lr_mult"] == 0.5
    total = sum(len(g["params"]) for g in groups)
    assert total == len(list(model.parameters()))
    paper = parameter_groups(model, parse_run_config({}).train)
    assert len(paper) == 2 and paper[0]["weight_decay"] == 5e-4  # everything but the strides decays


def test_every_recipe_key_is_a_train_field():
    from hybrid.nn import ModelConfig
    from hybrid.train.config import TrainConfig

    for recipe in RECIPES.values():
        assert set(recipe.train) <= set(TrainConfig.__dataclass_fields__)
        assert set(recipe.model) <= set(ModelConfig.field_names())
