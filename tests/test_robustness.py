"""Bad input never costs a GPU-hour: damaged checkpoints and caches, early signals,
non-finite results, unusable paths and run configs, each planted for real."""

import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_train import ROOT, read_history, tiny_config

from hybrid import checksummed
from hybrid.data import DataConfig, DataNotFoundError
from hybrid.data.synthetic import load_synthetic
from hybrid.nn import resnet
from hybrid.train import train_run
from hybrid.train.checkpoints import RunPathError, load_checkpoint, save_checkpoint
from hybrid.train.cli import main
from hybrid.train.config import parse_run_config
from hybrid.train.result import write_results
from hybrid.train.schedule import parameter_groups


def small_config(tmp_path: Path, **train) -> dict:
    config = tiny_config(tmp_path, **{"epochs": 1, **train})
    config["dataset"].update(synthetic_train=64, synthetic_test=32)
    config["tracking"] = {"enabled": False}
    return config


def strict_json(path: Path):
    """JSON as the standard has it: NaN and Infinity are errors, not numbers."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def warnings_from(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


# --- checkpoints ----------------------------------------------------------------------


def write_checkpoint(path: Path, config, run_id: str | None = None, epoch: int = 1, history=()) -> None:
    """A real checkpoint of `config`'s model, as the loop writes it."""
    model = resnet(config.model)
    optimizer = torch.optim.SGD(parameter_groups(model, config.train), lr=0.1)
    save_checkpoint(path, run_id or config.run_id(), model, optimizer, list(history), epoch)


def flip_one_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


DAMAGES = {
    "empty": lambda path, config: path.write_bytes(b""),
    "truncated": lambda path, config: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "one flipped bit": lambda path, config: flip_one_bit(path),
    "another run's": lambda path, config: write_checkpoint(path, config, run_id="0123456789abcdef"),
    "unchecked (older format)": lambda path, config: torch.save(checksummed.read(path), path),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_bad_checkpoint_is_set_aside_and_the_run_starts_afresh(tmp_path, caplog, damage):
    config = parse_run_config(small_config(tmp_path))
    path = tmp_path / "run" / "checkpoint.pt"
    path.parent.mkdir()
    # A good checkpoint that would skip all training (epoch 2 of a 1-epoch run), then damaged.
    write_checkpoint(path, config, epoch=2, history=[{"epoch": 1, "test_accuracy": 0.99}])
    DAMAGES[damage](path, config)
    planted = path.read_bytes()

    with caplog.at_level(logging.WARNING):
        result = train_run(config, tmp_path / "run", results_dir=tmp_path)

    assert result["status"] == "completed" and result["epochs_completed"] == 1  # trained afresh
    assert result["test_accuracy"] != 0.99
    (aside,) = path.parent.glob("checkpoint.pt.bad-*")
    assert aside.read_bytes() == planted  # kept as it was, for a look
    (line,) = warnings_from(caplog, "hybrid.train")
    assert str(path) in line and aside.name in line and "starting afresh" in line


def test_an_intact_checkpoint_is_trusted(tmp_path):
    config = parse_run_config(small_config(tmp_path))
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, config, epoch=2, history=[{"epoch": 1, "test_accuracy": 0.5}])
    state = load_checkpoint(path, config.run_id(), resnet(config.model))
    assert state["epoch"] == 2 and state["history"] == [{"epoch": 1, "test_accuracy": 0.5}]
    assert path.exists() and not list(tmp_path.glob("*.bad-*"))


def test_weights_of_another_model_are_not_loaded(tmp_path, caplog):
    config = parse_run_config(small_config(tmp_path))
    wider = parse_run_config({**small_config(tmp_path), "model": {**small_config(tmp_path)["model"], "width": 8}})
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, wider, run_id=config.run_id())  # same run id, weights of another shape
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path, config.run_id(), resnet(config.model)) is None
    (line,) = warnings_from(caplog, "hybrid.train")
    assert "do not fit this model" in line and not path.exists()


