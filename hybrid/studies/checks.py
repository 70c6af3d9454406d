"""The workflow config checked whole before any job: its files, its schema, its runs, its analysis.

`check_config` is what the workflow calls on load (workflow/rules/common.smk), so that
`snakemake -n` already refuses a bad config, naming the key and the fix:

- each config file is read again strictly (hybrid.strict_yaml): a key given twice in one
  mapping is an error, where Snakemake's YAML reader keeps the last copy;
- an optional section given as null (`train:` with nothing under it) is an error that says to
  leave the key out, not every default unsaid;
- the config against the JSON schema generated from the run config's sections
  (hybrid.studies.config_schema), reporting the offending path and the rule broken, not
  the schema;
- every run of every study resolved and validated (hybrid.studies.resolve_runs), with the
  defaults that follow the data filled in (hybrid.train.config.parse_run_config): an image
  folder's `model.num_classes` is read from its train split's class folders, so the folder
  must be at `dataset.root` when the workflow starts, or the run must set it; every relation
  a training job meets on loading its data is checked there too (`model.num_classes`
  against the data set's classes, the `dataset.val_fraction` carve against the training
  set's size), and here the one the job leaves to its loader: no validation carve of a
  packed data set;
- the analysis sections against those runs: a comparison's study, its arms' columns and
  values, its `by` columns and its reference's `where`; a sweep's study, an axis that the
  study varies and a default among that axis' levels;
- a sequential study's stages and arms (hybrid.studies.stages);
- the resources: a run pinned to `cuda` needs `resources.gpus` (whether CUDA exists is the
  job's question, answered on the node that runs it, not on the login node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import jsonschema

from hybrid.data import PACKED
from hybrid.strict_yaml import load_yaml
from hybrid.studies.grid import VARIANT, ResolvedRun, axis_value, get_dotted, known_keys, resolve_runs
from hybrid.studies.schema import config_schema
from hybrid.studies.stages import check_sequential


class ConfigError(ValueError):
    """A workflow config that would waste compute: the message names the key and the fix."""


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Each config file read strictly: duplicate keys and syntax errors name file and line."""
    for path in paths:
        load_yaml(path)


def check_schema(config: Mapping) -> None:
    """The config against the generated schema; the error names the path and the rule."""
    validator = jsonschema.Draft202012Validator(config_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path) or "the config's top level"
        rule = error.validator if error.validator != "additionalProperties" else "known keys only"
        raise ConfigError(f"{path}: {error.message} (schema rule: {rule})")


def check_null_sections(config: Mapping) -> None:
    """An optional section given as null, at the top or in `base`, is refused naming the key:
    the code would read it as every default, which its writer may not have meant."""
    schema = config_schema()
    levels = [("", config, schema["properties"], schema["required"])]
    if isinstance(config.get("base"), Mapping):
        levels.append(("base.", config["base"], schema["properties"]["base"]["properties"], []))
    for where, node, properties, required in levels:
        for key, value in node.items():
            if value is None and key not in required and properties.get(key, {}).get("type") == "object":
                raise ConfigError(f"{where}{key}: null (the key with nothing under it) is no section; leave "
                                  f"{where}{key} out for its defaults, or give its settings as a mapping")


def check_config(config: Mapping) -> list[ResolvedRun]:
    """The resolved runs of a config that passed every check of the module doc; else a
    ConfigError naming the key."""
    check_null_sections(config)
    check_schema(config)
    try:
        check_sequential(config)
        runs = resolve_runs(dict(config))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_data(runs)
    check_analysis(config, runs)
    check_devices(config, runs)
    return runs


def check_data(runs: list[ResolvedRun]) -> None:
    """What a run's data loader would refuse (hybrid.data.splits) and its run config leaves
    to it: a validation carve of a packed data set, whose validation split is its test set."""
    for run in runs:
        dataset = run.config.dataset
        if dataset.name in PACKED and dataset.val_fraction > 0:
            raise ConfigError(
                f"dataset.val_fraction: {dataset.val_fraction:g} in run {run.name} ({', '.join(run.studies)}), but "
                f"the packed data set {dataset.name} takes no validation carve (its validation split is the "
                "test set); set dataset.val_fraction: 0 for it")


def check_devices(config: Mapping, runs: list[ResolvedRun]) -> None:
    """A run pinned to CUDA needs a job that gets a GPU: `resources.gpus` must say so."""
    cuda = [run for run in runs if run.config.train.device.startswith("cuda")]
    if cuda and not (config.get("resources") or {}).get("gpus", 0):
        raise ConfigError(
            f"train.device: {len(cuda)} runs ask for {cuda[0].config.train.device!r} (e.g. {cuda[0].name}) but "
            "resources.gpus is 0, so no job would get a GPU; set resources.gpus: 1, or train.device: auto")


def _study_values(runs: list[ResolvedRun], key: str) -> set[str]:
    """The values a run-table column takes over these runs, spelled as runs.csv spells them."""
    if key == VARIANT:
        return {run.variant for run in runs}
    if key == "seed":
        return {str(run.config.seed) for run in runs}
    return {axis_value(run.axes[key]) if key in run.axes else axis_value(get_dotted(run.config.to_dict(), key))
            for run in runs}


def _check_column(key: str, where: str) -> None:
    if key not in (VARIANT, "seed", *known_keys()):
        raise ConfigError(f"{where}: {key!r} is no run-table column; use `variant`, `seed` or a "
                          f"dotted config key such as dataset.name or model.smoothness")


def _check_study(name: object, studies: Mapping, where: str) -> None:
    if name not in studies:
        raise ConfigError(f"{where}: no study {name!r}; the config's studies are {', '.join(studies)}")


def check_analysis(config: Mapping, runs: list[ResolvedRun]) -> None:
    """Comparisons and sweeps against the studies and their resolved runs."""
    studies = config.get("studies") or {}
    members = {name: [run for run in runs if name in run.studies] for name in studies}
    for name, spec in (config.get("comparisons") or {}).items():
        where = f"comparisons.{name}"
        _check_study(spec["study"], studies, f"{where}.study")
        for arm in ("treatment", "control"):
            for key, value in spec[arm].items():
                _check_column(key, f"{where}.{arm}")
                levels = _study_values(members[spec["study"]], key)
                if axis_value(value) not in levels:
                    raise ConfigError(
                        f"{where}.{arm}.{key}: {value!r} is not a value of {key} in study "
                        f"{spec['study']!r}, whose runs have {', '.join(sorted(levels))}")
        for key in spec.get("by") or []:
            _check_column(key, f"{where}.by")
        for key in ((spec.get("reference") or {}).get("where") or {}):
            _check_column(key, f"{where}.reference.where")
    for name, spec in (config.get("sweeps") or {}).items():
        where = f"sweeps.{name}"
        _check_study(spec["study"], studies, f"{where}.study")
        vary = (studies[spec["study"]] or {}).get("vary") or {}
        axis = spec["axis"]
        if axis not in vary:
            raise ConfigError(f"{where}.axis: {axis!r} is not varied in study {spec['study']!r}; "
                              f"it varies {', '.join(vary) or 'nothing'}")
        levels = [axis_value(level) for level in vary[axis]]
        if axis_value(spec["default"]) not in levels:
            raise ConfigError(f"{where}.default: {spec['default']!r} is not a level of {axis} in "
                              f"study {spec['study']!r}; its levels are {', '.join(levels)}")
        for key in spec.get("by") or []:
            _check_column(key, f"{where}.by")
