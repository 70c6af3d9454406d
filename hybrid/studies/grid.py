"""Studies resolved into runs: every study expanded over its grid and seeds, each run
validated as a run config, runs that two studies share merged by their content-hashed id.
"""

from __future__ import annotations

import copy
import csv
import itertools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import lru_cache
from pathlib import Path

from hybrid.train.config import RunConfig, TrainConfig, parse_run_config

VARIANT = "variant"
# Keys that runs.csv always has, varied or not: what a run trains on and how, so that the
# analysis can tell which reference numbers apply to it.
ALWAYS_COLUMNS = ("dataset.name", "train.recipe", "model.arch", "model.block")


@lru_cache(maxsize=1)
def known_keys() -> tuple[str, ...]:
    """Every dotted key a study may set, from the run config's dataclasses."""
    keys = []
    hints = typing.get_type_hints(RunConfig)
    for f in fields(RunConfig):
        if f.name == "name":
            continue
        section = hints[f.name]
        if is_dataclass(section):
            keys += [f"{f.name}.{sub.name}" for sub in fields(section)]
        else:
            keys.append(f.name)
    return tuple(keys)


@dataclass
class ResolvedRun:
    run_id: str
    config: RunConfig
    studies: list[str] = field(default_factory=list)
    variant: str = ""
    axes: dict[str, object] = field(default_factory=dict)  # dotted key -> value, for every varied key
    # In a sequential study (hybrid.studies.stages), the cells this run belongs to as an arm
    # of a comparison ("study:cell id"), whose seeds grow stage by stage; empty otherwise.
    cells: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.display_name()


def _check_key(key: str, where: str) -> None:
    if key not in known_keys():
        raise ValueError(f"{where}: unknown key {key!r}; known keys: {', '.join(known_keys())}")


def set_dotted(tree: dict, key: str, value, where: str) -> None:
    _check_key(key, where)
    *parents, leaf = key.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = copy.deepcopy(value)


def get_dotted(tree: dict, key: str):
    node = tree
    for part in key.split("."):
        node = node[part]
    return node


def axis_value(value) -> str:
    """How an axis value reads in tables: lists joined by '+', a (vertical, horizontal)
    pair inside a list as 'VxH', a mapping as 'key=value' pairs joined by '+', whole floats
    of at least 1 without '.0'. analysis.claims.as_cell spells values the same way."""
    if isinstance(value, dict):
        return "+".join(f"{k}={axis_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return "+".join("x".join(axis_value(x) for x in v) if isinstance(v, (list, tuple)) else axis_value(v)
                        for v in value)
    if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
        return str(int(value)) if abs(value) >= 1 else str(value)
    return str(value)


def _preset(variants: dict, variant: str | None, where: str) -> dict:
    if variant is None:
        return {}
    if variant not in variants:
        raise ValueError(f"{where}: unknown variant {variant!r}; declared variants: {', '.join(variants)}")
    return variants[variant]


