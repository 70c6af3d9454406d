# Config loading and validation, the resolved runs, and the input functions.

import math
import os
import shlex
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError

sys.path.insert(0, workflow.basedir)  # the `hybrid` package, without an install
# ... and for every rule's commands too, so that the rules' environments (workflow/envs/)
# need no install of the project (which `--sdm conda` cannot do from its copy of the file)
# (quoted: the repository's path may hold a space; braces doubled: Snakemake formats a prefix)
_BASEDIR = shlex.quote(workflow.basedir).translate({ord("{"): "{{", ord("}"): "}}"})
shell.prefix(f'export PYTHONPATH={_BASEDIR}:"$PYTHONPATH"; ')
from hybrid.data import PACKED, packed_dir  # noqa: E402
from hybrid.studies.checks import check_config, check_config_files  # noqa: E402

# `--config partial=true` arrives as the string "true": Snakemake parses `--config` values
# as numbers or strings, never as YAML booleans.
if isinstance(config.get("partial"), str):
    flag = config["partial"].strip().lower()
    if flag not in ("true", "false", "yes", "no", "1", "0"):
        raise WorkflowError(
            f"invalid config: partial: {config['partial']!r} is not a boolean; "
            "use --config partial=true (or false)"
        )
    config["partial"] = flag in ("true", "yes", "1")

# Every value checked before any job (hybrid/studies/checks.py): the files read strictly
# (a duplicated key is an error), the schema of workflow/schemas/config.schema.yaml, every
# run resolved and validated, the comparisons and sweeps against the studies' runs.
try:
    check_config_files(workflow.configfiles)
    RUNS = {run.run_id: run for run in check_config(config)}
except ValueError as err:
    raise WorkflowError(f"invalid config: {err}") from None


def shell_word(value):
    """A value as one shell word, as `{value:q}` would put it in a command."""
    return shlex.quote(format(value))


class ShellWords:
    """An object whose fields read as shell words: `{params.x.field}` in a command is quoted
    as `{params.x.field:q}` would be, without a change to the command's text. A changed text
    reruns the job, and upstream of training (run_config, data, pack) every run after it.
    """

    def __init__(self, fields):
        self._fields = fields

    def __getattr__(self, name):
        if name.startswith("_"):  # copy and pickle probe before `_fields` is set
            raise AttributeError(name)
        return shell_word(getattr(self._fields, name))


def results_folder(results):
    """The results folder as every rule names it. The training command's text is fixed (a
    changed text retrains every finished run), so its paths must need no shell quoting: a
    folder whose path does is named relative to the working directory, where the quoting is
    needed above it only (a space in the working directory's own path, say)."""
    if shell_word(results) == results:
        return results  # as before: a finished study's paths stay the same
    # (also through the path's links resolved, as the working directory's path is)
    for relative in (
        os.path.relpath(results),
        os.path.relpath(os.path.realpath(results)),
    ):
        if shell_word(relative) == relative:
            return relative
    raise WorkflowError(
        f"invalid config: results: {results!r} needs shell quoting below the working "
        f"directory ({os.getcwd()}), which the training command cannot take; name a "
        "folder without spaces or shell characters"
    )


RESULTS = results_folder(str(config.get("results", "results")))
RESOURCES = config.get("resources", {})

# The claims' families, told when the workflow starts (a dry run too), not again in each
# job's own Snakemake process: each confirmatory row's interval is simultaneous over its
# family (analysis.stats.VERDICT_RULE).
if config.get("comparisons") and workflow.is_main_process:
    import pandas as pd

    from analysis.claims import planned_families
    from hybrid.studies import runs_table

    _families = planned_families(pd.DataFrame(runs_table(list(RUNS.values()))), config)
    logger.info(
        f"claims: a confirmatory family of {_families['confirmatory']} rows (those with a "
        f"paper number) and an exploratory family of {_families['exploratory']}"
    )


wildcard_constraints:
    run="[0-9a-f]{16}",
    data="[A-Za-z0-9_.-]+",


def data_key(run):
    d = run.config.dataset
    if d.name == "synthetic":
        return f"synthetic-{d.synthetic_train}-{d.synthetic_test}-{d.synthetic_seed}"
    if d.name in PACKED:
        return packed_dir(d).name  # the data set, its variant and its side
    return d.name


DATASETS = {data_key(run): run.config.dataset for run in RUNS.values()}


def run_dir(run_id):
    return f"{RESULTS}/runs/{run_id}"


# `--config partial=true`: analyse and report whatever has finished, training nothing; the
# runs without a result are counted as missing. Without it, the analysis waits for every run.
PARTIAL = bool(config.get("partial", False))


def run_results(wildcards=None):
    return [] if PARTIAL else [f"{run_dir(r)}/result.json" for r in RUNS]


def run_histories(wildcards=None):
    return [] if PARTIAL else [f"{run_dir(r)}/history.csv" for r in RUNS]


def finished_results():
    """The result files there are now: in partial mode, a change reruns the collection."""
    return (
        sorted(str(p) for p in Path(RESULTS, "runs").glob("*/result.json"))
        if PARTIAL
        else []
    )


def data_ready(wildcards):
    """The data a run reads: fetched (and, for the larger sets, packed) once per data set."""
    run = RUNS[wildcards.run]
    done = "packed" if run.config.dataset.name in PACKED else "ready"
    return f"{RESULTS}/data/{data_key(run)}.{done}"


