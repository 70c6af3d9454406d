"""Configs that would crash every training job are refused before any job, in one line that
names the key and the fix: the ranges by the schema (generated from the fields), the
relations between keys by the run config (so by `python -m hybrid.train` too)."""

import copy
from pathlib import Path

import pytest
import torch
import yaml

from hybrid.data.splits import _stratified_val_mask
from hybrid.studies.checks import ConfigError, check_config
from hybrid.train.config import load_run_config, parse_run_config

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "tests" / "workflow" / "tiny.yaml").read_text())  # 128 generated images


def tiny(**base) -> dict:
    """The tiny workflow config, its `base` sections updated key by key (None: the section null)."""
    config = copy.deepcopy(TINY)
    for section, keys in base.items():
        if keys is None:
            config["base"][section] = None
        else:
            config["base"].setdefault(section, {}).update(keys)
    return config


def refused(config: dict, message: str) -> str:
    with pytest.raises(ConfigError, match=message) as caught:
        check_config(config)
    text = str(caught.value)
    assert "\n" not in text and len(text) < 500  # one line: the key, the value, the fix
    return text


# --- relations between keys: in the run config, so in the workflow's check and the job's ----


def test_num_classes_other_than_the_data_sets_is_refused():
    text = refused(tiny(model={"num_classes": 5}),
                   r"model\.num_classes: 5, but dataset synthetic has 10 classes; leave model\.num_classes out")
    assert text.startswith("studies.pooling (point")  # the study and run named
    with pytest.raises(ValueError, match=r"^model\.num_classes: 5, but dataset cifar10 has 10 classes"):
        parse_run_config({"dataset": {"name": "cifar10"}, "model": {"num_classes": 5}})
    with pytest.raises(ValueError, match=r"model\.num_classes: 10, but dataset cifar100 has 100"):
        parse_run_config({"dataset": {"name": "cifar100"}, "model": {"num_classes": 10}})
    assert parse_run_config({"dataset": {"name": "cifar100"}, "model": {"num_classes": 100}}).model.num_classes == 100


def test_num_classes_of_an_image_folder_is_checked_against_its_folders_when_there(tmp_path):
    for name in ("ant", "bee", "cat"):
        (tmp_path / "folder" / "train" / name).mkdir(parents=True)
    folder = {"name": "imagefolder", "root": str(tmp_path / "folder"), "image_size": 32}
    with pytest.raises(ValueError, match=r"model\.num_classes: 4, but the image folder at dataset\.root .* has 3"):
        parse_run_config({"dataset": folder, "model": {"num_classes": 4}})
    assert parse_run_config({"dataset": folder, "model": {"num_classes": 3}}).model.num_classes == 3
    # a folder not there yet: the run's own count stands
    elsewhere = {**folder, "root": str(tmp_path / "elsewhere")}
    assert parse_run_config({"dataset": elsewhere, "model": {"num_classes": 4}}).model.num_classes == 4


def test_a_bad_run_yaml_is_refused_by_the_training_command_naming_the_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset: {name: synthetic, synthetic_train: 128}\nmodel: {num_classes: 5}\n")
    with pytest.raises(ValueError, match=rf"^{path}: model\.num_classes: 5, but dataset synthetic"):
        load_run_config(path)


def test_a_val_fraction_that_leaves_no_validation_image_is_refused():
    text = refused(tiny(dataset={"val_fraction": 0.001}),
                   r"dataset\.val_fraction: 0\.001 of synthetic's 128 training images \(10 classes of 12-13\) "
                   r"leaves no validation image .*raise it to at least 0\.0834 \(one image of each class\)")
    assert text.startswith("studies.pooling (point")
    with pytest.raises(ValueError, match=r"^dataset\.val_fraction: 0\.0001 of cifar10's 50000 training images "
                                         r"\(10 classes of 5000\) leaves no validation image"):
        parse_run_config({"dataset": {"name": "cifar10", "val_fraction": 0.0001}})
    with pytest.raises(ValueError, match=r"dataset\.val_fraction: 0\.4 .*raise dataset\.synthetic_train"):
        parse_run_config({"dataset": {"synthetic_train": 10, "val_fraction": 0.4}})
    refused(tiny(dataset={"val_fraction": 0.97}),
            r"dataset\.val_fraction: 0\.97 of synthetic's 128 training images .* holds out every image, leaving "
            r"none to train on; lower it")


