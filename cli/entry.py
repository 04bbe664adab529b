"""The `spanlake` console script's entry point: nothing imported until the command runs.

The flush workers and the API's query workers are spawned processes, and a spawned process
first imports the module its parent was started from: the console script, hence this module.
When that was `spanlake.cli.main`, every worker also imported the whole CLI (the server,
FastAPI, gRPC, DuckDB, polars: ~1,470 modules, 190 MB, 1.2 s of CPU) only to decode WAL
segments. Here it imports the CLI when `main` runs, which a worker never calls.
"""

from __future__ import annotations


def main() -> None:
    """Run the `spanlake` command."""
    from spanlake.cli.main import cli  # optional dependency: the CLI, not imported by spawned workers

    cli()
