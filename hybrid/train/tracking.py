"""MLflow tracking for training runs: a live `RunTracker` and an after-the-fact `sync`.

The result files (`result.json`, `history.csv`) are the source of truth; MLflow is a view of
them. So tracking may fail without failing training: `RunTracker` logs one warning and turns
into a no-op, and `sync` later fills MLflow in from the result files.

    python -m hybrid.train.tracking init RESULTS_DIR [--uri URI] [--experiment NAME]
    python -m hybrid.train.tracking sync RESULTS_DIR [--uri URI] [--experiment NAME]

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
from pathlib import Path

from hybrid.train.mlflow_store import (
    ARTIFACT_DIR,
    CONFIG_HASH,
    DEFAULT_EXPERIMENT,
    LABELS,
    StoreError,
    base_tags,
    fast_http,
    find_experiment,
    find_run,
    flatten,
    init_store,
    log_batch,
    log_outcome,
    logged_steps,
    mlflow_client,
    open_store,
    probe_server,
    resolve_tracking_uri,
    set_labels,
    system_metrics_monitor,
)

log = logging.getLogger(__name__)



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
        self.mlflow_client = None
        self._logged: dict[str, set[int]] = {}
        self._monitor = None  # the system metrics thread, while the run is open
        self._session = contextlib.ExitStack()  # fast HTTP settings, while the run is open

    def _guard(self, action: str, call) -> None:
        if self.disabled or (self.mlflow_run_id is None and action != "start"):
            return
        try:
            with fast_http():
                call()
        except Exception as err:  # noqa: BLE001 - any MLflow failure must leave training alone
            self.disabled = True
            log.warning("MLflow tracking at %s failed in %s (%s: %s); training continues untracked. "
                        "Fill MLflow in later with: python -m hybrid.train.tracking sync RESULTS_DIR",
                        self.uri, action, type(err).__name__, err)

    def start(self) -> None:
        """Continue the MLflow run tagged with this run_id, else create it; start sampling system metrics."""
        if self.disabled:
            return
        self._session.enter_context(fast_http())  # the system metrics thread calls MLflow too
        self._guard("start", self._start)
        if self.disabled:
            self._session.close()

    def _start(self) -> None:
        probe_server(self.uri)
        client = mlflow_client(self.uri)
        experiment_id = find_experiment(client, self.uri, self.experiment)
        run = find_run(client, experiment_id, self.run_id)
        resumed = run is not None
        if run is None:
            run = client.create_run(experiment_id, run_name=self.run_name, tags={CONFIG_HASH: self.run_id})
        else:
            client.update_run(run.info.run_id, status="RUNNING",
                              name=self.run_name if run.info.run_name != self.run_name else None)
            self._logged = logged_steps(client, run)
        params = [(k, v) for k, v in flatten(self.config).items() if k not in run.data.params]
        log_batch(client, run.info.run_id, params=params, tags=base_tags(self.run_id, self.tags).items())
        self.mlflow_client, self.mlflow_run_id = client, run.info.run_id
        try:
            self._monitor = system_metrics_monitor(self.uri, run.info.run_id, resumed)
        except Exception as err:  # noqa: BLE001 - a run without system metrics is still a tracked run
            log.warning("MLflow system metrics off (%s: %s); the run is tracked without them", type(err).__name__, err)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Log one epoch's metrics at step=epoch (skipping points a previous session logged)."""
        points = [(k, v, epoch) for k, v in metrics.items() if v is not None and epoch not in self._logged.get(k, ())]
        self._guard("log_epoch", lambda: log_batch(self.mlflow_client, self.mlflow_run_id, metrics=points))

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
            log_outcome(self.mlflow_client, self.mlflow_client.get_run(self.mlflow_run_id), out, status, result)
            self.mlflow_client.set_terminated(self.mlflow_run_id, status="FINISHED")
        self._end("finish", call)

    def close_interrupted(self) -> None:
        """End the run KILLED (SIGTERM, crash); a resume reopens it."""
        self._end("close_interrupted", lambda: self.mlflow_client.set_terminated(self.mlflow_run_id, status="KILLED"))


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
    run = find_run(client, experiment_id, run_id)
    outcome = "updated"
    if run is None:
        run = client.create_run(experiment_id, run_name=name, tags={CONFIG_HASH: run_id})
        outcome = "created"
    renamed = bool(name) and run.info.run_name != name
    if renamed:
        client.update_run(run.info.run_id, name=name)
    params = [(k, v) for k, v in flatten(config).items() if k not in run.data.params]
    logged = logged_steps(client, run)
    points = [p for p in read_history(out_dir / "history.csv") if p[2] not in logged.get(p[0], ())]
    log_batch(client, run.info.run_id, metrics=points, params=params)
    relabelled = set_labels(client, run, labels or {})
    status = str(result.get("status", "completed"))
    changed = log_outcome(client, client.get_run(run.info.run_id), out_dir, status, result)
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
            experiment_ids[name] = find_experiment(client, uri, name)
        row = labels.get(str(result["run_id"]))
        if row is None:  # no runs.csv: labels stay as they are; a run in no study: no studies tag
            row = {"studies": ""} if runs_csv.is_file() else {}
        tags = {key: row[key] for key in LABELS if key in row}
        counts[_sync_run(client, experiment_ids[name], path.parent, result, row.get("name"), tags)] += 1
    return counts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m hybrid.train.tracking", description=__doc__,
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
