"""One training run: a resolved run config in, result files and an MLflow run out.

- `config`: the run config (`RunConfig`: dataset, model, train, tracking); `recipes`: named train defaults;
- `loop`: set-up, then epochs of steps (`train_run`); `schedule`: parameter groups, learning rates;
- `step`: one step, with no wait for the device; `draws`: an epoch's random draws, made at its start;
- `audit`: a step's kernel launches and host waits, counted on any machine;
- `mps`: CUDA MPS for the runs packed on one GPU (`resources.runs_per_gpu`);
- `stop`: SIGTERM from the first line to the last (exit 75: retried, resumed);
- `checkpoints`: checksummed, atomic checkpoints and what a resumed run trusts;
- `result`: result.json and history.csv, and their provenance;
- `mlflow_store`, `tracking`: the MLflow view of the result files (`python -m hybrid.train.tracking`);
- `cli`: `python -m hybrid.train --run-config RUN.yaml --out DIR`.

The names below load on first use, so that `python -m hybrid.train` can install its signal
handler before torch is imported.
"""

import importlib

_EXPORTS = {
    "RunConfig": "config", "TrainConfig": "config", "load_run_config": "config", "parse_run_config": "config",
    "steps_per_epoch": "schedule", "train_run": "loop", "EXIT_INTERRUPTED": "stop", "Interrupted": "stop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
