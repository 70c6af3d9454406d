"""analysis.collect on real result files: runs.csv, result.json and history.csv in a temp dir."""

import json

import pandas as pd
import pytest

from analysis.collect import (
    collect,
    in_study,
    main,
    read_history_table,
    read_runs_table,
    status_counts,
)

EPOCHS = 3
RUNS = pd.DataFrame([
    # run_id, studies, variant, seed, dataset, smoothness; the first id reads as a number
    ("00000000000000e1", "pooling;smoothness", "hybrid", 0, "cifar10", "4"),
    ("a1", "pooling", "diffstride", 0, "cifar10", "4"),
    ("a2", "pooling", "strided", 0, "cifar10", "4"),
    ("a3", "smoothness", "hybrid", 1, "cifar100", "8"),  # diverged
    ("a4", "smoothness", "hybrid", 2, "cifar100", "8"),  # no result yet
    ("a5", "pooling", "hybrid", 1, "cifar100", "4"),     # truncated JSON
    ("a6", "pooling", "hybrid", 2, "cifar100", "4"),     # another run's result
], columns=["run_id", "studies", "variant", "seed", "dataset.name", "model.smoothness"])
STRIDES = {"stem_pool": [1.0, 1.0], "layer2.0.pool": [2.1, 1.9]}


def result(run_id: str, status: str = "completed", accuracy: float | None = 0.9,
           strides: dict | None = None) -> dict:
    return {"run_id": run_id, "run_name": f"run {run_id}", "status": status,
            "test_accuracy": accuracy, "best_test_accuracy": accuracy and accuracy + 0.01,
            "best_epoch": 2, "test_loss": 0.3, "val_accuracy": None,
            "epochs_completed": EPOCHS, "epochs": EPOCHS, "learned_strides": strides or {},
            "params": 11_173_962, "flops": 5.5e8, "cost": {"flops": 5.5e8,
                                                           "activation_bytes": 1024},
            "wall_time_s": 12.0, "train_time_s": 10.0, "images_per_s": 5000.0,
            "device": "cpu", "versions": {"torch": "2.4"}, "git_commit": "abc",
            "host": "h", "slurm_job_id": None, "config": {"seed": 0, "model": {}}}


def history(epochs: int, strides: dict | None = None) -> pd.DataFrame:
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 1 / epoch, "train_accuracy": 0.5 + epoch / 10,
               "test_loss": 1 / epoch, "test_accuracy": 0.5 + epoch / 10, "lr": 0.1,
               "epoch_time_s": 3.0, "images_per_s": 5000.0}
        for layer, (v, h) in (strides or {}).items():
            row[f"stride/{layer}/v"], row[f"stride/{layer}/h"] = v + epoch / 100, h
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def workspace(tmp_path):
    runs_dir = tmp_path / "runs"
    RUNS.to_csv(tmp_path / "runs.csv", index=False)

    def write(run_id, payload: str, epochs: int = EPOCHS, strides=None):
        (runs_dir / run_id).mkdir(parents=True)
        (runs_dir / run_id / "result.json").write_text(payload)
        history(epochs, strides).to_csv(runs_dir / run_id / "history.csv", index=False)

    write("00000000000000e1", json.dumps(result("00000000000000e1", strides=STRIDES)),
          strides=STRIDES)
    write("a1", json.dumps(result("a1", accuracy=0.89, strides=STRIDES)), strides=STRIDES)
    write("a2", json.dumps(result("a2", accuracy=0.88)))
    write("a3", json.dumps(result("a3", status="diverged", accuracy=None)), epochs=1)
    write("a5", json.dumps(result("a5"))[:40])
    write("a6", json.dumps(result("a1")))
    return tmp_path


def collected(workspace):
    with pytest.warns(UserWarning) as caught:
        tables = collect(workspace / "runs.csv", workspace / "runs")
    return tables, [str(w.message) for w in caught]


def test_every_run_is_kept_with_its_status(workspace):
    (runs, _), warned = collected(workspace)
    assert list(runs["run_id"]) == list(RUNS["run_id"])
    assert list(runs["status"]) == ["completed", "completed", "completed", "diverged",
                                    "missing", "corrupt", "corrupt"]
    assert runs["test_accuracy"].tolist()[:3] == [0.9, 0.89, 0.88]
    assert runs.loc[3:, "test_accuracy"].isna().all()
    assert len(warned) == 2
    assert any("a5" in w and "result.json" in w and "corrupt" in w for w in warned)
    assert any("a6" in w and "belongs to run 'a1'" in w for w in warned)


