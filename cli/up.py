"""What `spanlake up` says: the --role option, the start banner, and a taken port's message.
The composition itself is server/app.py."""

from __future__ import annotations

import sys
from importlib.metadata import version

import click

from spanlake.cli.dashboard import signin_banner
from spanlake.cli.keys import auth_banner
from spanlake.cli.redaction import redaction_banner
from spanlake.collector.app import PortInUse
from spanlake.server.app import ROLE_ENV, ROLES, Server
from spanlake.storage.layout import DataDir

role_option = click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    envvar=ROLE_ENV,
    show_envvar=True,
    help="What this process runs. all: everything on one machine; ingest: OTLP receivers, WAL and flusher "
    "(no DuckDB); api: the REST API, rollups and the dashboard; compactor: compaction and retention.",
)

PORT_OPTIONS = {"grpc": ("OTLP/gRPC", "--grpc-port"), "http": ("HTTP (OTLP/HTTP and the API)", "--http-port")}


def port_in_use_message(e: PortInUse) -> str:
    """Which port is taken and which option moves it."""
    what, option = PORT_OPTIONS[e.service]
    return (
        f"{e} for {what}: is another spanlake running? Stop it, or move this one with {option} "
        f"({option} 0 picks a free port)"
    )


def print_banner(server: Server, dashboard_auth: str, dashboard_auth_header: str) -> None:
    """The lines `spanlake up` prints once everything listens."""
    ep, cfg, c = server.endpoints, server.config, server.collector
    assert ep is not None
    data_dir, role = cfg.data_dir, server.role
    lines = [f"spanlake {version('spanlake')} is running" + ("" if role == "all" else f" (role {role})")]
    if ep.grpc is not None:
        lines += [f"  OTLP/gRPC  {ep.grpc}", f"  OTLP/HTTP  {ep.http}  (POST /v1/traces, /v1/logs, /v1/metrics)"]
    if role in ("all", "api"):
        if role == "api":
            lines.append(f"  API        {ep.http}/api/v1  (label and dataset writes: its own WAL)")
        lines.append(f"  dashboard  {server.dashboard_url}")
    if role == "compactor":
        lines.append(f"  health     {ep.http}/health  (compaction and retention: {'on' if cfg.compaction else 'off'})")
    lines += [f"  data       {DataDir(data_dir).root}", f"  lake       {DataDir(data_dir, cfg.lake).lake_location}"]
    if role != "compactor":
        lines.append(f"  {auth_banner(cfg)}")
    if server.dashboard_wanted:
        lines.append(f"  {signin_banner(data_dir, cfg.host, dashboard_auth, dashboard_auth_header)}")
    if c is not None:
        lines.append(f"  {redaction_banner(c.redactor)}")
    lines.append("")
    if ep.grpc is not None:
        lines.append(f"Send traces:  export OTEL_EXPORTER_OTLP_ENDPOINT={ep.http}")
    if role == "all":
        lines.append(
            f"Look at them: spanlake query --data-dir {data_dir} "
            '"SELECT * FROM traces ORDER BY start_time DESC LIMIT 10"'
        )
    lines.append("Press Ctrl+C to stop.")
    click.echo("\n".join(lines))
    sys.stdout.flush()
