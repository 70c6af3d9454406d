"""One training run, top to bottom: a resolved run config in, result files out.

    python -m hybrid.train --run-config RUN.yaml --out DIR [--checkpoint PATH] [--results-dir results]

Writes DIR/result.json and DIR/history.csv (the analysis' source of truth) and logs the
run to MLflow. The final-epoch test accuracy is the primary metric; the best epoch on the
test set is recorded but never used to compare (selecting on the test set inflates).

Checkpoints go to DIR/checkpoint.pt (not a declared workflow output, so a failed job's
clean-up keeps it) at every epoch end, atomically, and on SIGTERM (Slurm time limit,
preemption) at the current step, after which the process exits with status 75 so the
job is retried; a rerun resumes and ends exactly where an uninterrupted run would (every
random draw comes from generators seeded by (seed, epoch) whose state is checkpointed).
A non-finite loss ends the run with status "diverged": a result, exit status 0; result.json
is strict JSON, a non-finite number in it (a config's `.nan`, a diverged metric) written as
null (history.csv keeps "nan"/"inf", which its readers parse).

Bad input never costs a GPU-hour, and never a traceback; every fault ends in one line:
- SIGTERM exits 75 from the command's first line (`python -m hybrid.train` installs the
  handler before torch is imported) to the run's result files: during set-up there is
  nothing to save; from the loop on it checkpoints at the current step first. After the
  result files are written, a SIGTERM is logged and the command still exits 0, so that the
  workflow keeps the finished run.
- A checkpoint carries the SHA-256 of its bytes (`hybrid.checksummed`). One that is empty,
  truncated, altered, unreadable, of an older format, or another run's (another config's
  run id) is never trusted: it is renamed aside to `<checkpoint>.bad-<time>`, named in one
  warning line, and the run starts afresh (nothing is deleted, no weights are guessed at).
- Paths that cannot work (a directory at the checkpoint path, an existing file as --out, a
  folder the job cannot write in, too little space or too small a file-size limit for a
  checkpoint), unreadable run configs (missing, a directory, not UTF-8 text, YAML syntax,
  invalid values) and configs the data set cannot train (classes, a validation carve) end
  the command with exit status 2 and one line on stderr naming the file or key and the
  fix, before any training.
- A write that fails mid-run (a full disk, a quota) is one line and exit 75: the job is
  retried and resumes from its last checkpoint. Anything unforeseen is its traceback, then
  one line naming the run and the error, and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from hybrid.data import DataNotFoundError
from hybrid.train.checkpoints import RunPathError, StorageError
from hybrid.train.config import load_run_config
from hybrid.train.loop import DeviceError, SetupError, train_run
from hybrid.train.stop import EXIT_INTERRUPTED, Interrupted

log = logging.getLogger("hybrid.train")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-config", required=True, type=Path, help="the resolved run configuration (YAML)")
    parser.add_argument("--out", required=True, type=Path, help="directory for result.json and history.csv")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: OUT/checkpoint.pt")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="where the default MLflow store lives")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (overrides train.threads)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="an MLflow tag of the run (repeatable), e.g. variant=hybrid")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_run_config(args.run_config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as err:
        parser.exit(2, f"error: {run_config_error(args.run_config, err)}\n")
    if args.threads:
        config = replace(config, train=replace(config.train, threads=args.threads))
    tags = dict(tag.partition("=")[::2] for tag in args.tag)
    if any(not key for key in tags):
        parser.exit(2, f"error: --tag takes KEY=VALUE, got {args.tag}\n")
    try:
        result = train_run(config, args.out, args.checkpoint, args.results_dir, tags)
    except Interrupted:
        return EXIT_INTERRUPTED
    except (DataNotFoundError, RunPathError, DeviceError, SetupError) as err:  # fix the input, then rerun
        parser.exit(2, f"error: {one_line(err)}\n")
    except StorageError as err:  # a disk fault mid-run: retried, resumed from the last checkpoint
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug or a fault nobody foresaw: the traceback above, then one line
        log.exception("%s failed", config.display_name())
        print(f"error: {config.display_name()} failed with {type(err).__name__}: {one_line(err)} "
              f"(the traceback is above; exit 1)", file=sys.stderr)
        return 1
    log.info("%s %s: test accuracy %s", result["run_name"], result["status"], result["test_accuracy"])
    return 0


def run_config_error(path: Path, err: Exception) -> str:
    """One line for a run config that cannot be read: what is wrong, where, and what to pass instead."""
    if isinstance(err, IsADirectoryError):
        return f"run config {path} is a directory; pass the run's YAML file"
    if isinstance(err, UnicodeDecodeError):
        return (f"run config {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
                f"pass the run's YAML file")
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"run config {path}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax: {one_line(err.problem)}"
    if isinstance(err, yaml.YAMLError):
        return f"run config {path} is not YAML text: {one_line(err)}"
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
        return f"run config {path} cannot be read ({err.strerror or err})"
    message = one_line(err)
    return message if str(path) in message else f"run config {path}: {message}"


def one_line(message) -> str:
    """`message` on one line: a log or stderr line per error, whatever the exception's text."""
    return " ".join(str(message).split())

