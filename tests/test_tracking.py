"""MLflow tracking against real stores: a SQLite file in tmp_path and a real `mlflow server` on loopback."""

import csv
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from hybrid.train.tracking import RunTracker, flatten, main, resolve_tracking_uri, study_labels, sync

EXPERIMENT = "test-hybrid"
STRIDE = "stride/layer2.0.pool/v"


def config(seed: int = 0) -> dict:
    return {
        "dataset": {"name": "cifar10", "batch_size": 128},
        "model": {"variant": "hybrid", "smoothness": 4.0, "init_strides": [2.0, 2.0]},
        "train": {"epochs": 3, "lr": 0.1},
        "seed": seed,
        "tracking": {"uri": None, "experiment": EXPERIMENT},
    }


def epoch_metrics(epoch: int, loss: float | None = None) -> dict[str, float]:
    return {"train_loss": 2.0 / epoch if loss is None else loss, "test_accuracy": 0.3 * epoch,
            "lr": 0.1, STRIDE: 2.0 + 0.1 * epoch, "stride/layer2.0.pool/h": 1.9}


def write_run(out_dir, run_id: str, seed: int = 0, epochs: int = 3, status: str = "completed") -> dict:
    """A hand-made result.json and history.csv, as a finished training writes them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"epoch": e, **epoch_metrics(e, float("nan") if status == "diverged" and e == epochs else None)}
            for e in range(1, epochs + 1)]
    with (out_dir / "history.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = {"run_id": run_id, "run_name": f"cifar10/hybrid/seed{seed}", "status": status,
              "test_accuracy": 0.9, "best_test_accuracy": 0.91, "best_epoch": epochs, "test_loss": 0.3,
              "epochs_completed": epochs, "learned_strides": {"layer2.0.pool": [2.3, 1.9]},
              "params": 11_000_000, "flops": 5.5e8, "wall_time_s": 12.5, "images_per_s": 4000.0,
              "device": "cpu", "versions": {"torch": "2.4"}, "git_commit": "abc123", "config": config(seed)}
    (out_dir / "result.json").write_text(json.dumps(result))
    return result


def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs(uri: str, experiment: str = EXPERIMENT):
    client = MlflowClient(tracking_uri=uri)
    return client, client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def points(client, run) -> int:
    return sum(len(client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics)


def steps(client, run, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resolve_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri("http://config:5000", tmp_path) == "http://config:5000"
    assert resolve_tracking_uri(None, tmp_path) == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_flatten_gives_dotted_string_params_within_mlflow_limits():
    flat = flatten({**config(), "notes": "x" * 10_000, "extra": {}})
    assert flat["model.smoothness"] == "4.0"
    assert flat["model.init_strides"] == "[2.0, 2.0]"
    assert flat["seed"] == "0" and flat["extra"] == "{}" and flat["tracking.experiment"] == EXPERIMENT
    assert "tracking.uri" not in flat and "None" not in flat.values()  # unset is left out, not "None"
    assert len(flat["notes"]) == 6000 and flat["notes"].endswith("...")


def test_tracker_logs_params_tags_epochs_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    uri, out = sqlite_uri(tmp_path), tmp_path / "runs" / "r1"
    tracker = RunTracker(uri, EXPERIMENT, "r1", "cifar10/hybrid/seed0", config(),
                         tags={"mlflow.source.git.commit": "abc123", "variant": "hybrid"})
    tracker.start()
    for epoch in (1, 2, 3):
        tracker.log_epoch(epoch, epoch_metrics(epoch))
    write_run(out, "r1")
    tracker.finish("completed", out)

    client, [run] = runs(uri)
    assert run.info.run_name == "cifar10/hybrid/seed0" and run.info.status == "FINISHED"
    assert run.data.params["model.smoothness"] == "4.0" and run.data.params["train.lr"] == "0.1"
    tags = run.data.tags
    assert (tags["config_hash"], tags["SLURM_JOB_ID"], tags["mlflow.source.git.commit"], tags["status"]) == (
        "r1", "4242", "abc123", "completed")
    assert tags["variant"] == "hybrid" and "run_id" not in tags  # not to be taken for MLflow's own id
    assert tags["host"] == socket.gethostname()
    assert steps(client, run, STRIDE) == [1, 2, 3]
    assert run.data.metrics["final/best_test_accuracy"] == 0.91
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"result.json", "history.csv"}
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())  # beside the store, not in cwd


def test_resumed_tracker_continues_the_same_run(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    uri, out = sqlite_uri(tmp_path), tmp_path / "r2"
    first = RunTracker(uri, EXPERIMENT, "r2", "cifar10/hybrid/seed1", config(1))
    first.start()
    for epoch in (1, 2):
        first.log_epoch(epoch, epoch_metrics(epoch))
    first.close_interrupted()
    client, [run] = runs(uri)
    assert run.info.status == "KILLED" and "SLURM_JOB_ID" not in run.data.tags

    resumed = RunTracker(uri, EXPERIMENT, "r2", "cifar10/hybrid/seed1", config(1))
    resumed.start()
    assert resumed.mlflow_run_id == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    for epoch in (2, 3):  # the checkpoint was from epoch 1: epoch 2 runs again
        resumed.log_epoch(epoch, epoch_metrics(epoch))
    write_run(out, "r2", seed=1, status="diverged")
    resumed.finish("diverged", out)

    client, [run] = runs(uri)
    assert steps(client, run, "test_accuracy") == [1, 2, 3]
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "diverged"


def test_tracker_without_uri_is_a_silent_no_op(tmp_path, caplog):
    tracker = RunTracker(None, EXPERIMENT, "r0", "off", config())
    write_run(tmp_path, "r0")
    with caplog.at_level(logging.WARNING, logger="hybrid.train.tracking"):
        tracker.start()
        tracker.log_epoch(1, epoch_metrics(1))
        tracker.finish("completed", tmp_path)
    assert tracker.mlflow_run_id is None and not caplog.records


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free loopback port; yields (uri, stop)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}", "--artifacts-destination", str(tmp_path / "art")],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"), start_new_session=True)

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)

    uri, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop()
                pytest.fail(f"mlflow server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.3)
    yield uri, stop
    stop()


def test_tracker_through_a_real_server_and_its_loss_midway(mlflow_server, tmp_path, caplog):
    uri, stop = mlflow_server
    out = tmp_path / "r3"
    tracker = RunTracker(uri, EXPERIMENT, "r3", "cifar10/hybrid/seed3", config(3))
    tracker.start()
    tracker.log_epoch(1, epoch_metrics(1))
    write_run(out, "r3", seed=3, epochs=1)
    tracker.finish("completed", out)

    client, [run] = runs(uri)
    assert run.info.run_name == "cifar10/hybrid/seed3" and run.data.params["model.variant"] == "hybrid"
    assert steps(client, run, STRIDE) == [1] and run.data.tags["status"] == "completed"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"result.json", "history.csv"}
    assert list((tmp_path / "art").rglob("history.csv"))  # proxied to the server's artifact store

    again = RunTracker(uri, EXPERIMENT, "r3b", "cifar10/hybrid/seed4", config(4))
    again.start()
    stop()  # the server dies mid-training
    with caplog.at_level(logging.WARNING, logger="hybrid.train.tracking"):
        began = time.monotonic()
        for epoch in (1, 2, 3):
            again.log_epoch(epoch, epoch_metrics(epoch))
        again.finish("completed", out)
        assert time.monotonic() - began < 15
    assert again.disabled and len([r for r in caplog.records if r.name == "hybrid.train.tracking"]) == 1


def test_outage_is_fast_and_sync_fills_mlflow_in(tmp_path, monkeypatch, caplog):
    results = tmp_path / "results"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="hybrid.train.tracking"):
        began = time.monotonic()
        tracker = RunTracker(down, EXPERIMENT, "r4", "cifar10/hybrid/seed4", config(4))
        tracker.start()
        for epoch in (1, 2, 3):
            tracker.log_epoch(epoch, epoch_metrics(epoch))
        write_run(results / "cifar10" / "r4", "r4", seed=4)
        tracker.finish("completed", results / "cifar10" / "r4")
        tracker.close_interrupted()
        assert time.monotonic() - began < 15
    assert len([r for r in caplog.records if r.name == "hybrid.train.tracking"]) == 1

    # A second run reached MLflow but was killed after epoch 2; its result files are complete.
    uri = sqlite_uri(results)
    partial = RunTracker(uri, EXPERIMENT, "r5", "cifar10/hybrid/seed5", config(5))
    partial.start()
    for epoch in (1, 2):
        partial.log_epoch(epoch, epoch_metrics(epoch))
    partial.close_interrupted()
    write_run(results / "cifar10" / "r5", "r5", seed=5, status="diverged")

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert sync(results) == {"created": 1, "updated": 1, "unchanged": 0}  # default store: results/mlflow.db
    client, found = runs(uri)
    by_id = {run.data.tags["config_hash"]: run for run in found}
    assert sorted(by_id) == ["r4", "r5"]
    for run in found:
        assert steps(client, run, STRIDE) == [1, 2, 3] and run.info.status == "FINISHED"
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"result.json", "history.csv"}
    assert by_id["r4"].info.run_name == "cifar10/hybrid/seed4" and by_id["r4"].data.params["seed"] == "4"
    assert by_id["r5"].data.tags["status"] == "diverged"
    before = {run.info.run_id: points(client, run) for run in found}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["sync", str(results)]) == {"created": 0, "updated": 0, "unchanged": 2}
    client, found = runs(uri)
    assert {run.info.run_id: points(client, run) for run in found} == before


def test_init_builds_the_store_once_and_a_broken_store_is_one_line(tmp_path, capsys):
    main(["init", str(tmp_path), "--experiment", "tiny"])
    assert "experiment 'tiny' ready" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_experiment_by_name("tiny") is not None
    main(["init", str(tmp_path), "--experiment", "tiny"])  # again: nothing new, no error
    assert len(client.search_experiments()) == 2  # "Default" and "tiny"
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"half a store")
    for verb in ("init", "sync"):
        with pytest.raises(SystemExit) as exit_:
            main([verb, str(tmp_path), "--uri", f"sqlite:///{broken}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1, err
        assert f"MLflow store sqlite:///{broken} cannot be opened" in err and "move" in err and "sync" in err


def test_sync_finds_runs_by_their_old_tag_and_labels_them_from_runs_csv(tmp_path):
    """A store written when the config hash was tagged `run_id`: sync continues those runs
    (no duplicate) and tags every run with the workflow's variant and studies."""
    uri = sqlite_uri(tmp_path)
    write_run(tmp_path / "runs" / "r1", "r1")
    client = MlflowClient(tracking_uri=uri)
    old = client.create_run(client.create_experiment(EXPERIMENT), tags={"run_id": "r1"})
    (tmp_path / "runs.csv").write_text("run_id,name,studies,variant,seed\nr1,x,pooling;smoothness,hybrid,0\n")
    assert sync(tmp_path, uri) == {"created": 0, "updated": 1, "unchanged": 0}
    client, [run] = runs(uri)
    assert run.info.run_id == old.info.run_id
    assert (run.data.tags["variant"], run.data.tags["studies"]) == ("hybrid", "pooling;smoothness")
    assert run.data.tags["mlflow.source.git.commit"] == "abc123"
    assert sync(tmp_path, uri) == {"created": 0, "updated": 0, "unchanged": 1}


