"""Many runs: studies declared as data, resolved into runs with content-hashed ids.

- `grid`: every study expanded over its grid and seeds, shared runs merged (`resolve_runs`);
- `schema`: the workflow config's JSON schema, generated from the run config;
- `checks`: the workflow's checks of a config, before any job;
- `cost`: runs, images, FLOPs and GPU-hours, before launch;
- `progress`: where each study stands, from its files alone;
- `__main__`: `python -m hybrid.studies CONFIG.yaml [--cost | --status | --schema]`.
"""

from hybrid.studies.grid import (
                                 VARIANT,
                                 ResolvedRun,
                                 axis_value,
                                 get_dotted,
                                 known_keys,
                                 resolve_runs,
                                 runs_table,
                                 set_dotted,
                                 write_runs_csv,
)

__all__ = ["VARIANT", "ResolvedRun", "axis_value", "get_dotted", "known_keys", "resolve_runs", "runs_table",
           "set_dotted", "write_runs_csv"]
