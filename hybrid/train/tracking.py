"""MLflow tracking for training runs: a live `RunTracker` and an after-the-fact `sync`.

The result files (`result.json`, `history.csv`) are the source of truth; MLflow is a view of
them. So tracking may fail without failing training: `RunTracker` logs one warning and turns
into a no-op, and `sync` later fills MLflow in from the result files.

    python -m hybrid.tracking init RESULTS_DIR [--uri URI] [--experiment NAME]
    python -m hybrid.tracking sync RESULTS_DIR [--uri URI] [--experiment NAME]

`init` creates the store and the experiment once, before any training job starts (the
workflow's local rule `tracking_store`): MLflow's SQLite store creates its schema on first
use, and jobs that start together on a fresh store race to create it ("table ... already
exists"), leaving runs untracked or the store half-made. `sync` ends the workflow
(`tracking_sync`), logging whatever a job could not. A store that cannot be opened is named
in one line with what to do (move it aside; `sync` rebuilds it from the result files).

One training run is one MLflow run, found again by its tag `config_hash` (the run id of the
config's content hash; stores written before the tag was renamed are found by their old
`run_id` tag): a resumed training continues its MLflow run, and `sync` never duplicates a
run or a metric point. Runs carry MLflow's standard source tags (`mlflow.source.git.commit`,
`mlflow.source.git.branch`, `mlflow.source.name`, `mlflow.source.type`) and the workflow's
`variant` and `studies` from `results/runs.csv`, so that the UI filters by study: a training
run reads its own row when it starts (`study_labels`), and `sync` sets every run's labels
anew, so a study added later relabels finished runs without retraining them. Params are the
resolved config's keys, unset (None) ones left out. A diverged run is a result, not a
crash: it ends FINISHED with tag `status=diverged`; only an interrupted run ends KILLED (and
is reopened on resume).

Experiments are tagged `mlflow.experimentKind=custom_model_development`, created so or
tagged when they lack it: without the tag MLflow 3's UI opens an experiment on its GenAI
pages (traces, evaluations) rather than its runs, charts and metrics.

System metrics: a training run samples CPU, memory, disk and network (and NVIDIA GPUs where
`nvidia-ml-py` is installed) with MLflow's own `SystemMetricsMonitor`, run against the
client's run id, as `system/*` metrics every 10 s (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL);
MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false turns it off. A monitor that fails to start is
one warning, and the run is tracked without it.

Fast failure: MLflow's HTTP client retries for minutes by default. For http(s) URIs,
`start()` first GETs `<uri>/health` with a 3 s timeout, and from `start()` to `finish()` or
`close_interrupted()` MLflow's HTTP calls in the process (the tracker's and the system
metrics thread's) run with MLFLOW_HTTP_REQUEST_MAX_RETRIES=1, MLFLOW_HTTP_REQUEST_TIMEOUT=5
and MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1 (unless the user set them), so a server that goes
away mid-run costs seconds once, not minutes per epoch. `sync` keeps MLflow's patient
defaults: nothing waits on it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "hybrid-pooling"
ARTIFACTS = ("result.json", "history.csv", "weights.pt")  # each logged when the run wrote it
CONFIG_HASH = "config_hash"  # the tag naming a run's config hash (RunConfig.run_id)
OLD_CONFIG_HASH = "run_id"  # its name before, easily taken for MLflow's own run id
SOURCE_COMMIT = "mlflow.source.git.commit"
# The experiment tag MLflow 3's UI reads to pick an experiment's pages, and its value for
# model training ("Machine learning"; mlflow/server/js/src/experiment-tracking/constants.ts,
# ExperimentKind.CUSTOM_MODEL_DEVELOPMENT). Without it the UI opens the GenAI pages.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT = "custom_model_development"
# The run tags that come from the workflow's runs.csv; `sync` keeps them up to date.
LABELS = ("variant", "studies")
# Where a SQLite store beside the results keeps artifacts; `sync` skips it (it holds result.json copies).
ARTIFACT_DIR = "mlartifacts"
# MLflow's limits (mlflow.utils.validation): values longer than this are rejected.
MAX_PARAM_LENGTH = 6000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
# Scalars of result.json logged as `final/<key>` metrics, so runs compare in the MLflow UI.
FINAL_METRICS = ("test_accuracy", "best_test_accuracy", "best_epoch", "test_loss", "epochs_completed",
                 "params", "flops", "wall_time_s", "images_per_s")
FAST_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
             "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
PROBE_TIMEOUT_S = 3.0


def resolve_tracking_uri(configured: str | None, results_dir) -> str:
    """The config's URI, else $MLFLOW_TRACKING_URI, else a SQLite store in the results dir."""
    if configured:
        return configured
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested dict to dotted string params: {"model": {"smoothness": 4.0}} -> {"model.smoothness": "4.0"}.

    Unset (None) values are left out, not logged as "None"; lists become JSON strings; values
    past MLflow's length limit are cut and marked with "...".
    """
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
            continue
        text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
        flat[name] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    return flat


@contextlib.contextmanager
def _fast_http():
    """Few retries and short timeouts for MLflow's HTTP client, for the calls inside only."""
    added = {k: v for k, v in FAST_HTTP.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _probe(uri: str) -> None:
    """Raise ConnectionError quickly when an http(s) tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass  # the server answered; whatever is wrong shows in the real calls
    except (OSError, ValueError) as err:
        raise ConnectionError(f"MLflow server {uri} is unreachable ({err})") from err


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _experiment_id(client, uri: str, name: str) -> str:
    """The id of experiment `name`, created (artifacts beside a SQLite store) when missing,
    and tagged as a model-training experiment (EXPERIMENT_KIND_TAG) when it lacks the kind."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if uri.startswith("sqlite:///"):  # MLflow would put artifacts under ./mlruns of the cwd
            slug = re.sub(r"[^\w.-]+", "_", name)
            location = (Path(uri[len("sqlite:///"):]).resolve().parent / ARTIFACT_DIR / slug).as_uri()
        try:
            return client.create_experiment(name, artifact_location=location,
                                            tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT})
        except Exception:  # another job created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if not experiment.tags.get(EXPERIMENT_KIND_TAG):  # made before the tag, or by hand: a user's kind stays
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT)
    return experiment.experiment_id


