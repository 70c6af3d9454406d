"""The workflow on a packed data set: a generated image folder is checked, packed once and
trained from, a study across two data sets gets a claims row per data set; an image folder
set only by its name, root and packed side takes its crop and class count from the data."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_packed_training import CLASSES, write_folder

from hybrid.data import packed_dir
from hybrid.data.packing import pack
from hybrid.studies.checks import ConfigError, check_config
from hybrid.train.cli import main as train_main

ROOT = Path(__file__).resolve().parents[1]


def folder_config(folder, **train) -> dict:
    """A workflow config of one image-folder run: the data set by its name, root and packed
    side only (no crop_size, no num_classes), on a tiny net for one epoch."""
    return {
        "base": {
            "dataset": {"name": "imagefolder", "root": str(folder), "image_size": 32},
            "model": {"width": 4, "downsample": "strided"},
            "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "eval_batch_size": 9, "threads": 1, **train},
            "tracking": {"enabled": False},
        },
        "studies": {"folder": {"vary": {"seed": [0]}}},
    }


@pytest.mark.parametrize("train", [{}, {"recipe": "torchvision-imagenet"}], ids=["pad-crop", "random-resized-crop"])
def test_an_image_folder_at_32_px_without_crop_or_class_count_trains(tmp_path, train):
    """The done-when of dataset.name imagefolder, image_size 32: resolved as the workflow does
    (check_config), written to run.yaml as its run_config rule does, trained by hybrid.train."""
    folder = tmp_path / "folder"
    write_folder(folder, per_class=(8, 3))
    (run,) = check_config(folder_config(folder, **train))
    assert run.config.model.num_classes == len(CLASSES) and run.config.dataset.input_size == 32
    pack("imagefolder", folder, packed_dir(run.config.dataset), run.config.dataset.packed_size, workers=1)
    out = tmp_path / "results" / "runs" / run.run_id
    out.mkdir(parents=True)
    (out / "run.yaml").write_text(yaml.safe_dump(run.config.to_dict(), sort_keys=False))
    assert train_main(["--run-config", str(out / "run.yaml"), "--out", str(out),
                       "--results-dir", str(tmp_path / "results")]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["epochs_completed"] == 1
    assert result["run_id"] == run.run_id  # the id the workflow gave it, read back from run.yaml


def test_the_workflow_check_reads_num_classes_from_the_image_folder(tmp_path):
    folder = tmp_path / "folder"
    write_folder(folder, per_class=(1, 1))
    (filled,) = check_config(folder_config(folder))
    assert filled.config.model.num_classes == 3
    explicit = folder_config(folder)
    explicit["base"]["model"]["num_classes"] = 3
    (given,) = check_config(explicit)
    assert filled.run_id == given.run_id  # the same model, the same run
    (folder / "train" / "dog").mkdir()  # a class more: another model, another run
    (grown,) = check_config(folder_config(folder))
    assert grown.config.model.num_classes == 4 and grown.run_id != filled.run_id
    with pytest.raises(ConfigError, match=r"studies\.folder .*model\.num_classes: dataset imagefolder takes it from "
                                          r"the class folders of its train split, but .*elsewhere/train is not a "
                                          r"folder.*; put the image folder at dataset\.root before the workflow "
                                          r"starts, or set model\.num_classes"):
        check_config(folder_config(tmp_path / "elsewhere"))
    assert check_config(explicit | {"base": {**explicit["base"], "dataset": {
        "name": "imagefolder", "root": str(tmp_path / "elsewhere"), "image_size": 32}}})[0].run_id == given.run_id


def test_a_study_on_image_folders_packs_once_and_reports_a_claim_per_data_set(tmp_path):
    # two "data sets": the same kind of folder at two packed sizes (each its own pack)
    folder = tmp_path / "folder"
    write_folder(folder, per_class=(8, 3))
    config = {
        "results": "results",
        "base": {
            "dataset": {"name": "imagefolder", "root": str(folder)},
            "model": {"width": 4, "num_classes": 3},
            "train": {"recipe": "torchvision-imagenet", "epochs": 1, "batch_size": 8, "lr": 0.05,
                      "device": "cpu", "eval_batch_size": 9},
            "tracking": {"experiment": "packed"},
        },
        "seeds": [0, 1],
        "variants": {"diffstride": {"model.downsample": "diffstride", "model.head_pool": "none"},
                     "hybrid": {"model.downsample": "diffstride", "model.head_pool": "spectral"}},
        "studies": {"datasets": {"vary": {"dataset.image_size": [40, 48], "dataset.crop_size": [32],
                                          "variant": ["diffstride", "hybrid"]}}},
        "comparisons": {"hybrid_vs_diffstride": {"study": "datasets", "treatment": {"variant": "hybrid"},
                                                 "control": {"variant": "diffstride"},
                                                 "by": ["dataset.image_size"]}},
        "resources": {"runtime_min": 10, "mem_mb": 1000, "cpus": 1, "gpus": 0, "retries": 0},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(path), "--cores", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stderr
    assert log.count("rule pack:") == 2 and log.count("rule data:") == 2  # one per data set, not per run
    for size in (40, 48):
        manifest = json.loads((folder / "packed" / f"imagefolder-{size}" / "manifest.json").read_text())
        assert manifest["image_size"] == size and manifest["splits"]["train"]["count"] == 24
    results = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*/result.json")]
    assert len(results) == 8 and {r["status"] for r in results} == {"completed"}
    assert {r["feeding"] for r in results} == {"device"}  # the CPU: held whole
    with (tmp_path / "results" / "tables" / "claims.csv").open() as f:
        claims = list(csv.DictReader(f))
    assert sorted(row.get("dataset.image_size") or row.get("image_size") for row in claims) == ["40", "48"]
