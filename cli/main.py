"""The `spanlake` command: a thin layer over the library (see `spanlake --help`)."""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version
from pathlib import Path

import click
from rich.progress import Progress

from spanlake.cli.dashboard import dashboard_auth_options
from spanlake.cli.demo import no_demo_option
from spanlake.cli.keys import auth_option
from spanlake.cli.lake import lake_dir, lake_option, retention_rules, up_options
from spanlake.cli.options import data_dir_option as shared_data_dir_option
from spanlake.cli.output import print_table
from spanlake.cli.up import port_in_use_message, print_banner, role_option
from spanlake.collector.app import PortInUse
from spanlake.collector.config import (
    DEFAULT_FLUSH_WORKERS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    MAX_FUTURE_ENV,
    MAX_PAST_ENV,
    CollectorConfig,
)
from spanlake.collector.redact import RedactionError
from spanlake.collector.validate import DEFAULT_MAX_FUTURE_S, DEFAULT_MAX_PAST_S
from spanlake.server.app import DashboardSettings, Server, ServerOptions
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.signin import resolve_mode

data_dir_option = shared_data_dir_option()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("spanlake"), prog_name="spanlake")
def cli() -> None:
    """spanlake: tracing and analytics for LLM applications.

    Start the collector with `spanlake up`, point your OpenTelemetry exporter at it,
    then look at your spans with `spanlake query`.
    """


