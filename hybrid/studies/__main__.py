"""Studies declared as data, resolved into runs with content-hashed ids.

A workflow config holds `base` (one run's nested settings), `seeds`, optional `variants`
(named presets of dotted keys) and `studies`, each a sub-grid:

    studies:
      smoothness:
        fixed: {train.recipe: hybrid-paper}
        vary: {variant: [diffstride, hybrid], model.smoothness: [1, 2, 4, 8, 16]}

Every run setting is a dotted key (`model.smoothness`, `train.lr`, `dataset.name`);
`variant` picks a preset. `resolve_runs` expands every study over its grid and seeds,
validates each run through `hybrid.train.config`, and merges runs that two studies share: the
run id is a hash of the resolved config, so a shared run trains once, and a config edit
that leaves a run unchanged leaves its id (and its finished result) alone.

    python -m hybrid.studies CONFIG.yaml [--runs-csv results/runs.csv]   # list the runs
    python -m hybrid.studies CONFIG.yaml --cost                          # what they cost
    python -m hybrid.studies CONFIG.yaml --status                        # where they stand

Several files are merged in order, as `snakemake --configfile A B` merges them (a mapping
key by key, any other value replaced): `python -m hybrid.studies config/config.yaml
config/sequential.yaml --cost` is the paper study as a sequential design.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from hybrid.strict_yaml import load_yaml
from hybrid.studies.checks import check_config
from hybrid.studies.cost import cost_settings, print_costs, run_gpu_hours
from hybrid.studies.grid import resolve_runs, write_runs_csv
from hybrid.studies.progress import print_progress
from hybrid.studies.schema import SCHEMA_HEADER, config_schema
from hybrid.studies.stages import latest_plan, print_sequential_costs, sequential_section


def merged(config: dict, update: dict) -> dict:
    """`update` over `config` as Snakemake merges config files: mappings key by key."""
    out = dict(config)
    for key, value in (update or {}).items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hybrid.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, nargs="*", help="the workflow config file(s), merged in order")
    parser.add_argument("--runs-csv", type=Path, default=None, help="also write the runs table here")
    parser.add_argument("--schema", action="store_true", help="print the config's JSON schema (YAML) and exit")
    parser.add_argument("--cost", action="store_true", help="print runs, images, FLOPs and GPU-hours per study")
    parser.add_argument("--status", action="store_true",
                        help="print each study's runs by state (completed, started at epoch k, failed, ...)")
    args = parser.parse_args(argv)
    if args.schema:
        print(SCHEMA_HEADER + yaml.safe_dump(config_schema(), sort_keys=False), end="")
        return
    if not args.config:
        parser.error("the config file is required")

    try:
        config = {}
        for path in args.config:
            config = merged(config, load_yaml(path))
        runs = check_config(config)
    except ValueError as err:  # a ConfigFileError or ConfigError: the file, the key and the fix
        parser.exit(2, f"error: {err}\n")
    if args.runs_csv:
        write_runs_csv(runs, args.runs_csv)
    if args.status:
        results = Path(config.get("results", "results"))
        if sequential_section(config):  # the runs planned so far, not all the design may train
            look, plan = latest_plan(config, results)
            planned = resolve_runs(config, plan)
            print(f"sequential: {len(planned)} runs planned "
                  + (f"after look {look + 1} of {len(config['sequential']['stages'])}" if look is not None
                     else "for the first stage (no look yet)") + f", of {len(runs)} at most")
            runs = planned
        print_progress(runs, results)
        return
    if args.cost:
        print_costs(runs, config)
        if sequential_section(config):
            rates, _ = cost_settings(config)
            print_sequential_costs(runs, config, lambda run_config: run_gpu_hours(run_config, rates))
        return
    for run in runs:
        print(run.run_id, run.name, ",".join(run.studies))
    print(f"{len(runs)} runs")


if __name__ == "__main__":
    main()
