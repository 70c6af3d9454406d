# Config loading and validation, the resolved runs, and the input functions.

import sys
from pathlib import Path

import yaml

from snakemake.utils import validate

validate(config, workflow.source_path("../schemas/config.schema.yaml"))

sys.path.insert(0, workflow.basedir)  # the `hybrid` package, without an install
from hybrid.studies import resolve_runs  # noqa: E402

RESULTS = config["results"]
RUNS = {run.run_id: run for run in resolve_runs(config)}
RESOURCES = config.get("resources", {})


wildcard_constraints:
    run="[0-9a-f]{16}",
    data="[A-Za-z0-9_.-]+",


def data_key(run):
    d = run.config.dataset
    if d.name == "synthetic":
        return f"synthetic-{d.synthetic_train}-{d.synthetic_test}-{d.synthetic_seed}"
    return d.name


DATASETS = {data_key(run): run.config.dataset for run in RUNS.values()}


def run_dir(run_id):
    return f"{RESULTS}/runs/{run_id}"


def run_results(wildcards=None):
    return [f"{run_dir(r)}/result.json" for r in RUNS]


def run_histories(wildcards=None):
    return [f"{run_dir(r)}/history.csv" for r in RUNS]


def data_ready(wildcards):
    return f"{RESULTS}/data/{data_key(RUNS[wildcards.run])}.ready"


# The analysis' outputs, from the config: the report files each under a category, in the
# order the report lists them (the verdicts first).
STUDY_CATEGORY = {"pooling": "2. Pooling variants", "placement": "3. Placement",
                  "smoothness": "4. Smoothness", "init_stride": "5. Initial strides"}
CAPTIONED = {"claims", "status", "pooling", "pooling_accuracy", "learning_curves",
             "stride_trajectories", "accuracy_flops", "placement", "smoothness", "init_stride"}


def _sweep_category(name):
    return STUDY_CATEGORY.get(config["sweeps"][name]["study"], f"5. {name}")


TABLES = {}
if config.get("comparisons"):
    TABLES["claims"] = "1. Claims"
if "pooling" in config["studies"]:
    TABLES["pooling"] = STUDY_CATEGORY["pooling"]
TABLES.update({name: _sweep_category(name) for name, spec in (config.get("sweeps") or {}).items()
               if spec["study"] in config["studies"]})
TABLES["status"] = "6. Runs"

FIGURES = {name: STUDY_CATEGORY["pooling"] for name in
           ("pooling_accuracy", "learning_curves", "stride_trajectories", "accuracy_flops")}
FIGURES.update({name: _sweep_category(name) for name in (config.get("sweeps") or {})})


def analysis_outputs():
    return [*rules.tables.output, *rules.figures.output, f"{RESULTS}/run_status.csv"]


def uses_gpu(run):
    return run.config.train.device != "cpu" and RESOURCES.get("gpus", 0) > 0