# The analysis' outputs, from the config: the report files each under a category, in the
# order the report lists them (the verdicts first). A variant study (one that varies
# `variant` and is no sweep's) gets a table and an accuracy figure; a sweep its own.
from analysis.collect import variant_studies  # noqa: E402
from analysis.report import report_categories  # noqa: E402

# {"claims" | study | "runs": "<n>. <title>"}: one number per category, from one ordered list
# (analysis/report.py): the claims, the paper's studies, any other study, the runs.
CATEGORY = report_categories(config)
RUNS_CATEGORY = CATEGORY["runs"]
CAPTIONED = {
    "claims",
    "verdicts",
    "claims_forest",
    "status",
    "outliers",
    "pooling",
    "pooling_accuracy",
    "learning_curves",
    "stride_trajectories",
    "accuracy_flops",
    "placement",
    "smoothness",
    "init_stride",
    "first_release",
    "first_release_accuracy",
    "arch",
    "arch_accuracy",
    "datasets",
    "datasets_accuracy",
}
# The report lists a category's items by their first label: these names put the forest plot
# first, then the verdict table, then every statistic, and all runs before their counts.
REPORT_NAMES = {
    "claims_forest": "1. verdicts: forest plot",
    "verdicts": "2. verdicts: table",
    "claims": "3. every statistic of the claims",
    "runs": "all runs (sortable, filterable)",
}
VARIANT_STUDIES = variant_studies(config)


def _labels(name, kind):
    return {"name": REPORT_NAMES.get(name, name), "type": kind}


def _sweep_category(name):
    return CATEGORY[config["sweeps"][name]["study"]]


TABLES = {}
if config.get("comparisons"):
    TABLES["verdicts"] = CATEGORY["claims"]
    TABLES["claims"] = CATEGORY["claims"]
TABLES.update({study: CATEGORY[study] for study in VARIANT_STUDIES})
TABLES.update(
    {
        name: _sweep_category(name)
        for name, spec in (config.get("sweeps") or {}).items()
        if spec["study"] in config["studies"]
    }
)
TABLES["status"] = RUNS_CATEGORY
TABLES["outliers"] = RUNS_CATEGORY

FIGURES = {}
if config.get("comparisons"):
    FIGURES["claims_forest"] = CATEGORY["claims"]
FIGURES.update(
    {
        name: CATEGORY["pooling"]
        for name in (
            "pooling_accuracy",
            "learning_curves",
            "stride_trajectories",
            "accuracy_flops",
        )
    }
)
FIGURES.update(
    {
        f"{study}_accuracy": CATEGORY[study]
        for study in VARIANT_STUDIES
        if study != "pooling"
    }
)
FIGURES.update({name: _sweep_category(name) for name in (config.get("sweeps") or {})})


def _caption(kind, name):
    """The report caption of a table or figure: its own, else the generic one of its kind."""
    if name in CAPTIONED:
        return f"../report/{kind}_{name}.rst"
    generic = (
        "variants" if name.removesuffix("_accuracy") in VARIANT_STUDIES else "sweep"
    )
    return f"../report/{kind}_{generic}.rst"


# The MLflow stores (URI, experiment) the runs log to; "" is the default store in RESULTS.
TRACKING_STORES = sorted(
    {
        (run.config.tracking.uri or "", run.config.tracking.experiment)
        for run in RUNS.values()
        if run.config.tracking.enabled
    }
)


def _single_quoted(text):
    """`text` in single quotes, as the tracking commands always wrote it (the same command,
    so no finished store reruns), any single quote inside it escaped as shlex.quote does.
    """
    escaped = text.replace("'", "'\"'\"'")
    return f"'{escaped}'"


def _tracking_command(verb):
    """One `python -m hybrid.train.tracking` call per store (URI, experiment), chained."""
    calls = [
        f"python -m hybrid.train.tracking {verb} {shell_word(RESULTS)}"
        + (f" --uri {_single_quoted(uri)}" if uri else "")
        + (f" --experiment {_single_quoted(experiment)}" if verb == "init" else "")
        for uri, experiment in TRACKING_STORES
    ]
    return " && ".join(calls) or "true"


def analysis_outputs():
    return [
        *rules.tables.output,
        *rules.figures.output,
        f"{RESULTS}/run_status.csv",
        f"{RESULTS}/tracking/synced.txt",
    ]


def uses_gpu(run):
    return run.config.train.device != "cpu" and RESOURCES.get("gpus", 0) > 0


from hybrid.studies.cost import cost_settings, run_gpu_hours  # noqa: E402

RATES, _ = cost_settings(config)
RUNTIME_CAP = RESOURCES.get("runtime_min", 60)
RUNTIME_MARGIN = RESOURCES.get("runtime_margin", 2.0)
STARTUP_MIN = 10  # start-up, data, evaluation and checkpoints, above the estimate


def train_runtime(wildcards, attempt):
    """A run's time request in minutes: on a GPU, its cost estimate (`cost.images_per_s`)
    times `resources.runtime_margin` plus start-up, doubled on each retry (a run that
    outlives its limit checkpoints on the profile's advance signal and resumes), never
    above `resources.runtime_min`; without a GPU, `runtime_min`."""
    run = RUNS[wildcards.run]
    if not uses_gpu(run):
        return RUNTIME_CAP
    estimate = run_gpu_hours(run.config, RATES) * 60 * RUNTIME_MARGIN + STARTUP_MIN
    return min(RUNTIME_CAP, int(math.ceil(estimate * 2 ** (attempt - 1))))
