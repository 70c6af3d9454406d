# Config loading and validation, the resolved runs, and the input functions.

import csv
import json
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
from hybrid.studies.stages import sequential_section  # noqa: E402

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
    look="[0-9]+",
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


# A sequential study (workflow/rules/sequential.smk): RUNS holds every run its design may
# train; the analysis waits for the first stage's runs and the other cells' (FIRST_RUNS),
# trained from the start, and for the later stages' runs that the looks plan.
DESIGN = sequential_section(config)
if DESIGN:
    from hybrid.studies import resolve_runs
    from hybrid.studies.stages import first_stage

    FIRST_RUNS = {r.run_id: r for r in first_stage(RUNS.values(), DESIGN["stages"])}
    LAST_LOOK = len(DESIGN["stages"]) - 1
    if workflow.is_main_process:
        logger.info(
            f"sequential: {len(FIRST_RUNS)} runs at the first stage, "
            f"{sum(1 for r in FIRST_RUNS.values() if r.cells)} of them the comparisons' "
            f"cells at {DESIGN['stages'][0]} seeds; looks at {DESIGN['stages']} seeds per "
            f"arm ({DESIGN['spending']} spending); {len(RUNS)} runs at most"
        )
else:
    FIRST_RUNS = RUNS


def run_results(wildcards=None):
    return [] if PARTIAL else [f"{run_dir(r)}/result.json" for r in FIRST_RUNS]


def run_histories(wildcards=None):
    return [] if PARTIAL else [f"{run_dir(r)}/history.csv" for r in FIRST_RUNS]


def look_file(look):
    return f"{RESULTS}/sequential/look_{look}.json"


def looked_runs(look):
    """The sequential runs planned after look `look`: a checkpoint's output, read once it
    exists (until then Snakemake schedules the look and evaluates this again after it).
    """
    with open(checkpoints.look.get(look=look).output[0]) as f:
        return json.load(f)["runs"]


def look_results(wildcards):
    """What look J reads: the runs of the sequential cells planned after look J-1 (the first
    stage's for look 0); nothing in partial mode, which looks at whatever has finished.
    """
    look = int(wildcards.look)
    if PARTIAL:
        return []
    ids = (
        looked_runs(look - 1)
        if look
        else [r for r, run in FIRST_RUNS.items() if run.cells]
    )
    return [f"{run_dir(r)}/result.json" for r in ids]


def planned_results(wildcards=None, name="result.json"):
    """The sequential runs of the final plan (after the last look), beyond the first stage."""
    if PARTIAL or not DESIGN:
        return []
    return [
        f"{run_dir(r)}/{name}" for r in looked_runs(LAST_LOOK) if r not in FIRST_RUNS
    ]


def planned_histories(wildcards=None):
    return planned_results(wildcards, "history.csv")


def planned_runs():
    """The runs of runs.csv: every run, or in a sequential study those of the final plan."""
    if not DESIGN:
        return list(RUNS.values())
    with open(look_file(LAST_LOOK)) as f:
        return resolve_runs(config, json.load(f)["plan"])


def write_candidates(path):
    """Every run a sequential study may train, with its cells and GPU-hour estimate."""
    from hybrid.studies.stages import candidates_table

    rows = candidates_table(list(RUNS.values()), lambda c: run_gpu_hours(c, RATES))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def finished_results():
    """The result files there are now: in partial mode, a change reruns the collection."""
    return (
        sorted(str(p) for p in Path(RESULTS, "runs").glob("*/result.json"))
        if PARTIAL
        else []
    )


def data_ready(wildcards):
    """The data a run reads: fetched (and, for the larger sets, packed) once per data set."""
    set_train_group_size()  # the train jobs' input function: see set_train_group_size
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
    "sequential",
    "sequential_cost",
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
    "sequential": "4. sequential design: where each row stopped",
    "sequential_cost": "5. sequential design: GPU-hours",
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
if DESIGN and config.get("comparisons"):
    TABLES["sequential"] = CATEGORY["claims"]
    TABLES["sequential_cost"] = CATEGORY["claims"]
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


