"""How fast the workflow resolves its grid and plans its jobs, for the paper config and a
2,000-run grid.

    python bench/dag.py

Times `resolve_runs` in this process and a full `snakemake -n` (dry run: parse, validate,
resolve, build the DAG, list the jobs) in a subprocess, for config/config.yaml and for the
same config with an extra study that brings the grid to about 2,000 runs (1,900 today). Prints seconds,
runs, and each figure's ratio to the paper config's.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hybrid.studies import resolve_runs

ROOT = Path(__file__).resolve().parents[1]


def big_grid(config: dict, target: int = 2000) -> dict:
    config = copy.deepcopy(config)
    n = len(resolve_runs(config))
    lrs = [round(0.01 * (i + 1), 3) for i in range(40)]
    config["studies"]["lr_grid"] = {
        "vary": {"dataset.name": ["cifar10", "cifar100"], "variant": ["diffstride", "hybrid"], "train.lr": lrs},
        "seeds": list(range(max(1, (target - n) // (2 * 2 * len(lrs))))),
    }
    return config


def dry_run(config: dict) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1", "--configfile", str(path),
             "--directory", tmp, "--snakefile", str(ROOT / "Snakefile")],
            capture_output=True, text=True, cwd=ROOT,
        )
        seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return seconds, out.stdout.count("\n")


def main() -> None:
    paper = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    rows = []
    for name, config in (("paper config", paper), ("large grid", big_grid(paper))):
        start = time.perf_counter()
        runs = len(resolve_runs(config))
        resolve = time.perf_counter() - start
        dry, _ = dry_run(config)
        rows.append((name, runs, resolve, dry))
    base = rows[0]
    print(f"{'config':<16} {'runs':>6} {'resolve s':>10} {'x':>6} {'dry run s':>10} {'x':>6}")
    for name, runs, resolve, dry in rows:
        print(f"{name:<16} {runs:>6} {resolve:>10.2f} {resolve / base[2]:>6.2f} {dry:>10.2f} {dry / base[3]:>6.2f}")


if __name__ == "__main__":
    main()
