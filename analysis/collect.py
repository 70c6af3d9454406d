"""Collect the runs' result files into two tidy tables: one row per run, one row per run-epoch.

    python -m analysis.collect --runs results/runs.csv --runs-dir results/runs \\
        --out results/runs_table.csv --history-out results/history_table.csv \\
        [--status-out results/run_status.csv]

`runs.csv` (written by the workflow) lists every resolved run: `run_id`, `name`, `studies`
(";"-joined), `variant`, `seed` and one column per dotted config key (`dataset.name`,
`model.smoothness`, ...), all kept as strings so "4.0" stays "4.0". Each run's
`<runs-dir>/<run_id>/result.json` adds its outcome; `history.csv` its epochs. A run without a
result file keeps its row with status "missing", one whose file cannot be read (or names
another run, or an unknown status) gets status "corrupt" and a warning naming the file:
nothing is dropped, and the statistics count both as excluded runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

STATUSES = ("completed", "diverged", "missing", "corrupt")
RESULT_STATUSES = ("completed", "diverged")  # what hybrid.train writes
DATASET, RECIPE, VARIANT = "dataset.name", "train.recipe", "variant"
# result.json keys left out of the run table: runs.csv already has the run's name and config.
SKIPPED_KEYS = ("run_id", "run_name", "config")
NUMERIC_COLUMNS = ("seed", "test_accuracy", "best_test_accuracy", "best_epoch", "test_loss",
                   "val_accuracy", "epochs_completed", "epochs", "params", "flops",
                   "wall_time_s", "train_time_s", "images_per_s")
NUMERIC_PREFIXES = ("stride/", "cost/", "initial_cost/")
MAP_COLUMNS = ("cost/final_map", "initial_cost/final_map")  # "HxW" strings, not numbers


def read_runs(path: str | Path) -> pd.DataFrame:
    """runs.csv as strings (empty cells stay ""), except the integer `seed`."""
    runs = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"run_id", "studies", "seed"} - set(runs.columns)
    if missing:
        raise KeyError(f"{path} lacks columns {sorted(missing)}; has {list(runs.columns)}. "
                       "Regenerate it with the workflow's resolve step.")
    runs["seed"] = runs["seed"].astype(int)
    return runs


def flatten_result(result: dict) -> dict[str, object]:
    """One run-table row from a result.json: scalars as they are, `learned_strides` as
    `stride/<layer>/v` and `stride/<layer>/h`, other dicts (`cost`, `versions`) as
    `<key>/<sub-key>`; the run's name and config are left to runs.csv."""
    row: dict[str, object] = {}
    for key, value in result.items():
        if key in SKIPPED_KEYS:
            continue
        if key == "learned_strides":
            for layer, (v, h) in (value or {}).items():
                row[f"stride/{layer}/v"], row[f"stride/{layer}/h"] = v, h
        elif isinstance(value, dict):
            row.update({f"{key}/{k}": v for k, v in value.items()
                        if not isinstance(v, (dict, list))})
            # a map size, [height, width], as "HxW" (cost/final_map, initial_cost/final_map)
            row.update({f"{key}/{k}": "x".join(str(n) for n in v) for k, v in value.items()
                        if isinstance(v, list) and v and all(isinstance(n, int) for n in v)})
        elif not isinstance(value, list):
            row[key] = value
    return row