class StoreError(RuntimeError):
    """An MLflow store that cannot be opened; the message names it and what to do."""


def open_store(uri: str, experiment: str | None = None):
    """(client, experiment id) of `experiment` in the store at `uri`, creating either when
    missing; without `experiment`, (client, None) of the store alone (MLflow's own "Default"
    experiment is all it creates). A store that fails to open raises StoreError naming it and
    the fix."""
    try:
        client = _client(uri)
        if experiment is None:
            client.search_experiments(max_results=1)  # opens (or builds) the store now, not mid-sync
            return client, None
        return client, _experiment_id(client, uri, experiment)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy, alembic and HTTP errors alike
        detail = " ".join(str(err).split())[:300]
        fix = (f"move {uri[len('sqlite:///'):]} aside (a crash while MLflow built it leaves it half-made), "
               "then run `python -m hybrid.tracking sync RESULTS_DIR` to rebuild it from the result files"
               if uri.startswith("sqlite:///") else "check that the server is up and reachable, then rerun")
        raise StoreError(f"MLflow store {uri} cannot be opened ({type(err).__name__}: {detail}); {fix}") from None


def init_store(uri: str, experiment: str) -> str:
    """Create the store and `experiment` once, before the jobs that log to it; its id."""
    _probe(uri)
    return open_store(uri, experiment)[1]


def _find_run(client, experiment_id: str, run_id: str):
    for tag in (CONFIG_HASH, OLD_CONFIG_HASH):
        runs = client.search_runs([experiment_id], filter_string=f"tags.{tag} = '{run_id}'",
                                  max_results=1, order_by=["attributes.start_time ASC"])
        if runs:
            return runs[0]
    return None


def _logged_steps(client, run) -> dict[str, set[int]]:
    """For each metric key of an MLflow run, the steps already logged."""
    return {key: {m.step for m in client.get_metric_history(run.info.run_id, key)} for key in run.data.metrics}


def _log_batch(client, mlflow_run_id: str, metrics=(), params=(), tags=()) -> None:
    from mlflow.entities import Metric, Param, RunTag

    params, tags = [Param(k, v) for k, v in params], [RunTag(k, v) for k, v in tags]
    for i in range(0, len(params), MAX_PARAMS_PER_BATCH):
        client.log_batch(mlflow_run_id, params=params[i: i + MAX_PARAMS_PER_BATCH])
    for i in range(0, len(tags), MAX_PARAMS_PER_BATCH):
        client.log_batch(mlflow_run_id, tags=tags[i: i + MAX_PARAMS_PER_BATCH])
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(step)) for k, v, step in metrics]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(mlflow_run_id, metrics=metrics[i: i + MAX_METRICS_PER_BATCH])


