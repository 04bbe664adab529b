"""The rollup job on a schedule, driven by the server (`spanlake up`).

Every `interval_s` seconds (env SPANLAKE_ROLLUP_INTERVAL, default 300; 0 turns it off) a
background thread starts a child process, at a lower CPU priority (nice +10), that brings
the hourly rollups up to date (analytics.rollups.materialize: only the hours that changed). In a
child, its DuckDB work never takes the receiver's interpreter or competes with it at equal
priority (in-process, a first run under ingest load tripled the receiver's CPU per span).
While the server has a backlog (`busy()`: WAL segments waiting for the flushers) a run waits,
up to `MAX_DEFER_S`, so ingest keeps both cores when it needs them. A failed run is logged and
retried at the next tick; runs read Parquet files with their own
DuckDB connection, write only under `<data_dir>/rollups/`, and never overlap with
`spanlake analytics run` (file lock). `python -m spanlake.analytics.rollups.materialize
DATA_DIR [LAKE]` is the child's entry point, so this module loads no analytics itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_ENV = "SPANLAKE_ROLLUP_INTERVAL"
DEFAULT_INTERVAL_S = 300.0
FIRST_DELAY_S = 5.0  # let the server start before the first run
BUSY_POLL_S = 2.0
MAX_DEFER_S = 600.0  # under sustained load the rollups still run this often


class RollupSchedule:
    """A daemon thread running the rollup job every `interval_s` seconds (off when <= 0)."""

    def __init__(self, data_dir: str | Path, lake: str | None = None, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.data_dir, self.lake, self.interval_s = data_dir, lake, interval_s
        self.runs = 0
        self.failures = 0
        self.last_success: float | None = None  # time.time() of the last run that succeeded
        self.started_at = time.time()
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self.busy: Callable[[], bool] = lambda: False  # the server sets it: a flush backlog
        self.deferrals = 0

    @classmethod
    def from_env(cls, data_dir: str | Path, lake: str | None = None) -> RollupSchedule:
        raw = os.environ.get(INTERVAL_ENV, "")
        try:
            interval = float(raw) if raw else DEFAULT_INTERVAL_S
        except ValueError:
            log.warning("%s=%r is not a number of seconds; using %s", INTERVAL_ENV, raw, DEFAULT_INTERVAL_S)
            interval = DEFAULT_INTERVAL_S
        return cls(data_dir, lake, interval)

    def start(self, first_delay_s: float = FIRST_DELAY_S) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, args=(first_delay_s,), name="spanlake-rollups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: end a running child (its partial work is redone next time) and the thread."""
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> None:
        """One run of the job in a child process (errors are logged, never raised)."""
        cmd = [sys.executable, "-m", "spanlake.analytics.rollups.materialize", str(self.data_dir)]
        cmd += [self.lake] if self.lake else []
        try:
            self._child = subprocess.Popen(cmd, stderr=subprocess.PIPE)
            _, err = self._child.communicate()
            code = self._child.returncode
        except OSError as e:
            self.last_error = str(e)
            log.exception("rollup job could not start; will try again")
            return
        finally:
            self._child = None
        if code == 0:
            self.runs += 1
            self.last_success = time.time()
            self.last_error = None
            if err.strip():
                log.info("%s", err.decode(errors="replace").strip())
        elif not self._stop.is_set():
            self.failures += 1
            self.last_error = err.decode(errors="replace").strip()[-2000:] or f"exit code {code}"
            log.error("rollup job failed (will try again): %s", self.last_error)

    def _loop(self, first_delay_s: float) -> None:
        if self._stop.wait(first_delay_s):
            return
        while True:
            if not self._wait_until_idle():
                return
            self.run_once()
            if self._stop.wait(self.interval_s):
                return

    def _wait_until_idle(self) -> bool:
        """Wait while the server is busy (at most MAX_DEFER_S); False when stopped meanwhile."""
        deadline = time.monotonic() + MAX_DEFER_S
        while time.monotonic() < deadline and self._is_busy():
            self.deferrals += 1
            if self._stop.wait(BUSY_POLL_S):
                return False
        return not self._stop.is_set()

    def _is_busy(self) -> bool:
        try:
            return bool(self.busy())
        except Exception:
            log.exception("rollup job: cannot tell whether the server is busy")
            return False
