"""Sequential studies: seeds where the verdict needs them.

A config's `sequential` section (`stages: [3, 5, 8, 12]`, `spending: obrien-fleming`) turns
every cell that is an arm of a comparison (the runs that differ only in seed and that a
comparison's treatment or control selects in its study) into a cell whose seeds grow stage
by stage: 0..n_j-1 at stage j. The workflow trains the first stage, looks at each comparison
row's repeated interval (analysis.looks, at the error rate spent by then:
analysis.sequential), and adds the next stage's seeds only to the cells of the rows still
undecided; a cell shared by rows (a control arm, say) grows while any of its rows does. A
seed is a seed: the runs keep their content-hashed ids, so a later stage never retrains an
earlier one, and raising the last stage extends a finished study. Cells outside any
comparison keep their fixed seeds.

Here, on the studies' side of the data flow: the section's checks, the plan of runs at the
first stage and at the last (`resolve_runs(config, plan)` resolves any plan), the table of
every run the design may train that the looks read (`candidates_table`), and the cost of the
first and the last stage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from hybrid.studies.grid import VARIANT, ResolvedRun, axis_value, get_dotted, is_arm, runs_table

# The Lan-DeMets spending functions of analysis.sequential.SPENDING_KINDS (a test keeps the
# two equal: the studies may not import the analysis).
SPENDING = ("obrien-fleming", "pocock")
DEFAULT_SPENDING = "obrien-fleming"
# The run-to-run SD at which `--cost` states a sequential study's expected GPU-hours: CIFAR's
# measured spread at 5 seeds (0.003; its upper 95% bound is 0.005).
DEFAULT_PLANNING_SD = 0.003
MIN_SEEDS = 3  # an interval needs 3 runs per arm (analysis.verdict_rule.MIN_RUNS_FOR_INTERVAL)


def sequential_section(config: Mapping) -> dict | None:
    """The `sequential` section with its defaults, or None for a fixed-seed study."""
    section = config.get("sequential")
    if not section:
        return None
    return {"spending": DEFAULT_SPENDING, "planning_sd": DEFAULT_PLANNING_SD, **section}


def check_sequential(config: Mapping) -> None:
    """The relations the schema cannot state: stages rising strictly from 3, comparisons to
    look at, and arms that select cells (not seeds). A ValueError names the key and the fix."""
    section = sequential_section(config)
    if section is None:
        return
    stages = list(section["stages"])
    if stages[0] < MIN_SEEDS or any(b <= a for a, b in zip(stages, stages[1:])):
        raise ValueError(f"sequential.stages: {stages} must be seeds per arm at each look, rising strictly "
                         f"from at least {MIN_SEEDS} (an interval needs {MIN_SEEDS} runs per arm), e.g. [3, 5, 8, 12]")
    comparisons = config.get("comparisons") or {}
    if not comparisons:
        raise ValueError("sequential: a sequential study stops comparisons, but the config has none; add "
                         "`comparisons:` or remove `sequential:`")
    for name, spec in comparisons.items():
        for arm in ("treatment", "control"):
            if "seed" in (spec.get(arm) or {}):
                raise ValueError(f"comparisons.{name}.{arm}.seed: in a sequential study an arm is a cell whose "
                                 "seeds grow stage by stage; select it by its config, not by a seed")


def first_stage_plan() -> dict[str, int]:
    """The plan before any look: every sequential cell at the first stage's seeds."""
    return {}


def fixed_member(run: ResolvedRun) -> bool:
    """Whether a run belongs to a study at that study's fixed seeds: a study in which it is
    no sequential cell (trained whatever the looks decide)."""
    sequential = {cell.split(":", 1)[0] for cell in run.cells}
    return any(study not in sequential for study in run.studies)


def first_stage(runs: list[ResolvedRun], stages) -> list[ResolvedRun]:
    """The runs of the first stage among every run the design may train (resolve_runs
    without a plan): the fixed members and the sequential cells' seeds below the first
    stage's. The same run ids as resolve_runs(config, first_stage_plan()), without
    resolving the grid again (the workflow does this in every process it starts)."""
    return [run for run in runs if fixed_member(run) or run.config.seed < stages[0]]


CANDIDATE_COLUMNS = ("cells", "gpu_hours")


def candidates_table(runs: list[ResolvedRun], gpu_hours) -> list[dict[str, str]]:
    """runs.csv's rows for every run the design may train (resolve_runs without a plan), with
    `cells` (";"-joined "study:cell" keys of the sequential cells the run belongs to) and
    `gpu_hours` (its estimate, `gpu_hours(run.config)`): what the looks read to plan the
    next stage and to weigh the design's cost against the fixed design's."""
    rows = runs_table(runs)
    for row, run in zip(rows, runs):
        row["cells"] = ";".join(run.cells)
        row["gpu_hours"] = f"{gpu_hours(run.config):.6g}"
    return rows


# -- the cost of a sequential study: its least, expected and greatest GPU-hours -----------------

