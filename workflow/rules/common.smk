# Config loading and validation, the resolved runs, and the input functions.

import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, workflow.source_path("../schemas/config.schema.yaml"))

sys.path.insert(0, workflow.basedir)  # the `hybrid` package, without an install
from hybrid.studies import resolve_runs  # noqa: E402

RESULTS = config["results"]
PYTHON = sys.executable  # the interpreter that runs Snakemake has the project installed
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


def uses_gpu(run):
    return run.config.train.device != "cpu" and RESOURCES.get("gpus", 0) > 0
