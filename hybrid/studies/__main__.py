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
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from hybrid.strict_yaml import load_yaml
from hybrid.studies.checks import check_config
from hybrid.studies.cost import print_costs
from hybrid.studies.grid import write_runs_csv
from hybrid.studies.progress import print_progress
from hybrid.studies.schema import SCHEMA_HEADER, config_schema


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hybrid.studies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, nargs="?")
    parser.add_argument("--runs-csv", type=Path, default=None, help="also write the runs table here")
    parser.add_argument("--schema", action="store_true", help="print the config's JSON schema (YAML) and exit")
    parser.add_argument("--cost", action="store_true", help="print runs, images, FLOPs and GPU-hours per study")
    parser.add_argument("--status", action="store_true",
                        help="print each study's runs by state (completed, started at epoch k, failed, ...)")
    args = parser.parse_args(argv)
    if args.schema:
        print(SCHEMA_HEADER + yaml.safe_dump(config_schema(), sort_keys=False), end="")
        return
    if args.config is None:
        parser.error("the config file is required")

    try:
        config = load_yaml(args.config)
        runs = check_config(config)
    except ValueError as err:  # a ConfigFileError or ConfigError: the file, the key and the fix
        parser.exit(2, f"error: {err}\n")
    if args.runs_csv:
        write_runs_csv(runs, args.runs_csv)
    if args.status:
        print_progress(runs, Path(config.get("results", "results")))
        return
    if args.cost:
        print_costs(runs, config)
        return
    for run in runs:
        print(run.run_id, run.name, ",".join(run.studies))
    print(f"{len(runs)} runs")


if __name__ == "__main__":
    main()