def test_bad_checkpoints_in_a_row_are_all_kept(tmp_path):
    for _ in range(3):  # within one second: the names must still differ
        (tmp_path / "checkpoint.pt").write_bytes(b"junk")
        assert load_checkpoint(tmp_path / "checkpoint.pt", "run") is None
    assert len(list(tmp_path.glob("checkpoint.pt.bad-*"))) == 3


def test_a_directory_at_the_checkpoint_path_fails_before_loading_data(tmp_path):
    config = parse_run_config(small_config(tmp_path))
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.mkdir(parents=True)
    with pytest.raises(RunPathError, match=rf"{checkpoint} is a directory.*--checkpoint"):
        train_run(config, tmp_path / "run", results_dir=tmp_path)
    assert checkpoint.is_dir() and not (tmp_path / "data").exists()  # left alone, no data loaded


# --- the synthetic data set's cache ---------------------------------------------------

def cache_of(root: Path, **sizes) -> tuple[Path, tuple[torch.Tensor, ...]]:
    config = DataConfig(root=str(root), **{"synthetic_train": 20, "synthetic_test": 10, **sizes})
    before = set(root.glob("synthetic/*.pt"))
    parts = load_synthetic(config)
    (path,) = set(root.glob("synthetic/*.pt")) - before
    return path, parts


CACHE_DAMAGES = {
    "empty": lambda path, root: path.write_bytes(b""),
    "truncated": lambda path, root: path.write_bytes(path.read_bytes()[:-1000]),
    "one flipped bit": lambda path, root: flip_one_bit(path),
    "another key's file": lambda path, root: path.write_bytes(cache_of(root, synthetic_seed=7)[0].read_bytes()),
    "unchecked (older format)": lambda path, root: torch.save({"key": None}, path),
}


@pytest.mark.parametrize("damage", CACHE_DAMAGES)
def test_a_bad_cache_is_named_and_generated_again(tmp_path, caplog, damage):
    path, fresh = cache_of(tmp_path)
    CACHE_DAMAGES[damage](path, tmp_path)
    config = DataConfig(root=str(tmp_path), synthetic_train=20, synthetic_test=10)

    with caplog.at_level(logging.WARNING):
        parts = load_synthetic(config)
    assert all(torch.equal(a, b) for a, b in zip(parts, fresh))
    (line,) = warnings_from(caplog, "hybrid.data")
    assert str(path) in line and "generating it again" in line
    if damage == "another key's file":
        assert "'seed': 7" in line

    caplog.clear()  # the regenerated file is whole: read back without a word
    with caplog.at_level(logging.WARNING):
        assert all(torch.equal(a, b) for a, b in zip(load_synthetic(config), fresh))
    assert not warnings_from(caplog, "hybrid.data")
    assert not list((tmp_path / "synthetic").glob("*.tmp"))


def test_a_directory_at_the_cache_path_names_the_path_and_the_fix(tmp_path):
    path, _ = cache_of(tmp_path)
    path.unlink()
    path.mkdir()
    with pytest.raises(DataNotFoundError, match=rf"{path} is a directory.*rm -r {path}"):
        load_synthetic(DataConfig(root=str(tmp_path), synthetic_train=20, synthetic_test=10))


def test_a_file_in_place_of_the_cache_folder_is_named(tmp_path):
    (tmp_path / "synthetic").write_text("not a folder")
    with pytest.raises(DataNotFoundError, match=rf"{tmp_path / 'synthetic'} to be a folder"):
        load_synthetic(DataConfig(root=str(tmp_path), synthetic_train=20, synthetic_test=10))


# --- signals --------------------------------------------------------------------------


def test_sigterm_while_loading_data_exits_75_without_a_traceback(tmp_path):
    config = small_config(tmp_path)
    config["dataset"].update(synthetic_train=12000)  # seconds of generation to be interrupted in
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "hybrid.train", "--run-config", str(path), "--out", str(tmp_path / "run")]
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in process.stdout:  # wait until the set-up is under way
        seen.append(line)
        if "loading data set" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = "".join(seen) + process.communicate(timeout=60)[0]
    assert process.returncode == 75, output
    assert "Traceback" not in output and "during set-up" in output
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "result.json").exists()
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]  # no half-written cache either