def _set_labels(client, run, labels: dict[str, str]) -> bool:
    """Make the run's label tags say `labels` (an empty value removes the tag); whether any changed."""
    tags = run.data.tags
    changed = [(k, v) for k, v in labels.items() if v and tags.get(k) != v]
    dropped = [k for k, v in labels.items() if not v and k in tags]
    _log_batch(client, run.info.run_id, tags=changed)
    for key in dropped:
        client.delete_tag(run.info.run_id, key)
    return bool(changed or dropped)


def _base_tags(run_id: str, extra: dict | None) -> dict[str, str]:
    tags = {CONFIG_HASH: run_id, "host": socket.gethostname()}
    if os.environ.get("SLURM_JOB_ID"):
        tags["SLURM_JOB_ID"] = os.environ["SLURM_JOB_ID"]
    tags.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    return tags


def _log_outcome(client, run, out_dir: Path, status: str, result: dict) -> bool:
    """Log what is missing of a run's outcome: artifacts, `final/*` metrics, status tag.

    Returns whether anything was logged.
    """
    mlflow_run_id = run.info.run_id
    logged = {a.path for a in client.list_artifacts(mlflow_run_id)}
    missing = [name for name in ARTIFACTS if (out_dir / name).is_file() and name not in logged]
    for name in missing:
        client.log_artifact(mlflow_run_id, str(out_dir / name))
    finals = [(f"final/{k}", result[k], 0) for k in FINAL_METRICS
              if isinstance(result.get(k), (int, float)) and f"final/{k}" not in run.data.metrics]
    tags = [("status", status)] if run.data.tags.get("status") != status else []
    if result.get("git_commit") and SOURCE_COMMIT not in run.data.tags:
        tags.append((SOURCE_COMMIT, str(result["git_commit"])))
    _log_batch(client, mlflow_run_id, metrics=finals, tags=tags)
    return bool(missing or finals or tags)


def _system_metrics(uri: str, mlflow_run_id: str, resumed: bool):
    """MLflow's SystemMetricsMonitor, started on the client run `mlflow_run_id` (its steps
    continuing a resumed run's); None where it is switched off or cannot run."""
    if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "").strip().lower() in ("false", "0"):
        return None
    # tracking_uri: the client's store, not the fluent API's (mlflow >= 3.7 and psutil, both
    # declared in pyproject.toml and workflow/envs/train.yaml)
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(mlflow_run_id, resume_logging=resumed, tracking_uri=uri)
    monitor.start()
    return monitor


