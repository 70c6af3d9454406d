"""The workflow on a packed data set: a generated image folder is checked, packed once and
trained from, a study across two data sets gets a claims row per data set."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from test_packed_training import write_folder

ROOT = Path(__file__).resolve().parents[1]


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
