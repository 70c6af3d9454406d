"""What a training step asks of the device, counted on any machine, a GPU or none.

Two counts hold a step's GPU speed without a GPU:

- `count_ops`: the ATen operators a piece of code dispatches, less views (a view launches
  no kernel), by a TorchDispatchMode: on CUDA each one is a kernel launch, and at batch 128
  on 32x32 images a ResNet-18 step is bound by launches, not arithmetic.
- `HostReads`: the tensor calls that make the host wait for the device: reads of a value
  (`item`, `tolist`, `bool`, `float`, `int`, `numpy`, `cpu`) and copies to a device without
  `non_blocking` (`to(device)`, `cuda()`). On the CPU nothing waits, but the same calls
  are made, so counting them on the CPU counts what would wait on a GPU. Calls are counted
  only while `active` is set, with the place each came from.

`step_ops` and `step_waits` count real training steps (`hybrid.train.step.train_step`, on a
network and data set built by `hybrid.train.loop.set_up`). `bench/layers.py` prints both
counts, and `tests/test_step_cost.py` holds them to the targets (the waits there over the
real training command).
"""

from __future__ import annotations

import collections
import contextlib
import tempfile
import traceback
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy", "cpu")
COPIES = ("to", "cuda")


class OpCounter(TorchDispatchMode):
    """Counts the non-view ATen operators dispatched inside it, by name."""

    def __init__(self):
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        returns = func._schema.returns
        if not any(r.alias_info is not None and not r.alias_info.is_write for r in returns):
            self.ops[func.name()] += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn) -> collections.Counter[str]:
    with OpCounter() as counter:
        fn()
    return counter.ops


class HostReads(contextlib.AbstractContextManager):
    """Patches the tensor calls that wait for the device; counts those made while `active`."""

    def __init__(self):
        self.active = False
        self.sites: collections.Counter[str] = collections.Counter()  # "call at file:line" -> count
        self._saved: dict[str, object] = {}

    @property
    def total(self) -> int:
        return sum(self.sites.values())

    def __enter__(self):
        for name in READS + COPIES:
            real = getattr(torch.Tensor, name)
            self._saved[name] = real
            setattr(torch.Tensor, name, self._counting(name, real))
        return self

    def __exit__(self, *exc) -> None:
        for name, real in self._saved.items():
            setattr(torch.Tensor, name, real)

    def _counting(self, name: str, real):
        counter = self

        def call(tensor, *args, **kwargs):
            if counter.active and _waits(name, args, kwargs):
                counter.active = False  # the calls this one makes are not the caller's
                try:
                    frame = traceback.extract_stack(limit=2)[0]
                    counter.sites[f"{name} at {Path(frame.filename).name}:{frame.lineno}"] += 1
                finally:
                    counter.active = True
            return real(tensor, *args, **kwargs)

        return call


def _waits(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether this call would make the host wait on a GPU: every read; a copy when it names
    a device and does not say non_blocking=True."""
    if name in READS:
        return True
    if kwargs.get("non_blocking") or (len(args) > 1 and isinstance(args[1], bool) and args[1]):
        return False
    if name == "cuda":
        return True
    target = kwargs.get("device", args[0] if args else None)
    return isinstance(target, (str, torch.device, int)) and not isinstance(target, bool)


def step_ops(run: dict, steps: int = 3) -> collections.Counter[str]:
    """The ATen operators of the last of `steps` training steps of the run config `run` (a
    dict as in RUN.yaml; the first steps warm up), built as `hybrid.train` builds it."""
    counted: list[collections.Counter[str]] = []
    _run_steps(run, steps, lambda step: counted.append(count_ops(step)))
    return counted[-1]


def step_waits(run: dict, steps: int = 3) -> float:
    """The host waits per training step of `run` (batch fetch and step), over `steps` steps."""
    with HostReads() as reads:
        def waits(step):
            reads.active = True
            try:
                step()
            finally:
                reads.active = False

        _run_steps(run, steps, waits)
    return reads.total / steps


def _run_steps(run: dict, steps: int, around) -> None:
    """`steps` real training steps of `run`, each (its batch fetched, then the step) run by
    `around(step)`; the epoch's draws are made before, outside."""
    import numpy as np

    from hybrid.train.config import parse_run_config
    from hybrid.train.draws import draw_epoch
    from hybrid.train.loop import set_up
    from hybrid.train.step import new_sums, train_step
    from hybrid.train.stop import StopSignal

    config = parse_run_config(run)
    with tempfile.TemporaryDirectory() as tmp:
        t = set_up(config, Path(tmp) / "checkpoint.pt", StopSignal())
        generator, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
        draws = draw_epoch(len(t.splits.train_labels), t.batch_per_step, config.train,
                           tuple(t.splits.train_images.shape[-2:]), generator, rng, t.device)
        batches = t.feed.batches(draws.indices)
        sums = new_sums(t.device)
        for i in range(min(steps, len(draws))):
            def step(i=i):
                images, labels = next(batches)
                train_step(t.model, t.optimizer, t.splits, images, labels, draws.steps[i], 0.01, config.train,
                           t.device, sums, t.watch, forward=t.forward)

            around(step)
