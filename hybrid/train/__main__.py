"""`python -m hybrid.train`: the SIGTERM handler first, then the heavy imports, then the run
(`hybrid.train.cli` says what the command does)."""

import sys

from hybrid.train.stop import exit_on_sigterm

if __name__ == "__main__":
    exit_on_sigterm()  # a Slurm signal during torch's import exits 75 (retried), not -15
    from hybrid.train.cli import main

    sys.exit(main())
