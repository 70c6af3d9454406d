"""What a training step asks of the device, held without a GPU (hybrid.train.audit).

- host waits: the real training command, run in this process with the tensor calls that
  wait for the device patched and counted over its steps (not the epoch's start, not the
  evaluation): none in a strided step, one in a DiffStride step (its strides, read
  together);
- kernel launches: one real step's non-view ATen operators, DiffStride at most 1.5 times
  the strided net's;
- torch.compile: a planned DiffStride layer and the whole net trace into one graph, and
  strides that move within a crop tuple do not recompile.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from hybrid.nn import build_variant
from hybrid.nn.layers import DiffStride2d
from hybrid.train import audit, cli, loop


def small_run(tmp_path, downsample: str, **train) -> dict:
    return {
        "dataset": {"name": "synthetic", "root": str(tmp_path / "data"), "synthetic_train": 96, "synthetic_test": 32},
        "model": {"downsample": downsample, "width": 8},
        "train": {"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "threads": 1, "device": "cpu", **train},
        "tracking": {"enabled": False},
    }


def count_waits(tmp_path, monkeypatch, run: dict) -> tuple[audit.HostReads, int]:
    """The training command on `run`, its waits counted over its steps; (counter, steps)."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    reads, steps = audit.HostReads(), []

    def window(real, active: bool):
        def call(*args, **kwargs):
            before, reads.active = reads.active, active
            try:
                return real(*args, **kwargs)
            finally:
                reads.active = before
        return call

    real_step = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: (steps.append(1), real_step(*a, **k)))
    monkeypatch.setattr(loop, "train_epoch", window(loop.train_epoch, True))
    for outside_the_steps in ("draw_epoch", "epoch_row", "checkpoint"):  # the epoch's start and end
        monkeypatch.setattr(loop, outside_the_steps, window(getattr(loop, outside_the_steps), False))
    with reads:
        code = cli.main(["--run-config", str(path), "--out", str(tmp_path / "run"), "--results-dir", str(tmp_path)])
    assert code in (0, None)
    return reads, len(steps)


@pytest.mark.parametrize("train", [{}, {"mixup_alpha": 0.4}, {"augmentation": "random-resized-crop"}],
                         ids=["crops", "mixup", "resized-crops"])
def test_a_strided_step_waits_for_nothing(tmp_path, monkeypatch, train):
    reads, steps = count_waits(tmp_path, monkeypatch, small_run(tmp_path, "strided", **train))
    assert steps >= 6
    assert reads.total == 0, dict(reads.sites)


@pytest.mark.parametrize("train", [{}, {"mixup_alpha": 0.4}], ids=["crops", "mixup"])
def test_a_diffstride_step_waits_once_for_its_strides(tmp_path, monkeypatch, train):
    reads, steps = count_waits(tmp_path, monkeypatch, small_run(tmp_path, "diffstride", **train))
    assert steps >= 6
    assert dict(reads.sites) == {next(iter(reads.sites)): steps}, dict(reads.sites)  # one site, once a step
    assert next(iter(reads.sites)).startswith("tolist at resnet.py")


def test_the_counter_sees_the_waits_it_claims_to(tmp_path):
    # the counter itself: a read, a blocking copy and a bool count; a non-blocking copy does not
    with audit.HostReads() as reads:
        reads.active = True
        x = torch.ones(3)
        x.sum().item()
        x.to("cpu")
        x.to("cpu", non_blocking=True)
        x.to(torch.float64)  # a dtype, no device
        bool(x[0])
        reads.active = False
        x.tolist()
    assert reads.total == 3, dict(reads.sites)


def test_a_diffstride_step_launches_at_most_one_and_a_half_times_the_strided_ops(tmp_path):
    counts = {}
    for downsample in ("strided", "diffstride"):
        run = small_run(tmp_path, downsample)
        run["model"]["width"] = 16  # the ops, not their size: ResNet-18's layers at any width
        counts[downsample] = sum(audit.step_ops(run, steps=3).values())
    assert counts["diffstride"] <= 1.5 * counts["strided"], counts


def test_a_planned_diffstride_layer_and_net_trace_into_one_graph():
    layer = DiffStride2d(2.0)
    layer.crop = layer.plan(32, 32)
    explained = torch._dynamo.explain(layer)(torch.randn(2, 4, 32, 32))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons

    model = build_variant("diffstride", width=4)
    model.plan_strides((32, 32))
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_strides_that_move_within_a_crop_tuple_do_not_recompile():
    torch._dynamo.reset()
    compiles = []

    def backend(graph, example_inputs):
        compiles.append(graph)
        return graph.forward

    torch.manual_seed(0)
    model = build_variant("diffstride", width=4)
    compiled = torch.compile(model, backend=backend)
    x = torch.randn(2, 3, 32, 32)

    def step(delta: float) -> tuple:
        with torch.no_grad():
            for m in model.diffstride_layers().values():
                m.strides.add_(delta)
        model.plan_strides((32, 32))
        crops = tuple(m.crop for m in model.diffstride_layers().values())
        compiled(x).sum().backward()
        model.constrain_strides()
        return crops

    first = step(0.0)
    assert step(0.001) == first and step(0.002) == first and len(compiles) == 1
    assert step(0.5) != first and len(compiles) == 2  # a new tuple compiles once
    assert step(-0.503) == first and len(compiles) == 2  # and one seen before is reused


def test_bench_layers_prints_the_counts_per_step():
    # `python bench/layers.py` (README) at sizes that run in seconds: its part 3 counts
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "bench/layers.py", "--map", "2,4,8,8", "--widths", "4", "--min-run-time",
                          "0.01"], cwd=root, capture_output=True, text=True, check=True).stdout
    counts = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-2:]}
    assert set(counts) == {"strided", "diffstride"}, out
    assert float(counts["strided"][2]) == 0.0 and float(counts["diffstride"][2]) == 1.0, out
    assert float(counts["diffstride"][1]) <= 1.5, out
