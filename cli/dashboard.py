"""`spanlake dashboard`: serve the Streamlit dashboard over a data directory.

The dashboard runs as a child process (`python -m streamlit run`), headless and without
usage statistics, at low CPU priority and with bounded DuckDB threads, so it can never
block or slow a collector running next to it; it only reads the Parquet lake. `spanlake up`
starts it the same way.

Sign-in (`--dashboard-auth`, see dashboard/auth.py) is resolved here against the address and
passed to the child as an explicit mode: password, proxy (with its header) or off.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from spanlake.collector.config import DEFAULT_DATA_DIR, DEFAULT_HOST
from spanlake.server.query_workers import QueryLimits, limit_duckdb_threads, lower_priority
from spanlake.storage.signin import AUTH_MODES, DEFAULT_PROXY_HEADER, NO_USERS_HINT, resolve_mode
from spanlake.storage.users import UserStore, users_path

DEFAULT_PORT = 8501
PORT_ENV = "SPANLAKE_DASHBOARD_PORT"
DATA_DIR_ENV = "SPANLAKE_DATA_DIR"
PARENT_ENV = "SPANLAKE_DASHBOARD_PARENT"
AUTH_ENV = "SPANLAKE_DASHBOARD_AUTH"
HEADER_ENV = "SPANLAKE_DASHBOARD_AUTH_HEADER"
API_KEY_ENV = "SPANLAKE_API_KEY"  # the key it sends with them (dashboard/writes.py)
URL_ENV = "SPANLAKE_URL"  # where the dashboard sends labels and dataset changes (dashboard/writes.py)
NICENESS = 10  # the collector gets the CPU first
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def app_path() -> Path:
    """The Streamlit entrypoint inside the installed spanlake.dashboard package."""
    import spanlake.dashboard

    return Path(spanlake.dashboard.__file__).parent / "streamlit_app.py"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def command(data_dir: Path, host: str, port: int, auth: str = "off", header: str = DEFAULT_PROXY_HEADER) -> list[str]:
    """The `streamlit run` command line (headless, no telemetry, no file watching), run
    through this module's child entry point (see child_main); `auth` is a resolved mode."""
    return [
        sys.executable, "-m", "spanlake.cli.dashboard", "run", str(app_path()),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
        "--", "--data-dir", str(data_dir),
        "--dashboard-auth", auth, "--dashboard-auth-header", header,
    ]  # fmt: skip


def child_main() -> None:  # pragma: no cover - runs in the child process
    """Run `streamlit <args>` at low priority, its DuckDB connections at most
    SPANLAKE_QUERY_DUCKDB_THREADS threads each (as the API's query workers); on Linux, ask to
    be terminated when the parent exits (and exit now if it already did). Done here, after
    exec, because a preexec_fn is unsafe in a parent with threads (gRPC, uvicorn)."""
    lower_priority(NICENESS)
    limit_duckdb_threads(QueryLimits.from_env().duckdb_threads)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.environ.get(PARENT_ENV) and str(os.getppid()) != os.environ[PARENT_ENV]:
            sys.exit(0)
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *sys.argv[1:]]
    main()


@dataclass
class Dashboard:
    """A running dashboard child process."""

    process: subprocess.Popen[bytes]
    url: str

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Wait until Streamlit answers its health check (False if it exited or timed out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return True
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after `timeout`)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    data_dir: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log: Path | None = None,
    auth: str = "auto",
    header: str = DEFAULT_PROXY_HEADER,
    api_url: str | None = None,
    api_key: str | None = None,
) -> Dashboard:
    """Start the dashboard in a child process (port 0 picks a free one); returns at once.
    ValueError when `auth` is not allowed on `host` (see storage.signin.resolve_mode).
    `api_url`: the spanlake HTTP API the dashboard sends labels and dataset changes to, with
    `api_key` (else $SPANLAKE_API_KEY) when that API needs one."""
    auth = resolve_mode(auth, host, header)
    if port == 0:
        port = free_port(host)
    data_dir = Path(data_dir).expanduser().resolve()
    env = {**os.environ, DATA_DIR_ENV: str(data_dir), PARENT_ENV: str(os.getpid())}
    if api_url:
        env[URL_ENV] = api_url
    if api_key:
        env[API_KEY_ENV] = api_key
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            command(data_dir, host, port, auth, header),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    shown = f"[{host}]" if ":" in host else host
    return Dashboard(proc, f"http://{shown}:{port}")


def start_for_up(
    data_dir: Path,
    host: str,
    port: int,
    disabled: bool,
    running: list[Dashboard],
    auth: str = "auto",
    header: str = DEFAULT_PROXY_HEADER,
    api_url: str | None = None,
    api_key: str | None = None,
) -> str:
    """Start the dashboard next to `spanlake up`'s collector without waiting for it; append
    it to `running` and return its URL, or why it is off. Never raises: the collector
    runs whatever happens here. Its output goes to <data_dir>/dashboard.log; it sends
    labels and dataset changes to `api_url` (the collector's HTTP address)."""
    if disabled:
        return "off (--no-dashboard)"
    try:
        if port and not port_free(host, port):
            return f"off: {host}:{port} is in use (pick another with --dashboard-port)"
        log = Path(data_dir).expanduser().resolve() / "dashboard.log"
        d = start(data_dir, host, port, log=log, auth=auth, header=header, api_url=api_url, api_key=api_key)
    except Exception as e:
        return f"off: could not start it ({e})"
    running.append(d)
    return d.url


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
    """Serve the dashboard (traces, trace view, sessions, overview, reports, labelling queue,
    datasets) until Ctrl+C.

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


if __name__ == "__main__":
    child_main()
