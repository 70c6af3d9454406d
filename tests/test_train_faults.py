"""Every fault of `python -m hybrid.train` ends in one line or a retry: signals from the first
instruction to the last, disk and permission faults, configs the data cannot train, and bugs.

Each case runs the real command in its own process. Where a fault cannot be made to happen on
cue (a signal during the last checkpoint, a disk that fills mid-run, a bug), a few lines run
before the command's own `main` plant it: the signal is a real signal, the error a real
OSError from the write the loop makes.
"""

import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from test_robustness import small_config, strict_json
from test_train import ROOT


def run_config(tmp_path: Path, **changes) -> Path:
    config = small_config(tmp_path, epochs=2)
    for section, values in changes.items():
        config[section].update(values)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def train(tmp_path: Path, config: Path, *extra: str, plant: str = "", **popen) -> subprocess.CompletedProcess:
    """`python -m hybrid.train` on `config`, with `plant` (Python, `loop` and `cli` in scope)
    run first, after the command's own start-up handler, as `__main__` installs it."""
    argv = ["--run-config", str(config), "--out", str(tmp_path / "run"), *extra]
    if plant:
        script = textwrap.dedent("""
            import os, signal, sys
            from hybrid.train.stop import exit_on_sigterm
            exit_on_sigterm()
            import hybrid.train.cli as cli, hybrid.train.loop as loop, hybrid.checksummed as checksummed
        """) + textwrap.dedent(plant) + "\nsys.exit(cli.main(sys.argv[1:]))\n"
        cmd = [sys.executable, "-c", script, *argv]
    else:
        cmd = [sys.executable, "-m", "hybrid.train", *argv]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, **popen)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


# --- SIGTERM, from the first instruction to the last -----------------------------------


