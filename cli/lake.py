"""The options that say where the lake is and how `spanlake up` keeps it (no DuckDB here:
`spanlake up --role ingest` loads this module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from spanlake.storage.layout import LAKE_ENV, DataDir
from spanlake.storage.retention_rules import parse_rules

F = TypeVar("F", bound=Callable[..., Any])

lake_option = click.option(
    "--lake",
    default=None,
    envvar=LAKE_ENV,
    show_envvar=True,
    metavar="PATH|URL",
    help="Where the Parquet lake is, if not <data-dir>/lake: a folder shared by several collectors, "
    "or s3://bucket/prefix (credentials and endpoint from AWS_* variables, e.g. AWS_ENDPOINT_URL).",
)


def up_options(f: F) -> F:
    """The options `spanlake up` takes for the lake's location and upkeep."""
    f = click.option(
        "--retention",
        default="",
        envvar="SPANLAKE_RETENTION",
        show_envvar=True,
        metavar="RULES",
        help="Delete data older than N days, per project: 'alpha=7,*=30' ('*': every other project). "
        "Default: keep forever.",
    )(f)
    f = click.option(
        "--compaction/--no-compaction",
        default=True,
        show_default=True,
        envvar="SPANLAKE_COMPACTION",
        show_envvar=True,
        help="Compact the lake and apply retention in the background. With several collectors on "
        "object storage, enable it in exactly one process.",
    )(f)
    return lake_option(f)  # type: ignore[return-value]


def retention_rules(text: str) -> dict[str, int]:
    """Parse --retention for click (BadParameter on a bad rule)."""
    try:
        return parse_rules(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--retention") from None


def lake_dir(data_dir: Path, lake: str | None) -> DataDir:
    """The data directory with its lake; a ClickException when a local lake does not exist."""
    dd = DataDir(data_dir, lake)
    if not dd.has_lake():
        raise click.ClickException(f"no lake at {dd.lake_location}: start `spanlake up` or pass --data-dir/--lake")
    return dd