def comparison_rows(config: Mapping, runs: list[ResolvedRun]) -> list[dict]:
    """The comparison rows of a sequential study as the analysis will form them (a
    comparison split by its `by` values): each with its comparison, its sequential cells,
    its claimed delta (the paper's number for its data set; None without one) and its family
    ("confirmatory" with a claim, else "exploratory"), from the runs without a plan."""
    rows: dict[tuple, dict] = {}
    for name, spec in (config.get("comparisons") or {}).items():
        prefix, by = f"{spec['study']}:", list(spec.get("by") or [])
        for run in runs:
            cells = [c for c in run.cells if c.startswith(prefix)]
            if not cells or not any(is_arm(run.config, run.variant, spec[arm]) for arm in ("treatment", "control")):
                continue
            resolved = run.config.to_dict()
            where = tuple(run.variant if key == VARIANT else axis_value(get_dotted(resolved, key)) for key in by)
            row = rows.setdefault((name, where), {"claim": name, "where": dict(zip(by, where)), "cells": set(),
                                                  "datasets": set()})
            row["cells"].update(cells)
            row["datasets"].add(run.config.dataset.name)
    out = []
    for row in rows.values():
        dataset = row["where"].get("dataset.name", "+".join(sorted(row["datasets"])))
        paper = (config["comparisons"][row["claim"]].get("paper") or {}).get(dataset)
        claimed = None if paper is None else paper["treatment"] - paper["control"]
        out.append({**row, "claimed_delta": claimed, "family": "exploratory" if paper is None else "confirmatory"})
    return out


def stop_rates(config: Mapping, rows: list[dict]) -> list[list[float]]:
    """Each row's chance of stopping at each look if its claim holds (no effect without
    one) at the section's planning SD: simulated with the verdict rule by the analysis
    (`python -m analysis.sequential stop-rates`, a command: the studies may not import it)."""
    section = sequential_section(config)
    sizes = {family: sum(r["family"] == family for r in rows) for family in ("confirmatory", "exploratory")}
    settings = config.get("analysis") or {}
    spec = {"stages": list(section["stages"]), "spending": section["spending"],
            "planning_sd": section["planning_sd"],
            **{key: settings[name] for key, name in (("alpha", "alpha"), ("margin", "equivalence_margin"),
                                                      ("tolerance", "claim_tolerance")) if name in settings},
            "rows": [{"claimed_delta": r["claimed_delta"], "family": sizes[r["family"]]} for r in rows]}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "analysis.sequential", "stop-rates"], input=json.dumps(spec),
                          capture_output=True, text=True, cwd=root, check=False)
    if done.returncode:
        raise RuntimeError(f"python -m analysis.sequential stop-rates failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def sequential_hours(config: Mapping, runs: list[ResolvedRun], hours) -> dict[str, float]:
    """{"minimum", "expected", "maximum"} GPU-hours of a sequential study (`hours(config)`
    per run): every row stopping at the first look; each run weighted by the chance that a
    row needing it runs that far (stop_rates at the planning SD; a cell shared by rows taken
    at its likeliest-to-grow row's chance, a lower bound where they are independent); every
    row reaching the last. Runs of cells outside every comparison count in all three."""
    stages = sequential_section(config)["stages"]
    rows = comparison_rows(config, runs)
    rates = stop_rates(config, rows)
    # P(a row needs seed s) = P(it stops at a look with more than s seeds per arm)
    reach: dict[str, list[float]] = {}
    for row, rate in zip(rows, rates):
        needs = [sum(p for n, p in zip(stages, rate) if n > s) for s in range(stages[-1])]
        for cell in row["cells"]:
            reach[cell] = [max(a, b) for a, b in zip(reach.get(cell, needs), needs)]
    out = {"minimum": 0.0, "expected": 0.0, "maximum": 0.0}
    for run in runs:
        cost, fixed = hours(run.config), fixed_member(run)
        chance = 1.0 if fixed else max(reach[c][run.config.seed] for c in run.cells)
        first = fixed or run.config.seed < stages[0]
        out["minimum"] += cost * first
        out["expected"] += cost * chance
        out["maximum"] += cost
    return out


def print_sequential_costs(runs: list[ResolvedRun], config: Mapping, hours) -> None:
    """The lines `--cost` adds for a sequential study (`runs`: every run it may train)."""
    section = sequential_section(config)
    stages = section["stages"]
    first = first_stage(runs, stages)
    span = sequential_hours(config, runs, hours)
    print(f"Sequential (stages {list(stages)}, {section['spending']} spending): {len(first)} runs at the first "
          f"stage, {len(runs)} at most (the table above counts them all). GPU-hours: minimum "
          f"{span['minimum']:.4g} (every comparison row stops at its first look), expected {span['expected']:.4g} "
          f"(each row's claim true, no effect where it has none, at a run-to-run SD of {section['planning_sd']:g}: "
          f"sequential.planning_sd), maximum {span['maximum']:.4g} (every row to the last look: the fixed design "
          f"with {stages[-1]} seeds per comparison cell).")


def latest_plan(config: Mapping, results_dir: Path) -> tuple[int | None, dict[str, int]]:
    """(look, plan) of the newest look the workflow wrote under `results_dir`
    (sequential/look_J.json), or (None, the first stage's plan) before any look."""
    looks = sorted((results_dir / "sequential").glob("look_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    if not looks:
        return None, first_stage_plan()
    newest = json.loads(looks[-1].read_text())
    return int(newest["look"]), dict(newest["plan"])
