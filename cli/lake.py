"""Lake location options and lake maintenance commands (`spanlake retention`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from spanlake.cli.options import data_dir_option
from spanlake.storage.layout import LAKE_ENV, DataDir
from spanlake.storage.retention import apply_retention, expired_partitions, parse_rules

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


@click.command("retention")
@data_dir_option()
@lake_option
@click.option("--project", "projects", multiple=True, required=True, help="Project to trim ('*': every project).")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Keep this many days; delete older data.")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
def retention(data_dir: Path, lake: str | None, projects: tuple[str, ...], days: int, dry_run: bool) -> None:
    """Delete a project's data older than --days (whole hourly partitions).

    Runs under the lake's compaction lock, so it never overlaps a compaction; collectors
    keep writing meanwhile.
    """
    dd = lake_dir(data_dir, lake)
    rules = retention_rules(",".join(f"{p}={days}" for p in projects))
    now = datetime.now(UTC)
    todo = expired_partitions(dd, rules, now)
    if dry_run:
        for p in todo:
            click.echo(p)
        click.echo(f"{len(todo)} partition(s) older than {days} day(s) would be deleted")
        return
    columns = (TextColumn("deleting"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("", total=len(todo))
        result = apply_retention(
            dd, rules, now=now, progress=lambda part, n: bar.update(task, advance=1, description=part)
        )
    if result.skipped_busy:
        raise click.ClickException("a compaction or retention run holds the lake's lock; try again shortly")
    click.echo(
        f"deleted {result.partitions} partition(s) older than {days} day(s): "
        f"{result.files} files, {result.bytes / 1e6:.1f} MB"
    )
