"""An MLflow store as the tracker and the sync use it: opened with a fast health probe,
experiments created once and tagged as training experiments, runs found again by their
config hash, batches logged within MLflow's limits, labels and outcomes set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

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
def fast_http():
    """Few retries and short timeouts for MLflow's HTTP client, for the calls inside only."""
    added = {k: v for k, v in FAST_HTTP.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def probe_server(uri: str) -> None:
    """Raise ConnectionError quickly when an http(s) tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass  # the server answered; whatever is wrong shows in the real calls
    except (OSError, ValueError) as err:
        raise ConnectionError(f"MLflow server {uri} is unreachable ({err})") from err


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def find_experiment(client, uri: str, name: str) -> str:
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
        client = mlflow_client(uri)
        if experiment is None:
            client.search_experiments(max_results=1)  # opens (or builds) the store now, not mid-sync
            return client, None
        return client, find_experiment(client, uri, experiment)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy, alembic and HTTP errors alike
        detail = " ".join(str(err).split())[:300]
        fix = (f"move {uri[len('sqlite:///'):]} aside (a crash while MLflow built it leaves it half-made), "
               "then run `python -m hybrid.train.tracking sync RESULTS_DIR` to rebuild it from the result files"
               if uri.startswith("sqlite:///") else "check that the server is up and reachable, then rerun")
        raise StoreError(f"MLflow store {uri} cannot be opened ({type(err).__name__}: {detail}); {fix}") from None


def init_store(uri: str, experiment: str) -> str:
    """Create the store and `experiment` once, before the jobs that log to it; its id."""
    probe_server(uri)
    return open_store(uri, experiment)[1]


def find_run(client, experiment_id: str, run_id: str):
    for tag in (CONFIG_HASH, OLD_CONFIG_HASH):
        runs = client.search_runs([experiment_id], filter_string=f"tags.{tag} = '{run_id}'",
                                  max_results=1, order_by=["attributes.start_time ASC"])
        if runs:
            return runs[0]
    return None


def logged_steps(client, run) -> dict[str, set[int]]:
    """For each metric key of an MLflow run, the steps already logged."""
    return {key: {m.step for m in client.get_metric_history(run.info.run_id, key)} for key in run.data.metrics}


def log_batch(client, mlflow_run_id: str, metrics=(), params=(), tags=()) -> None:
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


def set_labels(client, run, labels: dict[str, str]) -> bool:
    """Make the run's label tags say `labels` (an empty value removes the tag); whether any changed."""
    tags = run.data.tags
    changed = [(k, v) for k, v in labels.items() if v and tags.get(k) != v]
    dropped = [k for k, v in labels.items() if not v and k in tags]
    log_batch(client, run.info.run_id, tags=changed)
    for key in dropped:
        client.delete_tag(run.info.run_id, key)
    return bool(changed or dropped)


def base_tags(run_id: str, extra: dict | None) -> dict[str, str]:
    tags = {CONFIG_HASH: run_id, "host": socket.gethostname()}
    if os.environ.get("SLURM_JOB_ID"):
        tags["SLURM_JOB_ID"] = os.environ["SLURM_JOB_ID"]
    tags.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    return tags


def log_outcome(client, run, out_dir: Path, status: str, result: dict) -> bool:
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
    log_batch(client, mlflow_run_id, metrics=finals, tags=tags)
    return bool(missing or finals or tags)


def system_metrics_monitor(uri: str, mlflow_run_id: str, resumed: bool):
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