@cli.command()
@data_dir_option
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    envvar="SPANLAKE_HOST",
    show_envvar=True,
    help="Address to listen on. Use 0.0.0.0 to accept traffic from other machines.",
)
@click.option(
    "--grpc-port",
    type=int,
    default=DEFAULT_GRPC_PORT,
    show_default=True,
    envvar="SPANLAKE_GRPC_PORT",
    show_envvar=True,
    help="OTLP/gRPC port (0 picks a free one).",
)
@click.option(
    "--http-port",
    type=int,
    default=DEFAULT_HTTP_PORT,
    show_default=True,
    envvar="SPANLAKE_HTTP_PORT",
    show_envvar=True,
    help="OTLP/HTTP port (0 picks a free one).",
)
@click.option(
    "--default-project",
    default=DEFAULT_PROJECT,
    show_default=True,
    envvar="SPANLAKE_DEFAULT_PROJECT",
    show_envvar=True,
    help="Project for spans whose resource names none (`spanlake.project`).",
)
@click.option(
    "--dashboard-port",
    type=int,
    default=8501,
    show_default=True,
    envvar="SPANLAKE_DASHBOARD_PORT",
    show_envvar=True,
    help="Dashboard port (0 picks a free one).",
)
@click.option("--no-dashboard", is_flag=True, help="Do not serve the dashboard.")
@click.option(
    "--flush-workers",
    type=click.IntRange(0, 64),
    default=DEFAULT_FLUSH_WORKERS,
    show_default=True,
    envvar="SPANLAKE_FLUSH_WORKERS",
    show_envvar=True,
    help="Processes that turn the write-ahead log into Parquet (0: in the collector process).",
)
@click.option(
    "--max-future-seconds",
    type=click.IntRange(0, 366 * 86_400),
    default=DEFAULT_MAX_FUTURE_S,
    show_default=True,
    envvar=MAX_FUTURE_ENV,
    show_envvar=True,
    help="Reject spans and logs that start more than this far after the collector's clock.",
)
@click.option(
    "--max-past-seconds",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_PAST_S,
    show_default=True,
    envvar=MAX_PAST_ENV,
    show_envvar=True,
    help="Reject spans and logs that start more than this far before the collector's clock (0: accept "
    "anything since 2000-01-01).",
)
@no_demo_option
@up_options
@auth_option
@dashboard_auth_options
@role_option
@click.option("-v", "--verbose", is_flag=True, help="Log what the collector does.")
def up(
    data_dir: Path,
    host: str,
    grpc_port: int,
    http_port: int,
    default_project: str,
    dashboard_port: int,
    no_dashboard: bool,
    flush_workers: int,
    max_future_seconds: int,
    max_past_seconds: int,
    no_demo: bool,
    lake: str | None,
    compaction: bool,
    retention: str,
    auth: str,
    dashboard_auth: str,
    dashboard_auth_header: str,
    role: str,
    verbose: bool,
) -> None:
    """Start spanlake: OTLP collector (gRPC and HTTP) writing to a local Parquet lake.

    Runs until Ctrl+C. Acknowledged spans are on disk (fsynced) before the exporter hears
    "ok"; after a crash, the next start replays them into the lake. --role runs one part of a
    scaled-out deployment (docs/architecture.md).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = CollectorConfig(
            data_dir=data_dir,
            host=host,
            grpc_port=grpc_port,
            http_port=http_port,
            default_project=default_project,
            flush_workers=flush_workers,
            max_future_s=max_future_seconds,
            max_past_s=max_past_seconds,
            lake=lake,
            compaction=compaction,
            retention=retention_rules(retention),
            auth=auth,  # type: ignore[arg-type]
        ).validate()
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    dashboard = None
    if not no_dashboard and role in ("all", "api"):  # the roles that start one
        try:
            resolve_mode(dashboard_auth, host, dashboard_auth_header)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--dashboard-auth") from None
        dashboard = DashboardSettings(dashboard_port, dashboard_auth, dashboard_auth_header)
    options = ServerOptions(config, role, dashboard, demo=not no_demo, say=click.echo)  # type: ignore[arg-type]
    try:
        server = Server(options)  # RedactionError: a broken rule file, before anything starts
        asyncio.run(server.run(on_ready=lambda s: print_banner(s, dashboard_auth, dashboard_auth_header)))
    except PortInUse as e:
        raise click.ClickException(port_in_use_message(e)) from None
    except (OSError, RedactionError) as e:
        raise click.ClickException(str(e)) from None
    click.echo("spanlake stopped; everything acknowledged is in the lake.")


@cli.command()
@click.argument("sql")
@data_dir_option
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
    # cli.main is also `spanlake up --role ingest`, which must not load DuckDB (tests/server/test_app.py).
    import duckdb  # optional dependency: DuckDB, loaded by this command only

    from spanlake.storage.reader import Lake  # optional dependency: DuckDB, as above

    dd = lake_dir(data_dir, lake)
    try:
        result = Lake(dd).query(sql)
    except duckdb.Error as e:
        raise click.ClickException(f"query failed: {e}") from None
    print_table(result, fmt, max_rows)


@cli.command("compact")
@data_dir_option
@click.option(
    "--min-age", type=float, default=60.0, show_default=True, help="Only merge files at least this many seconds old."
)
@lake_option
def compact_cmd(data_dir: Path, min_age: float, lake: str | None) -> None:
    """Merge small Parquet files per partition and drop re-sent duplicates."""
    from spanlake.storage.compact import compact  # optional dependency: DuckDB, not for `up --role ingest`

    dd = lake_dir(data_dir, lake)
    with Progress(transient=True) as progress:
        task = progress.add_task("compacting", total=None)
        result = compact(dd, min_age_s=min_age, progress=lambda table, files: progress.advance(task))
    click.echo(
        f"compacted {result.partitions} partition(s): {result.files_in} files → {result.files_out}, "
        f"{result.rows_in} rows → {result.rows_out} (duplicates dropped: {result.rows_in - result.rows_out})"
    )


from spanlake.cli.dashboard import dashboard  # noqa: E402
from spanlake.cli.dataset import dataset  # noqa: E402
from spanlake.cli.demo import demo  # noqa: E402
from spanlake.cli.keys import keys  # noqa: E402
from spanlake.cli.labels import labels  # noqa: E402
from spanlake.cli.lake import retention  # noqa: E402
from spanlake.cli.redaction import redaction  # noqa: E402
from spanlake.cli.report import analytics, report  # noqa: E402
from spanlake.cli.users import users  # noqa: E402

cli.add_command(report)
cli.add_command(analytics)
cli.add_command(dashboard)
cli.add_command(retention)
cli.add_command(demo)
cli.add_command(dataset)
cli.add_command(labels)
cli.add_command(keys)
cli.add_command(redaction)
cli.add_command(users)


if __name__ == "__main__":
    cli()
