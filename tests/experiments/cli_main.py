"""`spanlake` for child processes of the tests: the stats stand-in first (conftest.py), then the CLI."""

from __future__ import annotations

import tests.experiments.conftest  # noqa: F401 - installs the stand-in when experiments/stats.py is missing
from spanlake.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="spanlake")
