"""Where each run of a study stands, from the files it left alone (no scheduler, no MLflow).

    python -m hybrid.studies CONFIG --status

A run is `completed` or `diverged` (its result.json says so), `corrupt` (a result.json that
cannot be read), `started` (a checkpoint: the epoch it resumes at), `failed` (its training
log reports an error and there is no result), `running` (a log, no result, no checkpoint yet:
running its first epoch, or killed before it) or `missing` (nothing yet).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from hybrid import checksummed

STATES = ("completed", "diverged", "started", "running", "failed", "corrupt", "missing")
ERROR_MARKS = ("Traceback", "error:", "Error:")


def run_state(run, results_dir: Path) -> tuple[str, str]:
    """(state, detail) of one resolved run under `results_dir`."""
    run_dir = results_dir / "runs" / run.run_id
    result = run_dir / "result.json"
    if result.is_file():
        try:
            status = json.loads(result.read_text())["status"]
        except (OSError, ValueError, KeyError, TypeError):
            return "corrupt", f"{result} cannot be read; delete it to rerun the run"
        return (status, "") if status in ("completed", "diverged") else ("corrupt", f"status {status!r}")
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.is_file():
        try:
            state = checksummed.read(checkpoint)
            return "started", f"resumes at epoch {state['epoch']} of {run.config.train.epochs}"
        except (checksummed.DamagedFileError, OSError, KeyError, TypeError) as err:
            return "started", f"its checkpoint is damaged ({err}); the rerun starts afresh"
    log = results_dir / "logs" / "train" / f"{run.run_id}.log"
    if log.is_file():
        text = log.read_text(errors="replace")
        if any(mark in text for mark in ERROR_MARKS):
            last = [line for line in text.splitlines() if any(m in line for m in ERROR_MARKS)][-1]
            return "failed", f"{log}: {last.strip()[:200]}"
        return "running", f"log {log}, no checkpoint yet"
    return "missing", ""


def study_progress(runs, results_dir: Path) -> tuple[dict[str, Counter], list[tuple]]:
    """({study, and "all runs": Counter of states}, [(run, state, detail) for every run not
    completed]), each run's files read once."""
    counts: dict[str, Counter] = {}
    pending = []
    for run in runs:
        state, detail = run_state(run, results_dir)
        for study in [*run.studies, "all runs"]:
            counts.setdefault(study, Counter())[state] += 1
        if state != "completed":
            pending.append((run, state, detail))
    counts["all runs"] = counts.pop("all runs", Counter())  # the total last
    return counts, pending


def print_progress(runs, results_dir: Path) -> None:
    counts, pending = study_progress(runs, results_dir)
    print(f"{'study':<20}" + "".join(f"{s:>11}" for s in STATES))
    for study, counter in counts.items():
        print(f"{study:<20}" + "".join(f"{counter.get(s, 0):>11}" for s in STATES))
    for run, state, detail in pending:
        print(f"{run.run_id} {run.name}: {state}" + (f" ({detail})" if detail else ""))
