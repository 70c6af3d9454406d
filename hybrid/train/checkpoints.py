"""Checkpoints of a run, trusted only when intact and its own, and the run's paths.

A checkpoint carries the SHA-256 of its bytes (`hybrid.checksummed`). One that is empty,
truncated, altered, unreadable, of an older format, holds weights that do not fit the
model, or is another run's (another config's run id) is never trusted: it is renamed aside
to `<checkpoint>.bad-<time>`, named in one warning line, and the run starts afresh (nothing
is deleted, no weights are guessed at). Paths that cannot work (a directory at the
checkpoint path, an existing file as the output directory, a folder the job cannot write
in, too little free space or too small a file-size limit for a checkpoint) are a
RunPathError before any work, naming the path and the fix. A disk fault that strikes later
(the file system filled by another job, a quota) is a StorageError: one line, and the job
exits 75 to be retried, resuming from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from hybrid import checksummed
from hybrid.nn import ResNet

log = logging.getLogger("hybrid.train")


class RunPathError(ValueError):
    """An output or checkpoint path that cannot be used; the message names it and the fix."""


class StorageError(OSError):
    """A write that failed mid-run (disk full, quota, permissions changed): retried (exit 75)."""


@contextlib.contextmanager
def storing(path: Path, what: str):
    """Any OSError while writing `what` to `path` as one StorageError line naming both."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        raise StorageError(f"cannot write {what} {path} ({err.strerror or err}); the job exits 75 to be retried "
                           f"and resumes from its last checkpoint: free space or fix the folder's permissions") from None


def save_checkpoint(path: Path, run_id: str, model, optimizer, history: list[dict], epoch: int,
                    step_in_epoch: int = 0, **partial_epoch) -> None:
    """Everything a rerun needs to go on from `step_in_epoch` of `epoch`, written atomically;
    `partial_epoch` holds the state of an epoch stopped midway (generators, sums, time)."""
    state = {"run_id": run_id, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": history, "epoch": epoch, "step_in_epoch": step_in_epoch, **partial_epoch}
    with storing(path, "checkpoint"):
        checksummed.write(path, state)


CHECKPOINT_KEYS = ("run_id", "model", "optimizer", "history", "epoch", "step_in_epoch")


def load_checkpoint(path: Path, run_id: str, model: ResNet | None = None) -> dict | None:
    """The state checkpointed for `run_id` at `path`, or None: start afresh.

    The rule for a file that is not an intact checkpoint of this run (empty, truncated,
    altered, unreadable, an older format, weights that do not fit `model`, or another run
    id's, i.e. another config wrote to this path): it is never trusted, but renamed aside to
    `<path>.bad-<time>` for a look, named in one warning, and the run starts afresh.
    """
    if not path.exists():
        return None
    try:
        state = checksummed.read(path)
        problem = checkpoint_problem(state, run_id, model)
    except checksummed.DamagedFileError as err:
        problem = err.problem
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    if problem:
        set_aside(path, problem)
        return None
    return state


def checkpoint_problem(state, run_id: str, model: ResNet | None) -> str | None:
    """Why an intact file is still not this run's checkpoint, or None."""
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        return "is not a checkpoint of this code (keys missing)"
    if state["run_id"] != run_id:
        return f"belongs to run {state['run_id']}, not {run_id} (another config wrote to this path)"
    if model is not None:
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in state["model"].items()} if isinstance(state["model"], dict) else None
        if ours != theirs:
            return "holds weights that do not fit this model (another version of the code?)"
    return None


def set_aside(path: Path, problem: str) -> None:
    """Rename an unusable checkpoint to `<name>.bad-<time>` beside it, and say so in one line."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    for n in range(1, 1000):  # never overwrite an earlier bad file: it may be the interesting one
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    try:
        os.replace(path, aside)
    except OSError as err:
        raise RunPathError(f"checkpoint {path} {problem}, and it could not be moved aside ({err.strerror}); "
                           f"move or delete it, then rerun") from None
    log.warning("checkpoint %s %s; kept aside as %s, starting afresh", path, problem, aside.name)


def check_run_paths(out_dir: Path, checkpoint_path: Path) -> None:
    """Fail before any work on paths that cannot work, naming the path and the fix."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunPathError(f"output directory {out_dir} is an existing file; pass a directory for --out (it is created if missing)")
    if checkpoint_path.is_dir():
        raise RunPathError(f"checkpoint path {checkpoint_path} is a directory; pass a file path for --checkpoint, "
                           f"e.g. {checkpoint_path / 'checkpoint.pt'}, or remove the directory")
    for folder, flag in ((out_dir, "--out"), (checkpoint_path.parent, "--checkpoint")):
        try:  # now, not at the first checkpoint an epoch later
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunPathError(f"cannot create directory {folder} ({err.strerror}); pass a writable path for {flag}") from None
        try:  # a real write, not a permission bit: read-only mounts, ACLs and quotas answer it
            with tempfile.TemporaryFile(dir=folder) as probe:
                probe.write(b"\0" * 4096)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as err:
            raise RunPathError(f"cannot write in {folder} ({err.strerror}); pass a writable path for {flag}") from None


def check_checkpoint_room(checkpoint_path: Path, model: ResNet) -> None:
    """Fail before training when a checkpoint of `model` cannot be written: the file-size
    limit (`ulimit -f`) below one checkpoint, or less free space than two (the new one is
    written beside the old before it replaces it)."""
    size = 2 * sum(t.numel() * t.element_size() for t in model.state_dict().values()) + 2**20  # weights, momentum
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < size:
        raise RunPathError(f"the file-size limit ({limit / 2**20:.1f} MiB, ulimit -f) is below one checkpoint of this "
                           f"model ({size / 2**20:.1f} MiB) at {checkpoint_path}; raise it (ulimit -f unlimited)")
    free = shutil.disk_usage(checkpoint_path.parent).free
    if free < 2 * size:
        raise RunPathError(f"{checkpoint_path.parent} has {free / 2**20:.1f} MiB free, less than two checkpoints of "
                           f"this model ({2 * size / 2**20:.1f} MiB); free space or pass --checkpoint elsewhere")


def restore(resume: dict | None, model: ResNet, optimizer) -> tuple[list[dict], int, int]:
    """(history, epoch, step in it) to go on from: the checkpoint's, its weights and optimizer
    state loaded into `model` and `optimizer`, or a fresh run's without one."""
    if resume is None:
        return [], 1, 0
    model.load_state_dict(resume["model"])
    optimizer.load_state_dict(resume["optimizer"])
    return resume["history"], resume["epoch"], resume["step_in_epoch"]
