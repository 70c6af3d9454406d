"""SIGTERM (a Slurm time limit, a preemption) from the first line of a run to its last: exit
status 75, so that the job is retried and resumes from its checkpoint, or exit 0 once the
run's result files are written.

Three phases, one handler each:
- start-up (`exit_on_sigterm`, installed by `python -m hybrid.train` before its heavy
  imports): nothing to save, exit 75 at once;
- the run (`StopSignal`): during set-up the same; once the loop can checkpoint, the signal
  is only recorded, and the loop checkpoints before its next step and exits 75;
- after completion of the command: the result files are written; the signal is
  logged and the process exits 0, so that Snakemake keeps the finished outputs rather than
  deleting them and training the run again.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Self

log = logging.getLogger("hybrid.train")
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: try again (the job is retried and resumes)


class Interrupted(BaseException):
    """SIGTERM: exit 75 to be retried. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way (the cache loader, MLflow's guard) swallows it."""


def _exit_interrupted(signum, frame) -> None:
    sys.stderr.write(f"interrupted by signal {signum} while starting, before any training: exit {EXIT_INTERRUPTED}\n")
    raise SystemExit(EXIT_INTERRUPTED)


def exit_on_sigterm() -> None:
    """From here to `StopSignal`: a SIGTERM exits 75 (imports and argument parsing hold nothing)."""
    signal.signal(signal.SIGTERM, _exit_interrupted)


def _finished(signum, frame) -> None:
    log.warning("signal %s after the run completed: its result files are written, exit 0", signum)


class StopSignal:
    """SIGTERM from the first line of a run to its last.

    During set-up there is nothing to save, so the signal raises Interrupted at once (the job
    is retried and starts over); after `defer()`, once the loop can checkpoint, it only
    records the signal, which the loop reads before each step.
    """

    def __init__(self):
        self.signum: int | None = None
        self.deferred = False

    def __enter__(self) -> Self:
        self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        if not self.deferred:
            raise Interrupted()

    def defer(self) -> None:
        self.deferred = True

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __exit__(self, kind, error, traceback) -> None:
        # A completed run of the command (its start-up handler was ours) keeps exit 0 to the
        # end: its result files are written. A caller of train_run gets its own handler back.
        completed_command = kind is None and self.previous is _exit_interrupted
        signal.signal(signal.SIGTERM, _finished if completed_command else self.previous)
        if kind is Interrupted and not self.deferred:
            log.warning("interrupted by signal %s during set-up, before any training step: nothing to save, exit %d",
                        self.signum, EXIT_INTERRUPTED)
