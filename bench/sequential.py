"""What a group-sequential verdict (analysis/sequential.py) buys and what it costs, by
simulation with the project's own rule.

    python bench/sequential.py [--replicates 100000] [--family 1 16] [--stages 3 5 8 12]

For each family size, one table: rows are the scenarios (no true effect at sd 0.003 and
0.01; the paper's +0.0094 at sd 0.002, 0.003, 0.005, 0.01), columns the designs on the same
simulated runs: the fixed rule at the last stage's seeds (analysis.verdict_rule), and the
sequential design under O'Brien-Fleming and Pocock spending, and the naive design that uses
the full alpha / k at every look. Each cell: the rate of "reproduced" (false under no
effect, the power under the claim), the rate of any direction (each one false under no
effect) and the expected seeds per arm. Then the (minimum, expected, maximum) seeds per arm
at the planning sd 0.005, the figures the cost estimate needs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.sequential import NAIVE, SPENDING_KINDS, seeds_range, simulate
from analysis.verdict_rule import ALPHA

CLAIM = 0.0094  # the paper's CIFAR-10 claim
SCENARIOS = [("no effect", 0.0, 0.003), ("no effect", 0.0, 0.01)] + [
    ("claim", CLAIM, sd) for sd in (0.002, 0.003, 0.005, 0.01)]
DESIGNS = SPENDING_KINDS + (NAIVE,)
PLANNING_SD = 0.005


def table(stages: list[int], family: int, replicates: int) -> list[str]:
    head = ["scenario", "sd", f"fixed {stages[-1]}: repr", "dir"]
    for kind in DESIGNS:
        head += [f"{kind}: repr", "dir", "E[seeds]"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, delta, sd in SCENARIOS:
        cells = [name if delta == 0 else f"+{delta}", f"{sd}"]
        for i, kind in enumerate(DESIGNS):
            run = simulate(delta, sd, stages, claimed_delta=CLAIM, spending=kind, family=family,
                           replicates=replicates, seed=2024)  # same runs for every design
            if i == 0:
                cells += [f"{run.fixed.reproduced:.4f}", f"{run.fixed.direction:.4f}"]
            s = run.sequential
            cells += [f"{s.reproduced:.4f}", f"{s.direction:.4f}", f"{s.expected_seeds:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=100_000)
    parser.add_argument("--family", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--stages", type=int, nargs="+", default=[3, 5, 8, 12])
    args = parser.parse_args()
    start = time.perf_counter()
    se = np.sqrt(ALPHA * (1 - ALPHA) / args.replicates)
    print(f"stages {args.stages} seeds per arm, claim +{CLAIM}, alpha {ALPHA}, "
          f"{args.replicates} replicates per cell (MC standard error {se:.4f} at a rate of {ALPHA})")
    for family in args.family:
        print(f"\nfamily of {family}: nominal level of a false direction {ALPHA / family:.4g} per row")
        print("\n".join(table(args.stages, family, args.replicates)))
        for kind in SPENDING_KINDS:
            low, expected, high = seeds_range(args.stages, CLAIM, PLANNING_SD, spending=kind,
                                              family=family, replicates=args.replicates, seed=2024)
            print(f"seeds per arm, {kind}, planning sd {PLANNING_SD}: min {low}, "
                  f"expected {expected:.2f}, max {high}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