# --- what users of MLflow 3 expect: the experiment's kind, readable names, no "None" params,
# --- labels kept current by sync, system metrics --------------------------------------------

KIND = ("mlflow.experimentKind", "custom_model_development")  # MLflow 3's UI: "Machine learning"


def kind_of(client, name: str) -> str | None:
    return client.get_experiment_by_name(name).tags.get(KIND[0])


def test_experiments_open_as_model_training_in_mlflow_3(tmp_path):
    """Made by init, by a training run or by sync, or made earlier without the kind: every
    experiment the runs log to carries the kind tag; a kind a user chose stays."""
    uri = sqlite_uri(tmp_path)
    main(["init", str(tmp_path), "--experiment", "made-by-init"])
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(EXPERIMENT)  # an older store: no kind
    client.create_experiment("chosen", tags={KIND[0]: "genai_development"})
    assert kind_of(client, EXPERIMENT) is None
    RunTracker(uri, EXPERIMENT, "r1", "run one", config()).close_interrupted()  # never started: no-op
    tracker = RunTracker(uri, EXPERIMENT, "r1", "run one", config())
    tracker.start()
    tracker.close_interrupted()
    write_run(tmp_path / "runs" / "r2", "r2")
    sync(tmp_path, uri, experiment="made-by-sync")
    main(["init", str(tmp_path), "--experiment", "chosen"])
    assert [kind_of(client, name) for name in ("made-by-init", EXPERIMENT, "made-by-sync", "chosen")] == [
        KIND[1], KIND[1], KIND[1], "genai_development"]


