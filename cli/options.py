"""Options several commands share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spanlake.collector.config import DEFAULT_DATA_DIR

LAKE_HELP = "Folder holding the Parquet lake."
DATA_HELP = "Folder holding the write-ahead log and the Parquet lake."


def data_dir_option(help: str = DATA_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--data-dir` (default ./spanlake-data, $SPANLAKE_DATA_DIR)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        show_default=True,
        envvar="SPANLAKE_DATA_DIR",
        show_envvar=True,
        help=help,
    )


task_option = click.option(
    "--task",
    default=None,
    metavar="NAME",
    help="Only tasks of this name (the task's name, else its span name); span-level figures (calls, steps, "
    "checks, retrievals) count the spans whose innermost task has this name.",
)