def test_sigterm_during_start_up_imports_exits_75(tmp_path):
    # torch takes a second or more to import; the handler is in place within milliseconds
    process = subprocess.Popen([sys.executable, "-m", "hybrid.train", "--run-config", str(run_config(tmp_path)),
                                "--out", str(tmp_path / "run")], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 75, stderr
    assert "Traceback" not in stderr and "exit 75" in stderr


def test_sigterm_while_the_result_files_are_written_still_completes_the_run(tmp_path):
    # after the last epoch no checkpoint is taken: the result files are the next write
    result = train(tmp_path, run_config(tmp_path), plant="""
        real = loop.write_results
        def write(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, **kwargs)
        loop.write_results = write
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = strict_json(tmp_path / "run" / "result.json")
    assert outcome["status"] == "completed" and outcome["epochs_completed"] == 2


def test_sigterm_during_a_checkpoint_exits_75_and_the_retry_resumes(tmp_path):
    config = run_config(tmp_path, train={"epochs": 3, "checkpoint_minutes": 0})
    interrupted = train(tmp_path, config, plant="""
        real = loop.save_checkpoint
        def save(path, run_id, model, optimizer, history, epoch, *args, **kwargs):
            if epoch == 2:  # the checkpoint after the first epoch: the signal arrives while it is written
                os.kill(os.getpid(), signal.SIGTERM)
            return real(path, run_id, model, optimizer, history, epoch, *args, **kwargs)
        loop.save_checkpoint = save
    """)
    assert interrupted.returncode == 75, interrupted.stderr[-3000:]
    assert not (tmp_path / "run" / "result.json").exists()
    retried = train(tmp_path, config)
    assert retried.returncode == 0 and "resuming" in retried.stderr, retried.stderr[-3000:]
    assert strict_json(tmp_path / "run" / "result.json")["epochs_completed"] == 3


def test_sigterm_after_completion_exits_0_and_keeps_the_result(tmp_path):
    # the costliest window: exit -15 here made Snakemake delete a finished run and train it again
    result = train(tmp_path, run_config(tmp_path), plant="""
        real = cli.train_run
        def run(*args, **kwargs):
            outcome = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)
            return outcome
        cli.train_run = run
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "after the run completed" in result.stderr and "Traceback" not in result.stderr
    assert strict_json(tmp_path / "run" / "result.json")["status"] == "completed"
    assert (tmp_path / "run" / "history.csv").exists()


# --- storage and permissions ------------------------------------------------------------


def test_a_folder_the_job_cannot_write_in_is_refused_before_the_data_is_loaded(tmp_path):
    unwritable = tmp_path / "read-only"
    unwritable.mkdir()
    unwritable.chmod(0o555)
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses it too
        unwritable = Path("/sys/kernel")
    result = train(tmp_path, run_config(tmp_path), "--checkpoint", str(unwritable / "checkpoint.pt"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert last_line(result).startswith(f"error: cannot write in {unwritable}") and "Traceback" not in result.stderr
    assert "loading data set" not in result.stderr


def test_a_file_size_limit_below_a_checkpoint_is_refused_before_training(tmp_path):
    def limit_file_size():  # `ulimit -f 1024`: 1 MiB; the data set's cache still fits
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))

    result = train(tmp_path, run_config(tmp_path), preexec_fn=limit_file_size)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "file-size limit" in last_line(result) and "ulimit -f" in last_line(result)
    assert "epoch 1/2" not in result.stderr and "Traceback" not in result.stderr


def test_a_disk_that_fills_mid_run_is_one_line_and_a_retry_that_resumes(tmp_path):
    config = run_config(tmp_path, train={"epochs": 3, "checkpoint_minutes": 0})
    full = train(tmp_path, config, plant=f"""
        real, calls = checksummed.write, []
        def write(path, obj):
            if path.name == "checkpoint.pt":
                calls.append(path)
            if len(calls) == 2:  # the second epoch's checkpoint (none after the last): the disk is full
                raise OSError({errno.ENOSPC}, "No space left on device")
            return real(path, obj)
        checksummed.write = write
    """)
    assert full.returncode == 75, full.stderr[-3000:]
    assert last_line(full).startswith("error: cannot write checkpoint") and "No space left" in last_line(full)
    assert "Traceback" not in full.stderr
    retried = train(tmp_path, config)  # the retry, on a disk with room again
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert "resuming" in retried.stderr and strict_json(tmp_path / "run" / "result.json")["epochs_completed"] == 3


# --- what the data set cannot train, and the unforeseen ---------------------------------


def test_a_validation_carve_that_leaves_no_image_is_one_line_and_exit_2(tmp_path):
    config = small_config(tmp_path)
    config["dataset"]["val_fraction"] = 0.001
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = train(tmp_path, path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "val_fraction" in last_line(result) and "Traceback" not in result.stderr


def test_an_unforeseen_error_is_its_traceback_then_one_line_and_exit_1(tmp_path):
    result = train(tmp_path, run_config(tmp_path), plant="""
        def step(*args, **kwargs):
            raise RuntimeError("a fault nobody foresaw")
        loop.train_step = step
    """)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" in result.stderr  # for whoever debugs it, in the job's log
    assert last_line(result).startswith("error: ") and "RuntimeError: a fault nobody foresaw" in last_line(result)
    assert pytest.approx(0) == len(list((tmp_path / "run").glob("result.json")))


def test_a_killed_checkpoint_write_s_temporary_is_removed_when_the_run_starts_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    leftover = run / ".checkpoint.pt.k3x9q2ab.tmp"  # what a kill during a checkpoint write leaves
    leftover.write_bytes(b"\0" * 4096)
    old = time.time() - 3600
    os.utime(leftover, (old, old))
    result = train(tmp_path, run_config(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not leftover.exists() and f"removed {leftover}" in result.stderr


def test_too_little_free_space_for_two_checkpoints_is_refused(tmp_path, monkeypatch):
    # a file system cannot be filled on cue here; what it reports can
    from collections import namedtuple

    import hybrid.train.checkpoints as checkpoints
    from hybrid.nn import resnet
    from hybrid.train.config import parse_run_config

    model = resnet(parse_run_config(small_config(tmp_path)).model)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
    with pytest.raises(checkpoints.RunPathError, match=r"has 1\.0 MiB free, less than two checkpoints"):
        checkpoints.check_checkpoint_room(tmp_path / "checkpoint.pt", model)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage(2**40, 0, 2**40))
    checkpoints.check_checkpoint_room(tmp_path / "checkpoint.pt", model)  # room: no error
