"""Options and the refusal error several commands share (imported by `spanlake up`: keep it light)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from spanlake.collector.config import DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_HTTP_PORT

LAKE_HELP = "Folder holding the Parquet lake."
DATA_HELP = "Folder holding the write-ahead log and the Parquet lake."
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_HTTP_PORT}"
API_KEY_ENV = "SPANLAKE_API_KEY"  # the key sent to a spanlake that requires one (`spanlake keys`)


class Refused(click.ClickException):
    """Bad input, or the command could not run: exit code 2 (1 is kept for a failed check)."""

    exit_code = 2


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


def url_option(
    help: str = "The running spanlake's HTTP address.",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--url` of the running spanlake (default the local one, $SPANLAKE_URL)."""
    return click.option(
        "--url", default=DEFAULT_URL, show_default=True, envvar="SPANLAKE_URL", show_envvar=True, help=help
    )


format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