class RunTracker:
    """Mirror one training run into MLflow; never lets MLflow failures stop training.

    After the first failing call the tracker logs one warning and ignores all later calls.
    `uri=None` means tracking is off: every call is a silent no-op. Between `start()` and
    `finish()` or `close_interrupted()` a thread samples system metrics into the run.
    """

    def __init__(self, uri: str | None, experiment: str, run_id: str, run_name: str, config: dict,
                 tags: dict | None = None):
        self.uri, self.experiment, self.run_id, self.run_name = uri, experiment, run_id, run_name
        self.config, self.tags = config, tags or {}
        self.mlflow_run_id: str | None = None
        self.disabled = uri is None
        self._client = None
        self._logged: dict[str, set[int]] = {}
        self._monitor = None  # the system metrics thread, while the run is open
        self._session = contextlib.ExitStack()  # fast HTTP settings, while the run is open

    def _guard(self, action: str, call) -> None:
        if self.disabled or (self.mlflow_run_id is None and action != "start"):
            return
        try:
            with _fast_http():
                call()
        except Exception as err:  # noqa: BLE001 - any MLflow failure must leave training alone
            self.disabled = True
            log.warning("MLflow tracking at %s failed in %s (%s: %s); training continues untracked. "
                        "Fill MLflow in later with: python -m hybrid.tracking sync RESULTS_DIR",
                        self.uri, action, type(err).__name__, err)

    def start(self) -> None:
        """Continue the MLflow run tagged with this run_id, else create it; start sampling system metrics."""
        if self.disabled:
            return
        self._session.enter_context(_fast_http())  # the system metrics thread calls MLflow too
        self._guard("start", self._start)
        if self.disabled:
            self._session.close()

    def _start(self) -> None:
        _probe(self.uri)
        client = _client(self.uri)
        experiment_id = _experiment_id(client, self.uri, self.experiment)
        run = _find_run(client, experiment_id, self.run_id)
        resumed = run is not None
        if run is None:
            run = client.create_run(experiment_id, run_name=self.run_name, tags={CONFIG_HASH: self.run_id})
        else:
            client.update_run(run.info.run_id, status="RUNNING",
                              name=self.run_name if run.info.run_name != self.run_name else None)
            self._logged = _logged_steps(client, run)
        params = [(k, v) for k, v in flatten(self.config).items() if k not in run.data.params]
        _log_batch(client, run.info.run_id, params=params, tags=_base_tags(self.run_id, self.tags).items())
        self._client, self.mlflow_run_id = client, run.info.run_id
        try:
            self._monitor = _system_metrics(self.uri, run.info.run_id, resumed)
        except Exception as err:  # noqa: BLE001 - a run without system metrics is still a tracked run
            log.warning("MLflow system metrics off (%s: %s); the run is tracked without them", type(err).__name__, err)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics at step=epoch (skipping points a previous session logged)."""
        points = [(k, v, epoch) for k, v in metrics.items() if v is not None and epoch not in self._logged.get(k, ())]
        self._guard("log_epoch", lambda: _log_batch(self._client, self.mlflow_run_id, metrics=points))

    def _end(self, action: str, call) -> None:
        """Stop the system metrics thread (logging its last samples), then `call`, then restore
        MLflow's HTTP settings; the thread stops even where tracking failed earlier."""
        monitor, self._monitor = self._monitor, None
        try:
            if monitor is not None:
                monitor.finish()  # joins the thread: before the run ends, so no sample lands after it
            self._guard(action, call)
        finally:
            self._session.close()

    def finish(self, status: str, out_dir) -> None:
        """Log result.json and history.csv, tag `status`, end the run FINISHED (diverged too)."""
        def call():
            out = Path(out_dir)
            result = json.loads((out / "result.json").read_text()) if (out / "result.json").is_file() else {}
            _log_outcome(self._client, self._client.get_run(self.mlflow_run_id), out, status, result)
            self._client.set_terminated(self.mlflow_run_id, status="FINISHED")
        self._end("finish", call)

    def close_interrupted(self) -> None:
        """End the run KILLED (SIGTERM, crash); a resume reopens it."""
        self._end("close_interrupted", lambda: self._client.set_terminated(self.mlflow_run_id, status="KILLED"))


def read_history(path: Path) -> list[tuple[str, float, int]]:
    """history.csv as (metric, value, epoch) points; empty cells are skipped, "nan" is kept."""
    if not path.is_file():
        return []
    points = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            epoch = int(row.pop("epoch"))
            for key, value in row.items():
                if value not in ("", None):
                    points.append((key, float(value), epoch))
    return points


def _sync_run(client, experiment_id: str, out_dir: Path, result: dict, name: str | None = None,
              labels: dict[str, str] | None = None) -> str:
    """Log what MLflow lacks of one result directory, name its run `name` (else result.json's)
    and set its `labels` tags (an empty value removes one; None leaves them alone); returns
    created, updated or unchanged."""
    run_id, config = str(result["run_id"]), result.get("config", {})
    name = name or result.get("run_name")
    run = _find_run(client, experiment_id, run_id)
    outcome = "updated"
    if run is None:
        run = client.create_run(experiment_id, run_name=name, tags={CONFIG_HASH: run_id})
        outcome = "created"
    renamed = bool(name) and run.info.run_name != name
    if renamed:
        client.update_run(run.info.run_id, name=name)
    params = [(k, v) for k, v in flatten(config).items() if k not in run.data.params]
    logged = _logged_steps(client, run)
    points = [p for p in read_history(out_dir / "history.csv") if p[2] not in logged.get(p[0], ())]
    _log_batch(client, run.info.run_id, metrics=points, params=params)
    relabelled = _set_labels(client, run, labels or {})
    status = str(result.get("status", "completed"))
    changed = _log_outcome(client, client.get_run(run.info.run_id), out_dir, status, result)
    if run.info.status != "FINISHED":
        client.set_terminated(run.info.run_id, status="FINISHED")
        changed = True
    return outcome if outcome == "created" or renamed or params or points or relabelled or changed else "unchanged"


