"""SIGTERM (a Slurm time limit, a preemption) from the first line of a run to its last: exit
status 75, so that the job is retried and resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import signal
from typing import Self

log = logging.getLogger("hybrid.train")




EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: try again (the job is retried and resumes)


class Interrupted(BaseException):
    """SIGTERM: exit 75 to be retried. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` on the way (the cache loader, MLflow's guard) swallows it."""


class Diverged(Exception):
    pass


class DeviceError(RuntimeError):
    """The configured device does not exist where the run was started."""


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
        signal.signal(signal.SIGTERM, self.previous)
        if kind is Interrupted and not self.deferred:
            log.warning("interrupted by signal %s during set-up, before any training step: nothing to save, exit %d",
                        self.signum, EXIT_INTERRUPTED)


# --- set-up ---------------------------------------------------------------------------