# Packing (`resources.runs_per_gpu: k`): k training runs in one Slurm job that holds one GPU,
# side by side. Snakemake packs k runs of the `train` group into one job (the group size
# follows k, set here: the profile's `group-components` keeps train=1) and sums its members'
# integer resources: each run asks for its own CPUs and memory, so the job gets k times one
# run's. The GPU is the one resource they share: asked for as the string "1", which a group
# keeps as it is where all its jobs give it (an integer would be summed to k GPUs); the Slurm
# plugin turns it into `--gpus=1` (`--gpus=<gpu_model>:1` with a model). Time: a group asks
# for the longest of its members' runtimes, so each run asks for k times its estimate (k runs
# side by side share the GPU's throughput; MPS or overlap only make them faster).
RUNS_PER_GPU = RESOURCES.get("runs_per_gpu", 1)
PACKED_GPU = RUNS_PER_GPU > 1 and any(uses_gpu(run) for run in RUNS.values())
if RUNS_PER_GPU > 1 and RESOURCES.get("gpus", 0) > 1:
    raise WorkflowError(
        f"invalid config: resources.runs_per_gpu: {RUNS_PER_GPU} runs share one GPU, but "
        f"resources.gpus is {RESOURCES['gpus']}; set resources.gpus: 1 (or runs_per_gpu: 1)"
    )
# A group's width is checked against `--cores` (on the login node: `--cores all` is its own
# CPU count), and a run's threads are capped by it: where k runs' CPUs exceed it, Snakemake
# would stack the runs in one job (one run's CPUs and memory, k runs' time, one after another).
# Submitting to a cluster (a job limit, `jobs:` in the profile), `--cores` bounds nothing else,
# so it is raised to k runs' CPUs.
_PACKED_CORES = RUNS_PER_GPU * RESOURCES.get("cpus", 1)
if (
    RUNS_PER_GPU > 1
    and workflow.is_main_process
    and workflow.global_resources["_nodes"].value is not None
    and (workflow.global_resources["_cores"].value or 0) < _PACKED_CORES
):
    workflow.register_resource("_cores", _PACKED_CORES)
_TRAIN_GROUP_SET = []


def set_train_group_size():
    """The `train` group's size (Snakemake's `--group-components train=N`) from
    resources.runs_per_gpu. Snakemake hands the workflow its group settings only after this
    file is read, so the train jobs' first input function sets it, before the jobs are grouped.
    A group size given on the command line or in the profile other than 1 (the profile's)
    or k is refused."""
    if _TRAIN_GROUP_SET:
        return
    _TRAIN_GROUP_SET.append(True)
    components = workflow.group_settings.group_components
    given = components.get("train", 1)
    if given not in (1, RUNS_PER_GPU):
        raise WorkflowError(
            f"invalid config: resources.runs_per_gpu is {RUNS_PER_GPU} but group-components "
            f"asks for train={given}; set the group size in resources.runs_per_gpu only, "
            "and leave train=1 in the profile (slurm/config.yaml)"
        )
    if RUNS_PER_GPU > 1:
        # a plain mapping, as Snakemake's command line makes it
        workflow.group_settings.group_components = {**components, "train": RUNS_PER_GPU}


# Inside a packed job, the job's Snakemake (remote mode, the plugin's `slurm-jobstep`
# executor) groups its k runs again (set_train_group_size, from the same config) and starts
# them as one `srun` step: one Snakemake that runs the k runs side by side on the step's
# CPUs and the job's GPU (a step holds all of the job's GPUs unless it asks otherwise). There
# the runs ask for no GPU of their own (train_gpu), or the step would ask for k. The process
# that runs them (remote mode, no job limit: the plugin gives `--jobs 1` to the job's
# Snakemake only) starts a private CUDA MPS daemon for them where there is one, and stops it
# when it exits (hybrid/train/mps.py).
if (
    PACKED_GPU
    and workflow.remote_exec
    and workflow.global_resources["_nodes"].value is None
):
    import atexit

    from hybrid.train.mps import start as start_mps

    _mps = start_mps(log=logger.info)
    if _mps is not None:
        atexit.register(_mps.stop, logger.info)


def train_gpu(wildcards):
    """A run's GPU request: `resources.gpus` for a run on a GPU; in a packed study the one GPU
    the group's runs share, as a string (see above), and none inside the job, whose step
    has the job's GPU already."""
    if PACKED_GPU:
        return 0 if workflow.remote_exec else "1"
    return RESOURCES.get("gpus", 0) if uses_gpu(RUNS[wildcards.run]) else 0


def train_runtime(wildcards, attempt):
    """A run's time request in minutes: on a GPU, its cost estimate (`cost.images_per_s`)
    times `resources.runtime_margin`, times `resources.runs_per_gpu` (the runs packed on its
    GPU), plus start-up, doubled on each retry (a run that outlives its limit checkpoints on
    the profile's advance signal and resumes), never above `resources.runtime_min`; without a
    GPU, `runtime_min`."""
    run = RUNS[wildcards.run]
    if not uses_gpu(run):
        return RUNTIME_CAP
    estimate = (
        run_gpu_hours(run.config, RATES) * 60 * RUNTIME_MARGIN * RUNS_PER_GPU
        + STARTUP_MIN
    )
    return min(RUNTIME_CAP, int(math.ceil(estimate * 2 ** (attempt - 1))))
