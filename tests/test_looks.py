"""The looks of a sequential study (analysis/looks.py): where each row stops, what the next
stage trains, and that the claims table reads each row at its look."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.claims import claims_table
from analysis.looks import cost_table, look_file, main, next_plan, planned_run_ids, replay
from analysis.sequential import repeated_intervals

STAGES = [3, 5, 8]
CONFIG = {
    "sequential": {"stages": STAGES},
    "comparisons": {
        "hybrid_vs_diffstride": {"study": "pooling", "treatment": {"variant": "hybrid"},
                                 "control": {"variant": "diffstride"}, "by": ["dataset.name"]},
        "diffstride_vs_strided": {"study": "pooling", "treatment": {"variant": "diffstride"},
                                  "control": {"variant": "strided"}, "by": ["dataset.name"]},
    },
}
CELLS = {"hybrid": "pooling:h", "diffstride": "pooling:d", "strided": "pooling:s"}
# hybrid far above DiffStride (decided at the first look); DiffStride and strided close
# together and spread out (undecided until more seeds)
VALUES = {"hybrid": [0.80, 0.81, 0.82, 0.80, 0.81, 0.82, 0.80, 0.81],
          "diffstride": [0.50, 0.51, 0.52, 0.50, 0.51, 0.52, 0.50, 0.51],
          "strided": [0.45, 0.55, 0.50, 0.40, 0.60, 0.45, 0.55, 0.50]}


def table(seeds: dict[str, int], **status) -> pd.DataFrame:
    """A run table of the candidates: each variant's cell at its seeds, with results (every
    seed of every cell listed, unfinished beyond `seeds`)."""
    rows = []
    for variant, values in VALUES.items():
        for seed, value in enumerate(values):
            done = seed < seeds.get(variant, 0)
            state = status.get(f"{variant}{seed}", "completed" if done else "missing")
            rows.append({"run_id": f"{variant}{seed}", "studies": "pooling", "seed": seed,
                         "variant": variant, "dataset.name": "synthetic", "cells": CELLS[variant],
                         "gpu_hours": "1", "status": state,
                         "test_accuracy": value if state == "completed" else np.nan,
                         "wall_time_s": 1800.0 if state == "completed" else np.nan})
    return pd.DataFrame(rows)


def by_claim(looks: pd.DataFrame) -> dict:
    return {row["claim"]: row for row in looks.to_dict("records")}


def test_a_decided_row_stops_and_an_undecided_one_continues():
    looks = by_claim(replay(table({"hybrid": 3, "diffstride": 3, "strided": 3}), CONFIG, upto=0))
    stop, going = looks["hybrid_vs_diffstride"], looks["diffstride_vs_strided"]
    assert (stop["state"], stop["look"], stop["seeds"], stop["verdict"]) == ("stopped", 0, 3, "higher")
    assert (going["state"], going["verdict"]) == ("continuing", "inconclusive")
    # both rows are exploratory (no paper number): a family of 2, planned, alpha / 2 each
    assert stop["family_size"] == going["family_size"] == 2
    assert stop["alpha_spent"] < 0.025


def test_the_next_stage_grows_the_cells_of_open_rows_and_a_shared_cell_for_its_neediest_row():
    looks = replay(table({"hybrid": 3, "diffstride": 3, "strided": 3}), CONFIG, upto=0)
    assert next_plan(looks, STAGES) == {"pooling:h": 3, "pooling:d": 5, "pooling:s": 5}
    runs = planned_run_ids(table({}), next_plan(looks, STAGES), STAGES)
    assert runs == sorted([*(f"hybrid{s}" for s in range(3)), *(f"diffstride{s}" for s in range(5)),
                           *(f"strided{s}" for s in range(5))])


def test_a_stopped_row_reads_its_own_seeds_whatever_its_shared_cell_holds_later():
    early = by_claim(replay(table({"hybrid": 3, "diffstride": 3, "strided": 3}), CONFIG, upto=0))
    # DiffStride grew to 8 seeds for the other row, and its later seeds are far off
    later = table({"hybrid": 3, "diffstride": 8, "strided": 8})
    later.loc[later["run_id"].isin(["diffstride5", "diffstride6"]), "test_accuracy"] = 0.2
    final = by_claim(replay(later, CONFIG))
    for key in ("look", "seeds", "verdict", "ci_low", "ci_high", "ci_level"):
        assert final["hybrid_vs_diffstride"][key] == early["hybrid_vs_diffstride"][key]
    # the other row went on, and stopped at the last look
    assert final["diffstride_vs_strided"]["state"] == "stopped"
    assert final["diffstride_vs_strided"]["look"] == 2


def test_a_row_waits_at_a_look_whose_runs_have_not_all_finished():
    looks = by_claim(replay(table({"hybrid": 3, "diffstride": 5, "strided": 4}), CONFIG))
    waiting = looks["diffstride_vs_strided"]
    assert (waiting["state"], waiting["look"], waiting["unfinished"]) == ("waiting", 1, 1)
    assert next_plan(replay(table({"hybrid": 3, "diffstride": 5, "strided": 4}), CONFIG),
                     STAGES)["pooling:s"] == 5


def test_failed_runs_are_counted_and_left_out_of_the_look_s_interval():
    runs = table({"hybrid": 3, "diffstride": 3, "strided": 3}, hybrid1="diverged")
    row = by_claim(replay(runs, CONFIG, upto=0))["hybrid_vs_diffstride"]
    # two hybrid runs left: no interval at this look, so it is undecided and goes on
    assert (row["n_treatment"], row["failed_treatment"], row["verdict"]) == (2, 1, "inconclusive")
    assert row["state"] == "continuing" and np.isnan(row["ci_low"])


def test_each_look_s_interval_is_the_repeated_interval_of_the_sequential_statistics():
    looks = by_claim(replay(table({"hybrid": 3, "diffstride": 3, "strided": 3}), CONFIG, upto=0))
    a, b = np.array(VALUES["diffstride"][:3]), np.array(VALUES["strided"][:3])
    low, high = repeated_intervals(a.mean(), a.std(ddof=1), 3, b.mean(), b.std(ddof=1), 3, STAGES,
                                   family=2)
    row = looks["diffstride_vs_strided"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low[0], high[0]), rel=1e-12)


def test_the_claims_table_reads_each_row_at_the_look_it_stopped_at():
    runs = table({"hybrid": 3, "diffstride": 8, "strided": 8})
    looks = replay(runs, CONFIG)
    claims = claims_table(runs, CONFIG, looks).set_index("claim")
    for row in looks.to_dict("records"):
        claim = claims.loc[row["claim"]]
        assert claim["verdict"] == row["verdict"]
        assert (claim["ci_low"], claim["ci_high"], claim["ci_level"]) == pytest.approx(
            (row["ci_low"], row["ci_high"], row["ci_level"]))
        assert claim["n"] + claim["n_failed"] == row["seeds"]  # its seeds, not the cell's
        assert f"look {row['look'] + 1} of 3" in claim["note"]
    # the fixed reading of the same runs would count every DiffStride seed
    assert claims_table(runs, CONFIG).set_index("claim").loc["hybrid_vs_diffstride", "n_control"] == 8


def test_the_cost_table_weighs_the_design_against_the_fixed_one():
    candidates = table({})
    trained = table({"hybrid": 3, "diffstride": 5, "strided": 5})
    trained = trained[trained["status"] == "completed"]
    cost = cost_table(trained, candidates.astype({"gpu_hours": str})).set_index("study")
    assert cost.loc["pooling", "runs"] == 13 and cost.loc["pooling", "runs_fixed"] == 24
    assert cost.loc["pooling", "gpu_h"] == 13 and cost.loc["pooling", "gpu_h_fixed"] == 24
    assert cost.loc["pooling", "saved"] == pytest.approx(11 / 24)
    assert cost.loc["pooling", "measured_h"] == pytest.approx(13 * 0.5)


def test_the_look_command_writes_the_plan_the_workflow_reads(tmp_path):
    candidates = table({}).drop(columns=["status", "test_accuracy", "wall_time_s"])
    candidates.to_csv(tmp_path / "candidates.csv", index=False)
    (tmp_path / "config.yaml").write_text(json.dumps(CONFIG))  # JSON is YAML
    for variant, values in VALUES.items():
        for seed in range(3):
            folder = tmp_path / "runs" / f"{variant}{seed}"
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(json.dumps(
                {"run_id": f"{variant}{seed}", "status": "completed", "test_accuracy": values[seed]}))
    out = tmp_path / "look_0.json"
    assert main(["--candidates", str(tmp_path / "candidates.csv"), "--runs-dir", str(tmp_path / "runs"),
                 "--config", str(tmp_path / "config.yaml"), "--look", "0", "--out", str(out)]) == 0
    look = json.loads(out.read_text())
    assert look["plan"] == {"pooling:h": 3, "pooling:d": 5, "pooling:s": 5}
    assert look["settled"] == 1 and len(look["runs"]) == 13
    assert look == json.loads(json.dumps(look_file(replay_table(tmp_path), CONFIG, 0)))


def replay_table(folder):
    from analysis.collect import collect
    return collect(folder / "candidates.csv", folder / "runs")[0]