def resolve_runs(config: dict, plan: Mapping[str, int] | None = None) -> list[ResolvedRun]:
    """Every run of every study, once each, in a stable order.

    In a sequential study (a `sequential` section: hybrid.studies.stages), a cell that is an
    arm of a comparison has seeds 0..n-1 in its comparison's study, n from `plan` ({cell key:
    seeds}, the first stage's for a cell it leaves out); without a plan, the last stage's:
    every run the design may train. Other cells keep their fixed seeds."""
    base = config.get("base") or {}
    variants = config.get("variants") or {}
    seeds = config.get("seeds") or [0]
    studies = config.get("studies") or {}
    if not studies:
        raise ValueError("studies: the config declares no study; add one under `studies:`")
    for name, preset in variants.items():
        for key in preset:
            _check_key(key, f"variants.{name}")
    for name, study in studies.items():
        for part in ("fixed", "vary"):
            for key in study.get(part) or {}:
                if key != VARIANT:
                    _check_key(key, f"studies.{name}")
        fixed_variant = (study.get("fixed") or {}).get(VARIANT)
        if fixed_variant is not None:  # checked even where `vary` overrides it
            _preset(variants, fixed_variant, f"studies.{name}")
    arms = comparison_arms(config) if config.get("sequential") else {}
    vary_keys = sorted({k for s in studies.values() for k in (s.get("vary") or {}) if k != VARIANT} | set(ALWAYS_COLUMNS))
    runs: dict[str, ResolvedRun] = {}
    for study_name, study in studies.items():
        where = f"studies.{study_name}"
        fixed = dict(study.get("fixed") or {})
        vary = dict(study.get("vary") or {})
        for key, values in vary.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}.vary.{key}: expected a non-empty list of values, got {values!r}")
        keys = list(vary)
        for combination in itertools.product(*(vary[k] for k in keys)):
            point = dict(zip(keys, combination))
            variant = point.pop(VARIANT, fixed.get(VARIANT))
            layers = [_preset(variants, variant, where), {k: v for k, v in fixed.items() if k != VARIANT}, point]

            def build(seed: int, point=point, variant=variant, layers=layers) -> RunConfig:
                tree = copy.deepcopy(base)
                for layer in layers:
                    for key, value in layer.items():
                        set_dotted(tree, key, value, where)
                tree["seed"] = seed
                dataset = get_dotted(tree, "dataset.name") if "dataset" in tree and "name" in tree["dataset"] else "synthetic"
                # `key=value` pairs, as MLflow's run list shows them: the data set, the variant,
                # the recipe (fixed or varied), then the study's other axes and the seed
                recipe = (tree.get("train") or {}).get("recipe", TrainConfig.recipe)
                others = (f"{k}={axis_value(v)}" for k, v in point.items() if k not in ("dataset.name", "train.recipe"))
                tree["name"] = " ".join([f"dataset={dataset}", f"variant={variant or 'custom'}", f"recipe={recipe}",
                                         *others, f"seed={seed}"])
                try:
                    return parse_run_config(tree)
                except ValueError as err:
                    raise ValueError(f"{where} (point {point}, seed {seed}): {err}") from None

            study_seeds, cell = study.get("seeds") or seeds, None
            if arms.get(study_name):
                probe = build(0)
                if any(is_arm(probe, variant, arm) for arm in arms[study_name]):
                    cell = cell_key(study_name, probe)
                    stages = config["sequential"]["stages"]
                    study_seeds = range(stages[-1] if plan is None else plan.get(cell, stages[0]))
            for seed in study_seeds:
                run_config = build(seed)
                run_id = run_config.run_id()
                run = runs.get(run_id)
                if run is None:
                    resolved = run_config.to_dict()
                    axes = {k: get_dotted(resolved, k) for k in vary_keys}
                    run = runs[run_id] = ResolvedRun(run_id, run_config, variant=variant or "", axes=axes)
                if study_name not in run.studies:
                    run.studies.append(study_name)
                if cell is not None and cell not in run.cells:
                    run.cells.append(cell)
    return list(runs.values())


# -- sequential studies: the cells whose seeds grow stage by stage ------------------------------

def comparison_arms(config: Mapping) -> dict[str, list[dict]]:
    """{study: the {run-table column: value} filters of every comparison arm in it}."""
    arms: dict[str, list[dict]] = {}
    for spec in (config.get("comparisons") or {}).values():
        arms.setdefault(spec["study"], []).extend([spec["treatment"], spec["control"]])
    return arms


def is_arm(run_config: RunConfig, variant: str | None, arm: Mapping) -> bool:
    """Whether a run's cell matches an arm's {column: value} (values spelled as runs.csv
    spells them; `seed` is no cell's column and matches nothing)."""
    resolved = run_config.to_dict()
    for key, value in arm.items():
        if key == VARIANT:
            if axis_value(variant or "") != axis_value(value):
                return False
        elif key == "seed" or axis_value(get_dotted(resolved, key)) != axis_value(value):
            return False
    return True


def cell_key(study: str, run_config: RunConfig) -> str:
    """'study:id' of the cell a run belongs to in a study: the id of its config at seed 0,
    the same for all of the cell's seeds."""
    return f"{study}:{replace(run_config, seed=0).run_id()}"


def runs_table(runs: list[ResolvedRun]) -> list[dict[str, str]]:
    """The rows of results/runs.csv: id, name, studies, variant, seed and every varied key."""
    rows = []
    for run in runs:
        row = {"run_id": run.run_id, "name": run.name, "studies": ";".join(run.studies),
               "variant": run.variant, "seed": str(run.config.seed)}
        row.update({k: axis_value(v) for k, v in run.axes.items()})
        rows.append(row)
    return rows


def write_runs_csv(runs: list[ResolvedRun], path: str | Path) -> None:
    rows = runs_table(runs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
