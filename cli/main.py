"""The `spanlake` command: a thin layer over the library (see `spanlake --help`)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click

from spanlake.cli.dashboard import dashboard_auth_options
from spanlake.cli.demo import no_demo_option
from spanlake.cli.keys import auth_option
from spanlake.cli.lake import retention_rules, up_options
from spanlake.cli.options import data_dir_option as shared_data_dir_option
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


class LazyGroup(click.Group):
    """A group whose other commands live in their own modules, imported when one of them is
    run or listed (click's documented pattern for lazy subcommands). `spanlake up --role
    ingest` then loads none of them, and with them neither DuckDB nor spanlake.analytics."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # command name → "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, cmd_name)


COMMANDS = {
    "analytics": "spanlake.cli.report:analytics",
    "budgets": "spanlake.cli.budgets:budgets",
    "compact": "spanlake.cli.lake_commands:compact_cmd",
    "dashboard": "spanlake.cli.dashboard:dashboard",
    "dataset": "spanlake.cli.dataset:dataset",
    "demo": "spanlake.cli.demo:demo",
    "eval": "spanlake.cli.eval_run:eval_group",
    "evaluators": "spanlake.cli.evaluators:evaluators",
    "experiment": "spanlake.cli.experiment:experiment",
    "gate": "spanlake.cli.gate:gate",
    "keys": "spanlake.cli.keys:keys",
    "labels": "spanlake.cli.labels:labels",
    "query": "spanlake.cli.lake_commands:query",
    "redaction": "spanlake.cli.redaction:redaction",
    "report": "spanlake.cli.report:report",
    "retention": "spanlake.cli.lake_commands:retention",
    "users": "spanlake.cli.users:users",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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


if __name__ == "__main__":
    cli(prog_name="spanlake")
