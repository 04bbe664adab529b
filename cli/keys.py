"""`spanlake keys`: create, list and revoke per-project API keys (see docs/security.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from spanlake.cli.options import data_dir_option
from spanlake.collector.config import CollectorConfig
from spanlake.storage.keys import KEYS_ENV, SCOPES, KeyStore, keys_path

_data_dir = data_dir_option(f"Data directory whose keys.json holds the keys (${KEYS_ENV} names another file).")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else ""


@click.group("keys")
def keys() -> None:
    """Per-project API keys for OTLP ingest and the HTTP API.

    Clients send a key as `Authorization: Bearer <token>`, e.g.
    OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20<token>". Only a hash is stored;
    a running collector picks up changes to the keys file by itself.
    """


@keys.command("create")
@_data_dir
@click.option("--project", required=True, help="The project this key writes to or reads from.")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    required=True,
    help="read: read; write: also send spans and labels; admin: also manage the project's keys over the API.",
)
@click.option("--name", default="", help="A note to recognise the key by (who or what uses it).")
def create(data_dir: Path, project: str, scope: str, name: str) -> None:
    """Create a key and print its token (shown only this once)."""
    try:
        key, token = KeyStore(keys_path(data_dir)).create(project, scope, name)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    click.echo(f"created key {key.id} ({key.scope}) for project {key.project!r}", err=True)
    click.echo("token (store it now; it cannot be shown again):", err=True)
    click.echo(token)


@keys.command("list")
@_data_dir
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
def list_keys(data_dir: Path, show_all: bool) -> None:
    """List keys (id, project, scope, name, created, revoked); never tokens."""
    try:
        found = KeyStore(keys_path(data_dir)).load()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    shown = [k for k in found if show_all or k.active]
    if not shown:
        click.echo("no keys" + ("" if show_all else " (--all includes revoked ones)"))
        return
    click.echo(f"{'ID':<9} {'PROJECT':<20} {'SCOPE':<6} {'CREATED':<21} {'REVOKED':<21} NAME")
    for k in shown:
        click.echo(
            f"{k.id:<9} {k.project:<20} {k.scope:<6} {_when(k.created_at):<21} {_when(k.revoked_at):<21} {k.name}"
        )


@keys.command("revoke")
@_data_dir
@click.argument("key_id")
def revoke(data_dir: Path, key_id: str) -> None:
    """Revoke a key by its id; collectors refuse it from their next request on."""
    try:
        key = KeyStore(keys_path(data_dir)).revoke(key_id)
    except KeyError:
        raise click.ClickException(f"no key with id {key_id!r} (see `spanlake keys list --all`)") from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"revoked key {key.id} of project {key.project!r}")


auth_option = click.option(
    "--auth",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    envvar="SPANLAKE_AUTH",
    show_envvar=True,
    help="Require API keys (`spanlake keys create`). auto: off on a loopback address, on anywhere else; "
    "off is refused on a non-loopback address.",
)


def auth_banner(config: CollectorConfig) -> str:
    """What `spanlake up` says about authentication at start."""
    if not config.auth_enabled:
        return "authentication is off: listening on loopback only"
    path = config.keys_file or keys_path(config.data_dir)
    try:
        n = sum(1 for k in KeyStore(path).load() if k.active)
    except ValueError as e:
        return f"authentication is on, but the keys file is unreadable: {e}"
    hint = "" if n else " (none yet: every request is refused; run `spanlake keys create`)"
    return f"authentication is on: {n} active key(s) in {path}{hint}"
