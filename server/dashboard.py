"""The dashboard child process: started, watched and stopped by the server (`spanlake up`)
and by `spanlake dashboard`.

The dashboard runs as a child process (`python -m streamlit run`), headless and without
usage statistics, at low CPU priority, so it can never block or slow a collector running
next to it; it only reads the Parquet lake and sends changes to the API. Sign-in
(`--dashboard-auth`, see dashboard/auth.py) is resolved against the address and passed to
the child as an explicit mode: password, proxy (with its header) or off.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from spanlake.collector.config import DEFAULT_HOST
from spanlake.server.query_workers import QueryLimits, limit_duckdb_threads, lower_priority
from spanlake.storage.signin import DEFAULT_PROXY_HEADER, resolve_mode

log = logging.getLogger(__name__)

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
WATCH_POLL_S = 1.0


def app_path() -> Path:
    """The Streamlit entrypoint inside the installed spanlake.dashboard package (found, not
    imported: the dashboard is a layer above the server, and runs in the child only)."""
    spec = importlib.util.find_spec("spanlake.dashboard")
    assert spec is not None and spec.submodule_search_locations, "spanlake.dashboard is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "streamlit_app.py"


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
        sys.executable, "-m", "spanlake.server.dashboard", "run", str(app_path()),
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
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.environ.get(PARENT_ENV) and str(os.getppid()) != os.environ[PARENT_ENV]:
            sys.exit(0)
    from streamlit.web.cli import main  # optional dependency: Streamlit, loaded by the dashboard child only

    sys.argv = ["streamlit", *sys.argv[1:]]
    main()


@dataclass
class Dashboard:
    """A running dashboard child process."""

    process: subprocess.Popen[bytes]
    url: str
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def watch(self) -> None:
        """Reap the child as soon as it exits (no zombie) and log that the dashboard is gone."""
        self._watcher = threading.Thread(target=self._watch, name="spanlake-dashboard-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while self.process.poll() is None:
            if self._stopping.wait(WATCH_POLL_S):
                return
        log.warning(
            "the dashboard exited with code %s; see dashboard.log in the data directory", self.process.returncode
        )

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
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
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
    """Start the dashboard next to `spanlake up`'s server without waiting for it; append
    it to `running` and return its URL, or why it is off. Never raises: the server
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


if __name__ == "__main__":
    child_main()
