"""The looks of a sequential study: where each comparison row stopped, and which seeds come next.

    python -m analysis.looks --candidates results/sequential/candidates.csv \\
        --runs-dir results/runs --config results/config.yaml --look J \\
        --out results/sequential/look_J.json

A sequential study (the config's `sequential: {stages, spending}`) gives each comparison's
cells seeds 0..n_j-1 at stage j. After stage j's runs, each row still open is looked at: its
arms' runs of seeds below n_j, failures left out as in the fixed rule (diverged, collapsed),
give the repeated interval of analysis.sequential at look j's level (the row's share
alpha / k of its family's error rate, spent across the looks by the spending function; k is
the family's planned size, every row of it, fixed before any look). The row stops at the
first look whose label is not "inconclusive", or at the last. A cell grows to the seeds of
the row that needs most of it: a control arm shared by rows grows while any of them is open,
and a stopped row keeps reading its own seeds only, whatever its cells hold later.

`replay` does this from a run table alone, look by look, so the same function plans the
workflow's next stage (a Snakemake checkpoint per look, `--look J`: the looks up to J) and
gives the report its verdicts (every look): the result is a function of the result files,
whatever order the runs finished in. A row whose runs of a look have not all finished
waits there (a partial report, `--config partial=true`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.claims import (LABELS, analysis_settings, as_filters, comparison_groups,
                             completed_values, planned_families, row_key, select_runs)
from analysis.collect import collect, user_errors
from analysis.sequential import SPENDING_KINDS, information_fractions, look_levels, spent
from analysis.table_files import write_table
from analysis.verdict_rule import collapsed, labels, welch_interval

STATES = ("stopped", "continuing", "waiting")
LOOK_COLUMNS = ("claim", "key", "family", "family_size", "state", "look", "looks", "seeds",
                "verdict", "path", "delta", "ci_low", "ci_high", "ci_level", "alpha_spent",
                "n_treatment", "n_control", "failed_treatment", "failed_control", "unfinished",
                "claimed_delta", "cells")


@dataclass(frozen=True)
class Design:
    """The config's `sequential` section as the looks read it: seeds per arm at each look
    and the spending function (its planning SD is the cost estimate's, on the studies' side)."""
    stages: tuple[int, ...]
    spending: str = SPENDING_KINDS[0]  # O'Brien-Fleming


def design(config: Mapping) -> Design | None:
    """The sequential design of a config, or None for a fixed-seed study."""
    section = config.get("sequential")
    if not section:
        return None
    out = Design(tuple(int(n) for n in section["stages"]),
                 **{k: section[k] for k in ("spending",) if k in section})
    information_fractions(out.stages)  # rising strictly from 3, or a ValueError saying so
    return out


def _arm(runs: pd.DataFrame, n: int, metric: str, gap: float) -> dict:
    """An arm's runs of seeds below n: its mean, SD and count without failures (diverged,
    corrupt or collapsed), the failures and the runs not yet finished."""
    mine = runs[runs["seed"] < n]
    values = completed_values(mine, metric).to_numpy(dtype=float)
    kept = values[~collapsed(values, gap)]
    unfinished = int((mine["status"] == "missing").sum())
    return {"mean": kept.mean() if kept.size else np.nan,
            "sd": kept.std(ddof=1) if kept.size > 1 else np.nan, "n": kept.size,
            "failed": len(mine) - unfinished - kept.size, "unfinished": unfinished}


def replay(table: pd.DataFrame, config: Mapping, upto: int | None = None) -> pd.DataFrame:
    """Every comparison row of a sequential study, looked at up to look `upto` (0-based;
    every look without it): LOOK_COLUMNS, one row each. `state` is "stopped" (its label
    decided, or the last look), "continuing" (undecided at `upto`: it needs the next stage)
    or "waiting" (look `look`'s runs have not all finished); `look`, `seeds`, the repeated
    interval (`ci_low`, `ci_high` at `ci_level`), `verdict` and `alpha_spent` (the row's
    error rate spent by then) are those of its last look; `path` its labels look by look;
    `cells` the sequential cells of its arms ("study:cell" keys, from the table's `cells`)."""
    plan = design(config)
    settings = analysis_settings(config)
    metric, last = settings.metric, len(plan.stages) - 1
    upto = last if upto is None else min(upto, last)
    families = planned_families(table, config)
    fractions = information_fractions(plan.stages)
    rows = []
    for name, spec in (config.get("comparisons") or {}).items():
        treatment, control = as_filters(spec["treatment"]), as_filters(spec["control"])
        for labels_, group, dataset in comparison_groups(table, name, spec):
            claim = (spec.get("paper") or {}).get(dataset)
            claimed = np.nan if claim is None else claim["treatment"] - claim["control"]
            family = "exploratory" if claim is None else "confirmatory"
            k = max(families[family], 1)
            levels = look_levels(plan.stages, spending=plan.spending, alpha=settings.alpha, family=k)
            alphas = spent(settings.alpha / k, fractions, plan.spending)
            arm_t, arm_c = select_runs(group, treatment), select_runs(group, control)
            cells = group["cells"] if "cells" in group else []
            row = {"claim": name, "key": row_key(name, labels_), **labels_, "family": family,
                   "family_size": k, "looks": len(plan.stages), "claimed_delta": claimed,
                   "cells": sorted({c for joined in cells for c in str(joined).split(";")
                                    if c.startswith(f"{spec['study']}:")})}
            path = []
            for look in range(upto + 1):
                n = plan.stages[look]
                a = _arm(arm_t, n, metric, settings.collapse_gap)
                b = _arm(arm_c, n, metric, settings.collapse_gap)
                row |= {"look": look, "seeds": n, "n_treatment": a["n"], "n_control": b["n"],
                        "failed_treatment": a["failed"], "failed_control": b["failed"],
                        "unfinished": a["unfinished"] + b["unfinished"], "ci_level": levels[look],
                        "alpha_spent": alphas[look]}
                if row["unfinished"] or arm_t.empty or arm_c.empty:
                    row |= {"state": "waiting", "verdict": "inconclusive", "delta": np.nan,
                            "ci_low": np.nan, "ci_high": np.nan}
                    break
                low, high = welch_interval(a["mean"], a["sd"], a["n"], b["mean"], b["sd"], b["n"],
                                           levels[look])
                label = str(labels(low, high, claimed, settings.equivalence_margin,
                                   settings.claim_tolerance))
                path.append(label)
                row |= {"verdict": label, "delta": a["mean"] - b["mean"], "ci_low": float(low),
                        "ci_high": float(high)}
                if label != "inconclusive" or look == last:
                    row["state"] = "stopped"
                    break
                row["state"] = "continuing"
            row["path"] = " → ".join(path)
            rows.append(row)
    by = [c for c in dict.fromkeys(c for r in rows for c in r) if c not in LOOK_COLUMNS]
    return pd.DataFrame(rows, columns=[*LOOK_COLUMNS[:2], *by, *LOOK_COLUMNS[2:]])


def seeds_needed(looks: pd.DataFrame, stages) -> pd.Series:
    """Seeds per arm each row needs now: its look's if it stopped or waits there, the next
    stage's if it continues."""
    nxt = [stages[min(look + 1, len(stages) - 1)] for look in looks["look"]]
    return pd.Series(np.where(looks["state"] == "continuing", nxt, looks["seeds"]), index=looks.index)


def next_plan(looks: pd.DataFrame, stages) -> dict[str, int]:
    """{cell: seeds} for every sequential cell: the most seeds any of its rows needs."""
    plan: dict[str, int] = {}
    for cells, n in zip(looks["cells"], seeds_needed(looks, stages)):
        for cell in cells:
            plan[cell] = max(plan.get(cell, 0), int(n))
    return plan


def planned_run_ids(candidates: pd.DataFrame, plan: Mapping[str, int], stages) -> list[str]:
    """The sequential runs of a plan: a candidate run of a cell, seed below the cell's seeds
    (the first stage's for a cell the plan leaves out)."""
    keep = [any(seed < plan.get(cell, stages[0]) for cell in str(cells).split(";") if cell)
            for cells, seed in zip(candidates["cells"], candidates["seed"])]
    return sorted(candidates.loc[keep, "run_id"])


def look_file(table: pd.DataFrame, config: Mapping, look: int) -> dict:
    """What the workflow's checkpoint for look `look` writes: the rows after it, the plan of
    the next stage and its sequential runs (planned_run_ids)."""
    plan = design(config)
    looks = replay(table, config, upto=look)
    cells = next_plan(looks, plan.stages)
    records = json.loads(looks.to_json(orient="records"))
    return {"look": look, "stages": list(plan.stages), "spending": plan.spending,
            "settled": int((looks["state"] == "stopped").sum()), "rows": records, "plan": cells,
            "runs": planned_run_ids(table, cells, plan.stages)}


# -- the report's tables ---------------------------------------------------------------------

def looks_of(runs_table: pd.DataFrame, config: Mapping) -> pd.DataFrame | None:
    """The replayed looks of a sequential study's run table, or None for a fixed-seed one."""
    return replay(runs_table, config) if design(config) and config.get("comparisons") else None


def design_table(looks: pd.DataFrame) -> pd.DataFrame:
    """Per row, what the design did: the look it stopped at, its seeds per arm, its verdict,
    the repeated interval (pp) and its level, the error rate spent, the path of labels."""
    where = [c for c in looks.columns[2:list(looks.columns).index("family")]]
    interval = [f"[{100 * lo:+.2f}, {100 * hi:+.2f}]" if np.isfinite(lo) and np.isfinite(hi) else "n/a"
                for lo, hi in zip(looks["ci_low"], looks["ci_high"])]
    return pd.DataFrame({
        "claim": looks["claim"], **{LABELS.get(c, c): looks[c] for c in where}, "state": looks["state"],
        "stopped at": [f"look {k + 1} of {n}" for k, n in zip(looks["look"], looks["looks"])],
        "seeds per arm": looks["seeds"], "verdict": looks["verdict"],
        "delta (pp)": [f"{100 * d:+.2f}" if np.isfinite(d) else "n/a" for d in looks["delta"]],
        "repeated interval (pp)": interval,
        "level": [f"{100 * v:.4g}%" for v in looks["ci_level"]],
        "alpha spent": [f"{v:.3g}" for v in looks["alpha_spent"]],
        "family": [f"{f} ({k})" for f, k in zip(looks["family"], looks["family_size"])],
        "failed (treatment / control)": [f"{a} / {b}" for a, b in
                                         zip(looks["failed_treatment"], looks["failed_control"])],
        "path": looks["path"]})


def cost_table(runs_table: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
    """Per study and in all (each run once): the runs and estimated GPU-hours of the design
    (the run table's runs) against the fixed design (every candidate: each comparison cell
    at the last stage's seeds), the saving, and the hours the design's runs took."""
    hours = dict(zip(candidates["run_id"], pd.to_numeric(candidates["gpu_hours"])))
    wall = (dict(zip(runs_table["run_id"], pd.to_numeric(runs_table["wall_time_s"]) / 3600))
            if "wall_time_s" in runs_table else {})
    studies = list(dict.fromkeys(s for joined in candidates["studies"] for s in joined.split(";")))
    rows = []
    for study in [*studies, None]:
        def members(table, study=study):
            return table["run_id"] if study is None else table.loc[
                table["studies"].str.split(";").map(lambda names: study in names), "run_id"]
        done, fixed = list(members(runs_table)), list(members(candidates))
        used, full = sum(hours.get(r, np.nan) for r in done), sum(hours[r] for r in fixed)
        rows.append({"study": study or "all (each run once)", "runs": len(done),
                     "runs_fixed": len(fixed), "gpu_h": used, "gpu_h_fixed": full,
                     "saved": 1 - used / full if full else np.nan,
                     "measured_h": np.nansum([wall.get(r, np.nan) for r in done])})
    return pd.DataFrame(rows)


def sequential_tables(runs_table: pd.DataFrame, looks: pd.DataFrame,
                      candidates: pd.DataFrame | None, out: Path) -> dict[str, list[Path]]:
    """A sequential study's two tables: where each row stopped (analysis.looks.design_table)
    and its GPU-hours against the fixed design's (cost_table, from `candidates`)."""
    written = {"sequential": write_table(looks.drop(columns=["cells"]), out / "sequential",
                                         display=design_table(looks), note=SEQUENTIAL_NOTE)}
    if candidates is None:
        raise ValueError("a sequential study's tables need its candidates (--candidates "
                         "results/sequential/candidates.csv): every run its design may train")
    cost = cost_table(runs_table, candidates)
    total = cost.iloc[-1]
    shown = cost.assign(saved=[f"{100 * v:.0f}%" if np.isfinite(v) else "n/a" for v in cost["saved"]],
                        **{c: [f"{v:.4g}" for v in cost[c]] for c in ("gpu_h", "gpu_h_fixed", "measured_h")})
    shown = shown.rename(columns={"runs": "runs (design)", "runs_fixed": "runs (fixed)",
                                  "gpu_h": "GPU-h (design)", "gpu_h_fixed": "GPU-h (fixed)",
                                  "measured_h": "hours taken"})
    note = (f"In all, the design trained {total['runs']} runs, {total['gpu_h']:.4g} estimated "
            f"GPU-hours, against {total['runs_fixed']} runs and {total['gpu_h_fixed']:.4g} GPU-hours "
            "for the fixed design with the last stage's seeds in every comparison cell; "
            "hours taken: what the trained runs took (their wall time, on whatever device ran them).")
    written["sequential_cost"] = write_table(cost, out / "sequential_cost",
                                             display=shown, note=note)
    return written


SEQUENTIAL_VERDICTS = (
    "This is a sequential study: each row's interval is the repeated interval of the look at "
    "which it stopped, over its seeds of that stage (its level: the sequential table's), not "
    "one interval at 1 - alpha / k.")
SEQUENTIAL_NOTE = (
    "Each row stopped at the first look whose label was not 'inconclusive', or at the last; its "
    "verdict, repeated interval and level are that look's (analysis/looks.py, "
    "analysis/sequential.py). The level keeps the chance that any look's interval misses the "
    "true delta at alpha / k, k the family's planned size.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.looks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", required=True, type=Path,
                        help="every run the design may train (the workflow's candidates.csv)")
    parser.add_argument("--runs-dir", required=True, type=Path, help="the runs' result folders")
    parser.add_argument("--config", required=True, type=Path, help="the workflow config YAML")
    parser.add_argument("--look", required=True, type=int, help="the look (0-based)")
    parser.add_argument("--out", required=True, type=Path, help="the look file (JSON)")
    args = parser.parse_args(argv)
    with user_errors(parser):
        config = yaml.safe_load(args.config.read_text()) or {}
        if design(config) is None:
            raise ValueError(f"{args.config}: no `sequential` section: a fixed-seed study has no looks")
        table, _ = collect(args.candidates, args.runs_dir)
        out = look_file(table, config, args.look)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))
        for row in out["rows"]:
            print(f"look {args.look + 1}: {row['key']}: {row['state']} at look {row['look'] + 1} "
                  f"({row['seeds']} seeds per arm): {row['verdict']}")
        print(f"{out['settled']} of {len(out['rows'])} rows settled; {len(out['runs'])} sequential runs planned")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