def read_result(path: Path, run_id: str) -> dict[str, object]:
    """The flattened result of one run: status "missing" without a file, "corrupt" (with a
    warning naming the file) when it is unreadable, names another run or an unknown status."""
    if not path.exists():
        return {"status": "missing"}
    try:
        result = json.loads(path.read_text())
        if not isinstance(result, dict):
            raise ValueError(f"expected a JSON object, got {type(result).__name__}")
        if result.get("run_id", run_id) != run_id:
            raise ValueError(f"it belongs to run {result['run_id']!r}")
        if result.get("status") not in RESULT_STATUSES:
            raise ValueError(f"status {result.get('status')!r} is not one of {RESULT_STATUSES}")
        strides = result.get("learned_strides") or {}
        if not isinstance(strides, dict) or any(len(s) != 2 for s in strides.values()):
            raise ValueError("learned_strides must map each layer to [v, h]")
    except (OSError, ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
        warnings.warn(f"{path}: unreadable result of run {run_id} ({err}); the run is marked "
                      "'corrupt'. Delete the file so the workflow reruns the run.", stacklevel=2)
        return {"status": "corrupt"}
    return flatten_result(result)


def read_history(path: Path, run_id: str) -> pd.DataFrame | None:
    """One run's history.csv with `run_id` as first column; None (with a warning for an
    unreadable file) when there is none."""
    if not path.exists():
        return None
    try:
        history = pd.read_csv(path)
        if "epoch" not in history.columns:
            raise ValueError(f"no 'epoch' column; columns are {list(history.columns)}")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        warnings.warn(f"{path}: unreadable history of run {run_id} ({err}); its epochs are "
                      "left out of the history table.", stacklevel=2)
        return None
    history.insert(0, "run_id", run_id)
    return history


def collect(runs_csv: str | Path, runs_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs_table, history_table): every run of runs.csv with its result columns and status
    (completed, diverged, missing or corrupt), and every epoch of every readable history."""
    runs = read_runs(runs_csv)
    runs_dir = Path(runs_dir)
    results, histories = [], []
    for run_id in runs["run_id"]:
        results.append(read_result(runs_dir / run_id / "result.json", run_id))
        history = read_history(runs_dir / run_id / "history.csv", run_id)
        if history is not None:
            histories.append(history)
    outcome = pd.DataFrame(results, index=runs.index)
    outcome = outcome.drop(columns=[c for c in outcome.columns if c in runs.columns])
    # every run table has the metric columns, even when no run has finished yet
    absent = [c for c in NUMERIC_COLUMNS if c not in outcome.columns and c not in runs.columns]
    outcome = outcome.assign(**dict.fromkeys(absent, np.nan))
    runs_table = pd.concat([runs, outcome], axis=1)
    runs_table = _with_numeric_columns(runs_table)
    history_table = (pd.concat(histories, ignore_index=True) if histories
                     else pd.DataFrame(columns=["run_id", "epoch"]))
    return runs_table, history_table


def _with_numeric_columns(table: pd.DataFrame) -> pd.DataFrame:
    for column in table.columns:
        if column not in MAP_COLUMNS and (column in NUMERIC_COLUMNS or column.startswith(NUMERIC_PREFIXES)):
            table[column] = pd.to_numeric(table[column], errors="coerce")  # "" -> NaN
    return table


def read_runs_table(path: str | Path) -> pd.DataFrame:
    """A runs_table.csv written by `collect`, with the same types: config columns as strings,
    metrics as numbers."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return _with_numeric_columns(table)


def read_history_table(path: str | Path) -> pd.DataFrame:
    """A history_table.csv written by `collect` (run ids stay strings)."""
    return pd.read_csv(path, dtype={"run_id": str})


def in_study(table: pd.DataFrame, study: str) -> pd.DataFrame:
    """The runs that belong to `study` (a run can belong to several: `studies` is ";"-joined)."""
    member = table["studies"].fillna("").str.split(";").map(lambda names: study in names)
    return table[member.astype(bool)]


@contextlib.contextmanager
def user_errors(parser: argparse.ArgumentParser):
    """A user's mistake in a command line (a missing or unreadable file, a config key the
    tables cannot use) ends the command with exit status 2 and one line, not a traceback."""
    try:
        yield
    except (OSError, ValueError, KeyError) as err:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(err).split())}\n")


RUN_KEYS = ("run_id", "name", "studies", "seed")  # runs.csv columns that are no config axis


def config_columns(table: pd.DataFrame) -> list[str]:
    """The columns that hold a run's configuration (`variant` and runs.csv's dotted keys,
    everything before `status`) less the seed: runs equal on them form one cell, the runs
    that differ only in seed."""
    columns = list(table.columns)
    end = columns.index("status") if "status" in columns else len(columns)
    return [c for c in columns[:end] if c not in RUN_KEYS]


def variant_studies(config: Mapping) -> list[str]:
    """The studies tabulated variant by variant (a table and an accuracy figure each): those
    that vary `variant` and are no sweep's study (a sweep has its own table and figure)."""
    swept = {spec.get("study") for spec in (config.get("sweeps") or {}).values()}
    return [name for name, study in (config.get("studies") or {}).items()
            if VARIANT in ((study or {}).get("vary") or {}) and name not in swept]


def study_rows(config: Mapping, study: str, table: pd.DataFrame) -> list[str]:
    """The run-table columns that split a variant study beside dataset and variant: the
    recipe, then every other key the study varies (e.g. `model.arch`)."""
    varied = ((config.get("studies") or {}).get(study) or {}).get("vary") or {}
    columns = [RECIPE, *(k for k in varied if k not in (DATASET, VARIANT, RECIPE))]
    return [c for c in columns if c in table.columns]


def status_counts(table: pd.DataFrame, by: Sequence[str] = (DATASET,)) -> pd.DataFrame:
    """Runs per study (and `by`, where the table has those columns) and status: one column per
    status in STATUSES plus `total`, so diverged, missing and corrupt runs stay visible."""
    by = [c for c in by if c in table.columns]
    exploded = table.assign(study=table["studies"].fillna("").str.split(";")).explode("study")
    counts = (exploded.groupby(["study", *by, "status"], dropna=False).size()
              .unstack("status", fill_value=0))
    counts = counts.reindex(columns=[*STATUSES, *sorted(set(counts.columns) - set(STATUSES))],
                            fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts.reset_index().rename_axis(columns=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.collect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, type=Path, help="runs.csv of the resolved runs")
    parser.add_argument("--runs-dir", required=True, type=Path,
                        help="directory holding <run_id>/result.json and history.csv")
    parser.add_argument("--out", required=True, type=Path, help="runs table CSV to write")
    parser.add_argument("--history-out", required=True, type=Path,
                        help="history table CSV to write (one row per run and epoch)")
    parser.add_argument("--status-out", type=Path,
                        help="optional CSV of run counts per study, dataset and status")
    args = parser.parse_args(argv)
    with user_errors(parser):
        runs_table, history_table = collect(args.runs, args.runs_dir)
        for path, table in ((args.out, runs_table), (args.history_out, history_table)):
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
        if args.status_out:
            args.status_out.parent.mkdir(parents=True, exist_ok=True)
            status_counts(runs_table).to_csv(args.status_out, index=False)
        counts = runs_table["status"].value_counts()
        print(f"collected {len(runs_table)} runs: "
              + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
              + f"; {len(history_table)} history rows")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