def _runs_csv_rows(runs_csv: Path) -> dict[str, dict[str, str]]:
    with runs_csv.open(newline="") as f:
        return {row["run_id"]: row for row in csv.DictReader(f) if row.get("run_id")}


def run_labels(runs_csv: Path) -> dict[str, dict[str, str]]:
    """{run id: {variant, studies, name}} from the workflow's runs.csv, where there is one."""
    if not runs_csv.is_file():
        return {}
    return {run_id: {key: row.get(key) or "" for key in (*LABELS, "name")}
            for run_id, row in _runs_csv_rows(runs_csv).items()}


def study_labels(results_dir, run_id: str) -> dict[str, str]:
    """The MLflow tags `variant` and `studies` of run `run_id` (a config hash) from
    `<results_dir>/runs.csv`, for a training run to carry from its start; empty ones left
    out, and {} where the file or its row is missing (a run outside the workflow) or the file
    cannot be read (one warning: labels never stop training; `sync` sets them later)."""
    runs_csv = Path(results_dir) / "runs.csv"
    try:
        row = _runs_csv_rows(runs_csv).get(run_id, {}) if runs_csv.is_file() else {}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        log.warning("%s is unreadable (%s: %s); run %s starts without its variant and studies tags",
                    runs_csv, type(err).__name__, err, run_id)
        return {}
    return {key: row[key] for key in LABELS if row.get(key)}


def sync(results_dir, uri: str | None = None, experiment: str | None = None) -> dict:
    """Log every result.json under `results_dir` that MLflow lacks, or lacks in part, and set
    every run's name and `variant` and `studies` tags from runs.csv where there is one (a
    run in no study loses its `studies` tag). Creates no experiment that no run logs to.
    Idempotent."""
    results_dir = Path(results_dir)
    uri = resolve_tracking_uri(uri, results_dir)
    client, _ = open_store(uri)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    runs_csv = results_dir / "runs.csv"
    labels = run_labels(runs_csv)
    experiment_ids: dict[str, str] = {}
    for path in sorted(results_dir.rglob("result.json")):
        if {ARTIFACT_DIR, "mlruns"} & set(path.relative_to(results_dir).parts):
            continue  # a copy logged as an artifact, not a run directory
        try:
            result = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it, then sync again") from err
        if "run_id" not in result:
            raise ValueError(f"{path} has no 'run_id', so it is no training result; move it out of {results_dir}")
        name = experiment or (result.get("config", {}).get("tracking") or {}).get("experiment") or DEFAULT_EXPERIMENT
        if name not in experiment_ids:
            experiment_ids[name] = _experiment_id(client, uri, name)
        row = labels.get(str(result["run_id"]))
        if row is None:  # no runs.csv: labels stay as they are; a run in no study: no studies tag
            row = {"studies": ""} if runs_csv.is_file() else {}
        tags = {key: row[key] for key in LABELS if key in row}
        counts[_sync_run(client, experiment_ids[name], path.parent, result, row.get("name"), tags)] += 1
    return counts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m hybrid.tracking", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("init", "create the store and the experiment before any training job"),
                       ("sync", "log result files that MLflow lacks")):
        command = commands.add_parser(name, help=text)
        command.add_argument("results_dir", type=Path)
        command.add_argument("--uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else RESULTS_DIR/mlflow.db)")
        command.add_argument("--experiment", help="experiment name (sync: default each run's config, "
                                                  f"else {DEFAULT_EXPERIMENT})")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            args.results_dir.mkdir(parents=True, exist_ok=True)
            uri = resolve_tracking_uri(args.uri, args.results_dir)
            experiment = args.experiment or DEFAULT_EXPERIMENT
            print(f"{uri} experiment {experiment!r} ready (id {init_store(uri, experiment)})")
            return {}
        if not args.results_dir.is_dir():
            parser.error(f"results directory {args.results_dir} does not exist; pass the folder holding the runs")
        counts = sync(args.results_dir, args.uri, args.experiment)
    except (StoreError, ConnectionError, ValueError) as err:
        parser.exit(2, f"error: {' '.join(str(err).split())}\n")
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


if __name__ == "__main__":
    main()
