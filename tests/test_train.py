"""One training run end to end on the generated data set: files, resume, divergence, errors."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from hybrid.nn import resnet
from hybrid.train import train_run
from hybrid.train.config import parse_run_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(tmp_path: Path, **train) -> dict:
    return {
        "dataset": {"name": "synthetic", "root": str(tmp_path / "data"), "synthetic_train": 384, "synthetic_test": 128},
        "model": {"downsample": "diffstride", "head_pool": "spectral", "width": 4},
        "train": {"epochs": 3, "batch_size": 32, "lr": 0.05, "eval_batch_size": 128, "threads": 1, **train},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "test"},
        "seed": 3,
        "name": "synthetic/hybrid/seed3",
    }


def read_history(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def run_cli(config: dict, out: Path, tmp_path: Path, **popen) -> subprocess.Popen:
    path = tmp_path / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "hybrid.train", "--run-config", str(path), "--out", str(out), "--results-dir", str(tmp_path)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_a_run_writes_its_result_files_and_mlflow_run(tmp_path):
    config = parse_run_config(tiny_config(tmp_path))
    result = train_run(config, tmp_path / "run", results_dir=tmp_path)

    written = json.loads((tmp_path / "run" / "result.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert written["status"] == "completed" and written["epochs_completed"] == 3
    assert written["run_id"] == config.run_id() and written["config"]["seed"] == 3
    assert 0.0 <= written["test_accuracy"] <= 1.0 and written["best_test_accuracy"] >= written["test_accuracy"]
    assert set(written["learned_strides"]) == {"stem_pool", "layer2.0.pool", "layer3.0.pool", "layer4.0.pool"}
    for key in ("params", "flops", "wall_time_s", "images_per_s", "device", "versions", "git_commit", "test_loss"):
        assert written[key] is not None, key

    history = read_history(tmp_path / "run" / "history.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2, 3]
    for column in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "epoch_time_s", "images_per_s",
                   "stride/layer2.0.pool/v", "stride/layer2.0.pool/h"):
        assert column in history[0], column
    assert float(history[-1]["test_accuracy"]) == written["test_accuracy"]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # removed once the run is complete

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert len(runs) == 1
    assert runs[0].data.tags["config_hash"] == config.run_id()
    assert runs[0].data.tags["mlflow.source.name"] == "hybrid.train"
    assert runs[0].data.tags["mlflow.source.git.commit"] == written["git_commit"]
    assert runs[0].info.run_name == "synthetic/hybrid/seed3"
    assert len(client.get_metric_history(runs[0].info.run_id, "test_accuracy")) == 3
    assert not (tmp_path / "run" / "weights.pt").exists()  # off by default


def test_final_weights_are_saved_on_request_and_load_safely(tmp_path):
    data = tiny_config(tmp_path, epochs=1, save_weights=True)
    config = parse_run_config(data)
    assert config.run_id() == parse_run_config(tiny_config(tmp_path, epochs=1)).run_id()  # not part of the id
    train_run(config, tmp_path / "run", results_dir=tmp_path)
    state = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    model = resnet(config.model)
    model.load_state_dict(state)
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert "weights.pt" in {a.path for a in client.list_artifacts(run.info.run_id)}


@pytest.mark.parametrize("name,floor", [
    ("dataset=synthetic variant=strided recipe=hybrid-paper seed=0", 0.6),  # measured 74%
    # DiffStride at layer 4; measured 53%
    ("dataset=synthetic variant=diffstride recipe=hybrid-paper model.head_pool=none model.downsample_at=layer4 seed=0",
     0.4),
])
def test_the_demo_runs_learn(tmp_path, name, floor):
    # Two of `make demo`'s runs as it trains them (one thread each): clearly above chance
    # (10%), the strided one at 60% or more.
    from dataclasses import replace

    from hybrid.studies import resolve_runs

    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config = next(r.config for r in resolve_runs(demo) if r.name == name)
    config = replace(config, dataset=replace(config.dataset, root=str(tmp_path / "data")),
                     train=replace(config.train, threads=1), tracking=replace(config.tracking, enabled=False))
    result = train_run(config, tmp_path / "run", results_dir=tmp_path)
    history = read_history(tmp_path / "run" / "history.csv")
    assert float(history[-1]["train_loss"]) < float(history[0]["train_loss"])
    assert result["test_accuracy"] >= floor


def _metrics(path: Path) -> list[dict]:
    keep = lambda k: not k.endswith("time_s") and k != "images_per_s"  # noqa: E731
    return [{k: v for k, v in row.items() if keep(k)} for row in read_history(path)]


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, kill):
    config = tiny_config(tmp_path, epochs=4, recipe="official-diffstride", lr_boundaries=[5, 20, 30],
                         lr_values=[0.01, 0.05, 0.01, 0.001], batch_size=16, checkpoint_minutes=0)
    reference = run_cli(config, tmp_path / "reference", tmp_path)
    assert reference.wait() == 0, reference.stdout.read()

    interrupted = run_cli(config, tmp_path / "resumed", tmp_path)
    _wait_for(tmp_path / "resumed" / "checkpoint.pt", interrupted)  # the first epoch is done
    interrupted.send_signal(kill)
    code = interrupted.wait()
    assert code == (75 if kill == signal.SIGTERM else -signal.SIGKILL), interrupted.stdout.read()
    assert not (tmp_path / "resumed" / "result.json").exists()

    resumed = run_cli(config, tmp_path / "resumed", tmp_path)
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output
    assert "resuming" in output

    # Bitwise on the CPU: every metric, every stride, every epoch.
    assert _metrics(tmp_path / "resumed" / "history.csv") == _metrics(tmp_path / "reference" / "history.csv")
    ref = json.loads((tmp_path / "reference" / "result.json").read_text())
    res = json.loads((tmp_path / "resumed" / "result.json").read_text())
    assert (res["test_accuracy"], res["learned_strides"]) == (ref["test_accuracy"], ref["learned_strides"])

    # The resumed run continued the same MLflow run: one run per run id.
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["status"] == "completed"


def test_a_diverging_run_is_a_result_not_a_crash(tmp_path):
    config = tiny_config(tmp_path, lr=10.0, weight_decay=10.0, epochs=2)  # each step multiplies the weights by -99
    process = run_cli(config, tmp_path / "run", tmp_path)
    output = process.communicate()[0]
    assert process.returncode == 0, output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "diverged" and result["test_accuracy"] is None
    assert result["epochs_completed"] < 2
    assert "diverged" in output
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("test").experiment_id])[0]
    assert run.data.tags["status"] == "diverged"


def test_missing_cifar_names_the_root_and_the_fetch_command(tmp_path):
    config = tiny_config(tmp_path)
    config["dataset"] = {"name": "cifar10", "root": str(tmp_path / "nowhere")}
    process = run_cli(config, tmp_path / "run", tmp_path)
    output = process.communicate()[0]
    assert process.returncode == 2
    assert str(tmp_path / "nowhere") in output
    assert "python -m hybrid.data download cifar10 --root" in output
    assert "Traceback" not in output


def test_bad_run_config_fails_before_any_work(tmp_path):
    config = tiny_config(tmp_path)
    config["train"]["epochz"] = 3
    process = run_cli(config, tmp_path / "run", tmp_path)
    output = process.communicate()[0]
    assert process.returncode == 2 and "train.epochz" in output and "Traceback" not in output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("minutes, after_epochs", [(10, []), (0, [1, 2])], ids=["every-10-minutes", "every-epoch"])
def test_checkpoints_are_taken_by_time_and_none_after_the_last_epoch(tmp_path, monkeypatch, minutes, after_epochs):
    from hybrid.train import loop

    taken, real = [], loop.save_checkpoint

    def save(path, run_id, model, optimizer, history, epoch, *args, **kwargs):
        taken.append(epoch - 1)  # a checkpoint to go on at `epoch` is taken after epoch - 1
        return real(path, run_id, model, optimizer, history, epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", save)
    config = parse_run_config(tiny_config(tmp_path, epochs=3, checkpoint_minutes=minutes))
    result = train_run(config, tmp_path / "run", results_dir=tmp_path)
    assert taken == after_epochs  # a 3-epoch run takes seconds: 10 minutes never pass
    assert (result["checkpoint_time_s"] > 0) == bool(after_epochs)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # removed once the result is written
    assert result["crop_tuples"] >= 1  # the DiffStride crops this run planned (a compiled net's graphs)
    assert all(float(row["eval_time_s"]) > 0 for row in read_history(tmp_path / "run" / "history.csv"))