def test_results_are_flattened_beside_the_run_columns(workspace):
    (runs, _), _ = collected(workspace)
    first = runs.iloc[0]
    assert first["model.smoothness"] == "4" and first["seed"] == 0
    assert first["stride/layer2.0.pool/v"] == 2.1 and first["stride/layer2.0.pool/h"] == 1.9
    assert first["stride/stem_pool/v"] == 1.0
    assert pd.isna(runs.loc[2, "stride/layer2.0.pool/v"])  # strided: no learned strides
    assert first["best_test_accuracy"] == pytest.approx(0.91)
    assert first["cost/activation_bytes"] == 1024 and first["versions/torch"] == "2.4"
    assert "config" not in runs.columns and "run_name" not in runs.columns


def test_history_table_has_one_row_per_run_and_epoch(workspace):
    (_, hist), _ = collected(workspace)
    counts = hist.groupby("run_id").size().to_dict()
    # a4 has no files; a5 and a6 have readable histories although their results are corrupt
    assert counts == {"00000000000000e1": 3, "a1": 3, "a2": 3, "a3": 1, "a5": 3, "a6": 3}
    assert not hist.duplicated(["run_id", "epoch"]).any()
    assert hist.columns[0] == "run_id"
    hybrid = hist[hist["run_id"] == "00000000000000e1"]
    assert hybrid["stride/layer2.0.pool/v"].tolist() == pytest.approx([2.11, 2.12, 2.13])
    assert hist.loc[hist["run_id"] == "a2", "stride/layer2.0.pool/v"].isna().all()


def test_status_counts_per_study_and_dataset(workspace):
    (runs, _), _ = collected(workspace)
    counts = status_counts(runs).set_index(["study", "dataset.name"])
    assert counts.loc[("pooling", "cifar10"), ["completed", "total"]].tolist() == [3, 3]
    assert counts.loc[("pooling", "cifar100"), ["corrupt", "total"]].tolist() == [2, 2]
    smooth = counts.loc[("smoothness", "cifar100")]
    assert smooth[["completed", "diverged", "missing"]].tolist() == [0, 1, 1]
    assert counts.loc[("smoothness", "cifar10"), "completed"] == 1  # in two studies
    assert counts["total"].sum() == 8
    assert set(in_study(runs, "smoothness")["run_id"]) == {"00000000000000e1", "a3", "a4"}


def test_cli_writes_tables_that_read_back_with_their_types(workspace, capsys):
    out = workspace / "out"
    with pytest.warns(UserWarning):
        main(["--runs", str(workspace / "runs.csv"), "--runs-dir", str(workspace / "runs"),
              "--out", str(out / "runs_table.csv"), "--history-out", str(out / "history.csv"),
              "--status-out", str(out / "run_status.csv")])
    assert "7 runs: 3 completed, 1 diverged, 1 missing, 2 corrupt" in capsys.readouterr().out
    runs = read_runs_table(out / "runs_table.csv")
    assert runs.loc[0, "run_id"] == "00000000000000e1"
    assert runs.loc[0, "model.smoothness"] == "4" and runs.loc[0, "variant"] == "hybrid"
    assert runs["test_accuracy"].dtype == float and runs["seed"].dtype.kind == "i"
    assert runs.loc[0, "stride/layer2.0.pool/v"] == 2.1
    assert len(read_history_table(out / "history.csv")) == 16
    assert pd.read_csv(out / "run_status.csv")["total"].sum() == 8


def test_no_results_yet_still_gives_metric_columns(tmp_path):
    RUNS.to_csv(tmp_path / "runs.csv", index=False)
    runs, hist = collect(tmp_path / "runs.csv", tmp_path / "runs")
    assert (runs["status"] == "missing").all()
    assert {"test_accuracy", "flops", "params"} <= set(runs.columns)
    assert hist.empty and list(hist.columns) == ["run_id", "epoch"]


def test_runs_csv_without_required_columns_is_named(tmp_path):
    RUNS.drop(columns="studies").to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(KeyError, match="runs.csv lacks columns \\['studies'\\]"):
        collect(tmp_path / "runs.csv", tmp_path / "runs")


def test_map_sizes_in_results_become_readable_cells():
    from analysis.collect import flatten_result

    row = flatten_result({"cost": {"flops": 2.0, "final_map": [18, 18]},
                          "initial_cost": {"flops": 4.0, "final_map": [32, 32]}})
    assert row == {"cost/flops": 2.0, "cost/final_map": "18x18", "initial_cost/flops": 4.0,
                   "initial_cost/final_map": "32x32"}