def test_run_names_are_key_value_pairs_with_the_recipe_and_sync_renames_runs(tmp_path):
    from hybrid.train.config import parse_run_config

    run = parse_run_config({"dataset": {"name": "cifar10"}, "model": {"downsample": "diffstride"}, "seed": 2})
    name = run.display_name()  # a run config without a name (the workflow's runs are named in hybrid.studies)
    assert name == "dataset=cifar10 downsample=diffstride recipe=hybrid-paper seed=2"
    # A run named in the old style is renamed by a resumed training, and by sync from runs.csv.
    uri = sqlite_uri(tmp_path)
    old = RunTracker(uri, EXPERIMENT, "r1", "cifar10/hybrid/seed0", config())
    old.start()
    old.close_interrupted()
    resumed = RunTracker(uri, EXPERIMENT, "r1", name, config())
    resumed.start()
    resumed.close_interrupted()
    client, [run] = runs(uri)
    assert run.info.run_name == name
    write_run(tmp_path / "runs" / "r1", "r1")  # its result.json still has the old name
    new = "dataset=cifar10 variant=hybrid recipe=hybrid-paper model.smoothness=4 seed=0"
    (tmp_path / "runs.csv").write_text(f"run_id,name,studies,variant,seed\nr1,{new},smoothness,hybrid,0\n")
    sync(tmp_path, uri)
    client, [run] = runs(uri)
    assert run.info.run_name == new