# --- non-finite results ---------------------------------------------------------------


def test_non_finite_values_are_written_as_strict_json(tmp_path):
    nan, inf = float("nan"), float("inf")
    result = {"status": "diverged", "test_loss": nan, "learned_strides": {"stem": [1.5, inf]},
              "config": {"train": {"lr": nan, "milestones": (0.5, -inf)}}, "epochs_completed": 1}
    history = [{"epoch": 1, "train_loss": 2.0, "val_loss": nan, "lr": inf}]
    write_results(tmp_path, result, history)

    written = strict_json(tmp_path / "result.json")
    assert written["test_loss"] is None and written["learned_strides"] == {"stem": [1.5, None]}
    assert written["config"]["train"] == {"lr": None, "milestones": [0.5, None]}
    assert written["status"] == "diverged" and written["epochs_completed"] == 1
    (row,) = read_history(tmp_path / "history.csv")
    assert (row["val_loss"], row["lr"], row["train_loss"]) == ("nan", "inf", "2.0")


def test_a_diverging_run_ends_diverged_with_strict_json(tmp_path):
    # the largest lr allowed, with a decay that multiplies every weight by -99 per step
    config = small_config(tmp_path, lr=10.0, weight_decay=10.0, epochs=2, milestones=[])
    config["dataset"].update(synthetic_train=128)
    result = train_run(parse_run_config(config), tmp_path / "run", results_dir=tmp_path)
    assert result["status"] == "diverged"
    written = strict_json(tmp_path / "run" / "result.json")
    assert written["status"] == "diverged" and written["test_accuracy"] is None
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# --- the command line -----------------------------------------------------------------


def run_main(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    return exit_.value.code, capsys.readouterr().err


def planted_config(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "run.yaml"
    if kind == "a directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(128, 256)) * 4)
    elif kind == "control characters":
        path.write_bytes(b"seed: 1\x00\x01\n")
    elif kind == "YAML syntax":
        path.write_text("seed: 1\ntrain: {epochs: 3\nmodel: [\n")
    elif kind == "invalid values":
        path.write_text("seed: 1\ntrain: {epochz: 3}\n")
    return path  # "missing": nothing there


@pytest.mark.parametrize("kind", ["missing", "a directory", "binary", "control characters", "YAML syntax", "invalid values"])
def test_an_unreadable_run_config_is_one_line_and_exit_2(tmp_path, capsys, kind):
    path = planted_config(tmp_path, kind)
    code, err = run_main(capsys, "--run-config", path, "--out", tmp_path / "run")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, err
    assert not (tmp_path / "run").exists()
    if kind == "YAML syntax":
        assert "line 3" in err  # where the unclosed mapping meets the next key
    if kind == "invalid values":
        assert "train.epochz" in err


@pytest.mark.parametrize("where", ["--out", "--checkpoint"])
def test_an_unusable_output_path_is_one_line_and_exit_2(tmp_path, capsys, where):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(small_config(tmp_path)))
    argv = ["--run-config", config, "--out", tmp_path / "run", "--results-dir", tmp_path]
    if where == "--out":
        (tmp_path / "run").write_text("a file, not a directory")
        named = tmp_path / "run"
    else:
        named = tmp_path / "ckpt"
        named.mkdir()
        argv += ["--checkpoint", named]
    code, err = run_main(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and str(named) in err and where in err, err
    assert not (tmp_path / "data").exists()  # before any data is loaded


@pytest.mark.skipif(torch.cuda.is_available(), reason="plants a CUDA run where CUDA is absent")
def test_a_cuda_run_where_no_gpu_exists_is_one_line_and_exit_2(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(small_config(tmp_path, device="cuda")))
    code, err = run_main(capsys, "--run-config", config, "--out", tmp_path / "run", "--results-dir", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "train.device is 'cuda'" in err and "resources.gpus" in err, err
