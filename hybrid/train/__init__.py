"""One training run: a resolved run config in, result files and an MLflow run out.

- `config`: the run config (`RunConfig`: dataset, model, train, tracking) and the recipes;
- `loop`: set-up, then epochs of steps (`train_run`);
- `stop`: SIGTERM handled from the first line (exit 75: retried, resumed);
- `checkpoints`: checksummed, atomic checkpoints and what a resumed run trusts;
- `result`: result.json and history.csv, and their provenance;
- `mlflow_store`, `tracking`: the MLflow view of the result files (`python -m hybrid.train.tracking`);
- `__main__`: `python -m hybrid.train --run-config RUN.yaml --out DIR`.
"""

from hybrid.train.config import RunConfig, TrainConfig, load_run_config, parse_run_config
from hybrid.train.loop import steps_per_epoch, train_run
from hybrid.train.stop import EXIT_INTERRUPTED, Interrupted

__all__ = ["EXIT_INTERRUPTED", "Interrupted", "RunConfig", "TrainConfig", "load_run_config", "parse_run_config",
           "steps_per_epoch", "train_run"]