@pytest.mark.parametrize("fraction", [0.001, 0.03, 0.0384, 0.0385, 0.04, 0.0417, 0.05, 0.115, 0.5,
                                      0.9, 0.95, 0.96, 0.961, 0.97, 0.99])
def test_the_val_fraction_check_agrees_with_the_carve(fraction):
    """Refused exactly where the carve of a job would leave no validation or no training image."""
    labels = torch.arange(128) % 10  # the generated set's balanced labels
    try:
        mask = _stratified_val_mask(labels, fraction)
        trains = not bool(mask.all())
    except ValueError:
        trains = False
    config = {"dataset": {"synthetic_train": 128, "val_fraction": fraction}}
    if trains:
        assert parse_run_config(config).dataset.val_fraction == fraction
    else:
        with pytest.raises(ValueError, match=r"^dataset\.val_fraction"):
            parse_run_config(config)


def test_a_validation_carve_of_a_packed_data_set_is_refused_before_any_job():
    config = tiny(dataset={"name": "tiny-imagenet", "val_fraction": 0.1})
    del config["base"]["dataset"]["synthetic_train"], config["base"]["dataset"]["synthetic_test"]
    for study in config["studies"].values():
        study["vary"]["dataset.name"] = ["tiny-imagenet"]
    refused(config, r"dataset\.val_fraction: 0\.1 in run .* the packed data set tiny-imagenet takes no "
                    r"validation carve .*; set dataset\.val_fraction: 0")


# --- plain ranges: on the fields, so in the generated schema -------------------------------


def test_an_unallocatable_width_is_refused():
    refused(tiny(model={"width": 10**40}), r"^base\.model\.width: 10+ is greater than the maximum of 1024")
    config = tiny()
    config["studies"]["smoothness"]["vary"]["model.width"] = [4, 2048]
    refused(config, r"^studies\.smoothness .*model\.width: input should be less than or equal to 1024, got 2048")


def test_an_overflowing_learning_rate_is_refused():
    refused(tiny(train={"lr": 1e300}), r"^base\.train\.lr: 1e\+300 is greater than the maximum of 10")
    with pytest.raises(ValueError, match=r"^train\.lr: input should be less than or equal to 10"):
        parse_run_config({"train": {"lr": 1e300}})
    with pytest.raises(ValueError, match=r"^train\.lr_values\[1\]: input should be less than or equal to 10"):
        parse_run_config({"train": {"lr_schedule": "piecewise", "lr_boundaries": [10], "lr_values": [0.1, 1e300]}})


def test_endless_epochs_are_refused():
    refused(tiny(train={"epochs": 10**15}),
            r"^base\.train\.epochs: 1000000000000000 is greater than the maximum of 10000")
    with pytest.raises(ValueError, match=r"^train\.epochs: input should be less than or equal to 10000"):
        parse_run_config({"train": {"epochs": 10**15}})


def test_a_section_given_as_null_is_refused_not_every_default():
    refused(tiny(train=None), r"^base\.train: null .*; leave base\.train out for its defaults")
    refused(tiny(model=None), r"^base\.model: null .*; leave base\.model out for its defaults")
    config = tiny()
    config["resources"] = None
    refused(config, r"^resources: null .*; leave resources out for its defaults")
    with pytest.raises(ValueError, match=r"^train: null .*; leave train out for its defaults"):
        parse_run_config({"dataset": {"name": "cifar10"}, "train": None})
    with pytest.raises(ValueError, match=r"^train: expected a mapping, got \[\]"):
        parse_run_config({"train": []})


# --- the edges stay valid ------------------------------------------------------------------


def test_the_edge_values_pass():
    edges = tiny(model={"width": 1024}, train={"lr": 10.0, "epochs": 10_000},
                 dataset={"val_fraction": 0.05})  # round(12 or 13 x 0.05) = 1 image of each class
    runs = check_config(edges)
    assert runs and all(run.config.model.width == 1024 and run.config.train.epochs == 10_000
                        and run.config.train.lr == 10.0 for run in runs)
    mask = _stratified_val_mask(torch.arange(128) % 10, 0.05)
    assert torch.bincount(torch.arange(128)[mask] % 10).tolist() == [1] * 10
    smallest = tiny(dataset={"val_fraction": 0.0834})  # the fix the message suggests
    assert check_config(smallest)
    leaving_out = tiny()
    del leaving_out["base"]["train"]  # a section left out: its defaults
    assert check_config(leaving_out)
