"""Run configs: recipes, strict parsing, content-hashed ids, schedules and parameter groups."""

import pytest
import yaml

from hybrid.config import RECIPES, load_run_config, parse_run_config
from hybrid.models import build_variant
from hybrid.train import learning_rate, parameter_groups, steps_per_epoch


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
        ({"train": {"epochs": "ten"}}, r"train\.epochs: expected int, got 'ten'"),
        ({"train": {"epochs": True}}, r"train\.epochs: expected int"),
        ({"train": {"flip": 1}}, r"train\.flip: expected bool"),
        ({"model": {"init_stride": 2}}, r"model\.init_stride: expected a list, got 2"),
        ({"model": {"init_stride": [1, 1, [2, 2, 2], 2, 2]}}, r"model\.init_stride\[2\]: expected float or a list of 2"),
        ({"model": {"site_kinds": ["layer4"]}}, r"model\.site_kinds: expected a mapping"),
        ({"model": {"arch": "resnet50"}}, r"model\.arch: unknown 'resnet50'; known: resnet18, resnet56"),
        ({"train": {"normalization": "imagenet"}}, r"train\.normalization: 'imagenet' is not one of dataset, cifar-fixed, unit"),
        ({"train": {"recipe": "fast"}}, r"train\.recipe: unknown 'fast'; known recipes: hybrid-paper, official-diffstride, diffstride-first-release"),
        ({"model": {"downsample": "fft"}}, r"model\.downsample: unknown kind 'fft'"),
        ({"dataset": {"name": "mnist"}}, r"dataset\.name"),
        ({"seed": 1.5}, r"seed: expected int"),
        ({"train": {"lr_schedule": "piecewise"}}, r"train\.lr_values needs one more value"),
    ],
)
def test_bad_keys_and_types_name_the_dotted_key(data, message):
    with pytest.raises(ValueError, match=message):
        parse_run_config(data)


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
    from hybrid.config import TrainConfig

    from hybrid.models import ModelConfig

    for recipe in RECIPES.values():
        assert set(recipe.train) <= set(TrainConfig.__dataclass_fields__)
        assert set(recipe.model) <= set(ModelConfig.field_names())
