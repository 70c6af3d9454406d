"""bench/throughput.py: its columns on a tiny CPU run, the aggregate mode's K processes, the
peak table and the overhead columns."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_throughput", ROOT / "bench" / "throughput.py")
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)


def test_tiny_run_prints_the_columns_and_the_aggregate_of_k_processes(monkeypatch, capsys):
    started = []
    real = throughput.start_run

    def counting(config, out):
        started.append(config["seed"])
        return real(config, out)

    monkeypatch.setattr(throughput, "start_run", counting)
    throughput.main(["--cases", "resnet18:strided", "--images", "32", "--epochs", "1", "--batch-size", "16",
                     "--width", "2", "--device", "cpu", "--peak-tflops", "1e-6", "--runs-per-device", "2"])
    out = capsys.readouterr().out
    assert started == [0, 1, 2]  # the one run, then two at once with their own seeds
    lines = out.splitlines()
    assert "peak 1e-06 TFLOP/s" in lines[0]
    header = lines[1].split()
    for column in ("images/s", "TFLOP/s", "init", "end", "peak", "ckpt", "eval"):
        assert column in header
    row = lines[2].split()
    assert row[0] == "resnet18:strided" and float(row[1]) > 0 and row[2] == "1.00"
    assert float(row[3]) == float(row[4]) > 0  # a strided net ends at its initial strides
    assert float(row[7]) > 0  # % of the given peak (a tiny one: a tiny net)
    assert re.fullmatch(r"[\d.]+|n/a", row[8])  # ckpt %: n/a where result.json lacks checkpoint_time_s
    assert "2 runs at once per device" in out
    aggregate = next(line for line in lines if line.startswith("resnet18:strided") and line != lines[2]).split()
    assert float(aggregate[1]) > 0 and float(aggregate[2]) > 0 and float(aggregate[3]) > 0


def test_overheads_and_peak_share_from_a_result():
    result = {"flops": 2e9, "initial_cost": {"flops": 1e9}, "train_time_s": 100.0, "checkpoint_time_s": 5.0,
              "last": {"images_per_s": "1000", "epoch_time_s": "50", "eval_time_s": "5"}}
    row = throughput.case_row("x:y", result, 500.0, 12.0).split()
    # 3 x 2 GFLOP x 1000 images/s = 6 TFLOP/s at the end strides, 3 at the initial; half of 12
    assert row[1:8] == ["1000", "2.00", "1.000", "2.000", "3", "6", "50.0"]
    assert row[8:] == ["5.00", "5.00", "(10%)"]
    del result["checkpoint_time_s"], result["last"]["eval_time_s"]
    assert throughput.case_row("x:y", result, 500.0, None).split()[7:] == ["n/a", "n/a", "n/a"]


@pytest.mark.parametrize("name, amp, peak", [
    ("NVIDIA H100 80GB HBM3", True, 989.0), ("NVIDIA H100 PCIe", False, 378.0), ("NVIDIA H200", True, 989.0),
    ("NVIDIA A100-SXM4-80GB", True, 312.0), ("NVIDIA A10", False, 62.5), ("NVIDIA L40S", True, 362.0),
    ("Tesla V100-SXM2-32GB", True, 125.0), ("NVIDIA GeForce RTX 4090", True, 165.0), ("NVIDIA T4", True, None),
])
def test_peak_by_device_name(name, amp, peak):
    assert throughput.peak_tflops(name, amp) == peak
