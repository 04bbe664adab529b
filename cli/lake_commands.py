"""The commands that read or maintain the lake: `spanlake query`, `compact`, `retention`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import duckdb
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from spanlake.cli.lake import lake_dir, lake_option, retention_rules
from spanlake.cli.options import data_dir_option
from spanlake.cli.output import print_table
from spanlake.storage.compact import compact
from spanlake.storage.reader import Lake
from spanlake.storage.retention import apply_retention, expired_partitions


@click.command()
@click.argument("sql")
@data_dir_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format. json prints one JSON array of row objects.",
)
@click.option("--max-rows", type=int, default=100, show_default=True, help="Rows shown by --format table.")
@lake_option
def query(sql: str, data_dir: Path, fmt: str, max_rows: int, lake: str | None) -> None:
    """Run DuckDB SQL over the lake's views.

    \b
    Views: spans, traces, logs (deduplicated) and spans_raw, logs_raw (as stored).
    Macros: attr(json, 'key') and attr_str(json, 'key') read one attribute, e.g.
      spanlake query "SELECT name, attr_str(attributes, 'gen_ai.request.model') FROM spans"
    Safe to run while the collector is writing: it only reads whole Parquet files.
    """
    dd = lake_dir(data_dir, lake)
    try:
        result = Lake(dd).query(sql)
    except duckdb.Error as e:
        raise click.ClickException(f"query failed: {e}") from None
    print_table(result, fmt, max_rows)


@click.command("compact")
@data_dir_option()
@click.option(
    "--min-age", type=float, default=60.0, show_default=True, help="Only merge files at least this many seconds old."
)
@lake_option
def compact_cmd(data_dir: Path, min_age: float, lake: str | None) -> None:
    """Merge small Parquet files per partition and drop re-sent duplicates."""
    dd = lake_dir(data_dir, lake)
    with Progress(transient=True) as progress:
        task = progress.add_task("compacting", total=None)
        result = compact(dd, min_age_s=min_age, progress=lambda table, files: progress.advance(task))
    click.echo(
        f"compacted {result.partitions} partition(s): {result.files_in} files → {result.files_out}, "
        f"{result.rows_in} rows → {result.rows_out} (duplicates dropped: {result.rows_in - result.rows_out})"
    )


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
