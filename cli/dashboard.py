"""`spanlake dashboard`: serve the Streamlit dashboard over a data directory.

The child process is started and stopped by server/dashboard.py (as `spanlake up` does);
this module holds the command, its sign-in options and the sign-in banner.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from spanlake.collector.config import DEFAULT_DATA_DIR, DEFAULT_HOST
from spanlake.server.dashboard import (
    AUTH_ENV,
    DATA_DIR_ENV,
    DEFAULT_PORT,
    HEADER_ENV,
    PORT_ENV,
    URL_ENV,
    port_free,
    start,
)
from spanlake.storage.signin import AUTH_MODES, DEFAULT_PROXY_HEADER, NO_USERS_HINT, resolve_mode
from spanlake.storage.users import UserStore, users_path


def signin_banner(data_dir: Path, host: str, auth: str, header: str = DEFAULT_PROXY_HEADER) -> str:
    """What `spanlake up` and `spanlake dashboard` say about dashboard sign-in at start."""
    try:
        mode = resolve_mode(auth, host, header)
    except ValueError as e:
        return f"dashboard sign-in: {e}"
    if mode == "off":
        return "dashboard sign-in is off: listening on loopback only"
    path = users_path(data_dir)
    try:
        users = UserStore(path).load()
    except ValueError as e:
        return f"dashboard sign-in is on, but the users file is unreadable: {e}"
    if mode == "proxy":
        text = (
            f"dashboard sign-in: trusting the {header} header of a reverse proxy ({len(users)} user(s) in {path});\n"
            "  the dashboard port must be reachable through that proxy only"
        )
    else:
        text = f"dashboard sign-in: password ({len(users)} user(s) in {path})"
    if not users:
        text += f"\n  no users yet: create the first admin with `{NO_USERS_HINT}`"
    return text


def dashboard_auth_options(fn: Callable[..., None]) -> Callable[..., None]:
    """--dashboard-auth and --dashboard-auth-header, shared by `spanlake up` and `spanlake dashboard`."""
    fn = click.option(
        "--dashboard-auth",
        type=click.Choice(AUTH_MODES),
        default="auto",
        show_default=True,
        envvar=AUTH_ENV,
        show_envvar=True,
        help="Dashboard sign-in. auto: off on a loopback address, password anywhere else; password: users "
        "of `spanlake users`; proxy: trust a reverse proxy's user header; off is refused off loopback.",
    )(fn)
    return click.option(
        "--dashboard-auth-header",
        default=DEFAULT_PROXY_HEADER,
        show_default=True,
        envvar=HEADER_ENV,
        show_envvar=True,
        help="With --dashboard-auth proxy: the request header naming the signed-in user.",
    )(fn)


@click.command("dashboard")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar=DATA_DIR_ENV,
    show_envvar=True,
    help="Folder holding the Parquet lake.",
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    envvar=PORT_ENV,
    show_envvar=True,
    help="Port (0 picks a free one).",
)
@dashboard_auth_options
@click.option(
    "--url",
    default=None,
    envvar=URL_ENV,
    show_envvar=True,
    help="The running spanlake's HTTP address: labels and dataset changes go through its API "
    "[default: http://127.0.0.1:4318].",
)
def dashboard(
    data_dir: Path, host: str, port: int, dashboard_auth: str, dashboard_auth_header: str, url: str | None
) -> None:
    """Serve the dashboard (traces, trace view, sessions, overview, reports, budgets, labelling
    queue, datasets) until Ctrl+C.

    It reads the lake, so it can run next to `spanlake up` or on another machine sharing the
    data directory; labels and dataset changes go through the running spanlake's API (--url).
    Off loopback it asks for a user name and password (`spanlake users add`), or trusts an
    authenticating reverse proxy (--dashboard-auth proxy).
    """
    try:
        resolve_mode(dashboard_auth, host, dashboard_auth_header)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--dashboard-auth") from None
    if port and not port_free(host, port):
        raise click.ClickException(f"cannot listen on {host}:{port} (in use); pick another --port")
    dash = start(data_dir, host, port, auth=dashboard_auth, header=dashboard_auth_header, api_url=url)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not dash.wait_ready():
            raise click.ClickException("the dashboard did not start (see the messages above)")
        click.echo(
            f"spanlake dashboard: {dash.url}  (data {Path(data_dir).resolve()})\n"
            f"  {signin_banner(data_dir, host, dashboard_auth, dashboard_auth_header)}\nPress Ctrl+C to stop."
        )
        sys.stdout.flush()
        while not stop and dash.process.poll() is None:
            time.sleep(0.2)
    finally:
        dash.stop()
