"""`spanlake dashboard`: serve the Streamlit dashboard over a data directory.

The dashboard runs as a child process (`python -m streamlit run`), headless and without
usage statistics, at low CPU priority, so it can never block or slow a collector running
next to it; it only reads the Parquet lake. `spanlake up` starts it the same way.
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
from dataclasses import dataclass
from pathlib import Path

import click

from spanlake.collector.config import DEFAULT_DATA_DIR, DEFAULT_HOST

DEFAULT_PORT = 8501
PORT_ENV = "SPANLAKE_DASHBOARD_PORT"
DATA_DIR_ENV = "SPANLAKE_DATA_DIR"
PARENT_ENV = "SPANLAKE_DASHBOARD_PARENT"
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


def command(data_dir: Path, host: str, port: int) -> list[str]:
    """The `streamlit run` command line (headless, no telemetry, no file watching), run
    through this module's child entry point (see child_main)."""
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
    ]  # fmt: skip


def child_main() -> None:  # pragma: no cover - runs in the child process
    """Run `streamlit <args>` at low priority; on Linux, ask to be terminated when the
    parent exits (and exit now if it already did). Done here, after exec, because a
    preexec_fn is unsafe in a parent with threads (gRPC, uvicorn)."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
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


def start(data_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log: Path | None = None) -> Dashboard:
    """Start the dashboard in a child process (port 0 picks a free one); returns at once."""
    if port == 0:
        port = free_port(host)
    data_dir = Path(data_dir).expanduser().resolve()
    env = {**os.environ, DATA_DIR_ENV: str(data_dir), PARENT_ENV: str(os.getpid())}
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            command(data_dir, host, port),
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


def start_for_up(data_dir: Path, host: str, port: int, disabled: bool, running: list[Dashboard]) -> str:
    """Start the dashboard next to `spanlake up`'s collector without waiting for it; append
    it to `running` and return its URL, or why it is off. Never raises: the collector
    runs whatever happens here. Its output goes to <data_dir>/dashboard.log."""
    if disabled:
        return "off (--no-dashboard)"
    try:
        if port and not port_free(host, port):
            return f"off: {host}:{port} is in use (pick another with --dashboard-port)"
        d = start(data_dir, host, port, log=Path(data_dir).expanduser().resolve() / "dashboard.log")
    except Exception as e:
        return f"off: could not start it ({e})"
    running.append(d)
    return d.url


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
def dashboard(data_dir: Path, host: str, port: int) -> None:
    """Serve the dashboard (traces, trace view, sessions, overview, reports) until Ctrl+C.

    It reads the lake only, so it can run next to `spanlake up` or on another machine
    sharing the data directory.
    """
    if port and not port_free(host, port):
        raise click.ClickException(f"cannot listen on {host}:{port} (in use); pick another --port")
    dash = start(data_dir, host, port)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not dash.wait_ready():
            raise click.ClickException("the dashboard did not start (see the messages above)")
        click.echo(f"spanlake dashboard: {dash.url}  (data {Path(data_dir).resolve()})\nPress Ctrl+C to stop.")
        sys.stdout.flush()
        while not stop and dash.process.poll() is None:
            time.sleep(0.2)
    finally:
        dash.stop()


if __name__ == "__main__":
    child_main()