def test_no_param_is_the_string_none(tmp_path):
    uri = sqlite_uri(tmp_path)
    tracker = RunTracker(uri, EXPERIMENT, "r1", "run one", config())
    tracker.start()
    tracker.close_interrupted()
    write_run(tmp_path / "runs" / "r2", "r2")
    sync(tmp_path, uri)
    client, found = runs(uri)
    assert len(found) == 2
    for run in found:
        assert "tracking.experiment" in run.data.params and "tracking.uri" not in run.data.params
        assert "None" not in run.data.params.values()


def test_sync_creates_no_experiment_that_no_run_logs_to(tmp_path, monkeypatch):
    """The workflow's sync passes no --experiment: it used to create the default experiment
    ("hybrid-pooling") beside the one the runs log to, empty."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    main(["init", str(tmp_path), "--experiment", EXPERIMENT])
    client = MlflowClient(tracking_uri=sqlite_uri(tmp_path))
    before = {e.name for e in client.search_experiments()}
    assert before == {"Default", EXPERIMENT}  # MLflow's SQL store always has "Default"
    write_run(tmp_path / "runs" / "r1", "r1")  # its config logs to EXPERIMENT
    assert main(["sync", str(tmp_path)]) == {"created": 1, "updated": 0, "unchanged": 0}
    assert {e.name for e in client.search_experiments()} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    sync(empty)  # nothing to sync: the store, with only MLflow's own "Default"
    assert [e.name for e in MlflowClient(tracking_uri=sqlite_uri(empty)).search_experiments()] == ["Default"]


def test_sync_keeps_variant_and_studies_tags_current_with_runs_csv(tmp_path):
    """A study added after a run finished: sync relabels the run, which is not retrained;
    a run no study holds any more loses its studies tag."""
    uri = sqlite_uri(tmp_path)
    for run_id in ("r1", "r2"):
        write_run(tmp_path / "runs" / run_id, run_id)
    header = "run_id,name,studies,variant,seed\n"
    (tmp_path / "runs.csv").write_text(header + "r1,a,pooling,hybrid,0\nr2,b,pooling,,0\n")
    assert sync(tmp_path, uri) == {"created": 2, "updated": 0, "unchanged": 0}
    client, found = runs(uri)
    tags = {run.data.tags["config_hash"]: run.data.tags for run in found}
    assert (tags["r1"]["studies"], tags["r1"]["variant"], tags["r2"]["studies"]) == ("pooling", "hybrid", "pooling")
    assert "variant" not in tags["r2"]  # a custom run has no variant

    (tmp_path / "runs.csv").write_text(header + "r1,a,pooling;smoothness,hybrid,0\n")
    assert sync(tmp_path, uri) == {"created": 0, "updated": 2, "unchanged": 0}
    client, found = runs(uri)
    tags = {run.data.tags["config_hash"]: run.data.tags for run in found}
    assert tags["r1"]["studies"] == "pooling;smoothness" and "studies" not in tags["r2"]
    assert sync(tmp_path, uri) == {"created": 0, "updated": 0, "unchanged": 2}


def test_a_training_run_reads_its_own_labels_from_runs_csv(tmp_path):
    assert study_labels(tmp_path, "r1") == {}  # no runs.csv: a run outside the workflow
    (tmp_path / "runs.csv").write_text(
        "run_id,name,studies,variant,seed\nr1,a,pooling;smoothness,hybrid,0\nr2,b,pooling,,0\n")
    assert study_labels(tmp_path, "r1") == {"variant": "hybrid", "studies": "pooling;smoothness"}
    assert study_labels(tmp_path, "r2") == {"studies": "pooling"}
    assert study_labels(tmp_path, "r9") == {}  # a run no study holds
    uri = sqlite_uri(tmp_path)
    tracker = RunTracker(uri, EXPERIMENT, "r1", "run one", config(), tags=study_labels(tmp_path, "r1"))
    tracker.start()
    client, [run] = runs(uri)
    assert run.info.status == "RUNNING" and run.data.tags["studies"] == "pooling;smoothness"
    tracker.close_interrupted()


def system_steps(client, run) -> list[int]:
    return steps(client, run, "system/cpu_utilization_percentage")


def test_system_metrics_on_a_cpu_run_stop_with_the_run_and_continue_on_resume(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # as on a machine without a GPU
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    uri, out = sqlite_uri(tmp_path), tmp_path / "r1"
    first = RunTracker(uri, EXPERIMENT, "r1", "run one", config())
    first.start()
    time.sleep(1.0)
    first.log_epoch(1, epoch_metrics(1))
    first.close_interrupted()
    assert not [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]  # stopped, not left running
    client, [run] = runs(uri)
    before = system_steps(client, run)
    assert before and "system/system_memory_usage_megabytes" in run.data.metrics and run.info.status == "KILLED"

    resumed = RunTracker(uri, EXPERIMENT, "r1", "run one", config())
    resumed.start()
    time.sleep(1.0)
    write_run(out, "r1")
    resumed.finish("completed", out)
    assert not [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]
    client, [run] = runs(uri)
    after = system_steps(client, run)
    assert after[: len(before)] == before and len(after) > len(before) and after == sorted(set(after))
    assert run.info.status == "FINISHED" and not resumed.disabled
    err = capfd.readouterr().err
    assert "WARNING" not in err and "ERROR" not in err, err
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") is None  # the run's fast HTTP settings are undone


def test_system_metrics_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    uri = sqlite_uri(tmp_path)
    tracker = RunTracker(uri, EXPERIMENT, "r1", "run one", config())
    tracker.start()
    tracker.log_epoch(1, epoch_metrics(1))
    write_run(tmp_path / "r1", "r1")
    tracker.finish("completed", tmp_path / "r1")
    client, [run] = runs(uri)
    assert not [key for key in run.data.metrics if key.startswith("system/")]
