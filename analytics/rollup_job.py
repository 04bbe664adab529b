"""The rollup job on a schedule, inside the server process (`spanlake up`).

Every `interval_s` seconds (env SPANLAKE_ROLLUP_INTERVAL, default 300; 0 turns it off) a
background thread brings the hourly rollups up to date (analytics.rollups.run: only the
hours that changed). A failed run is logged and retried at the next tick; a run never
blocks ingestion (it reads Parquet files with its own DuckDB connection and writes only
under `<data_dir>/rollups/`). Runs never overlap with `spanlake analytics run` (file lock).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_ENV = "SPANLAKE_ROLLUP_INTERVAL"
DEFAULT_INTERVAL_S = 300.0
FIRST_DELAY_S = 5.0  # let the server start before the first run


class RollupSchedule:
    """A daemon thread running the rollup job every `interval_s` seconds (off when <= 0)."""

    def __init__(self, data_dir: str | Path, lake: str | None = None, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.data_dir, self.lake, self.interval_s = data_dir, lake, interval_s
        self.runs = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        """Stop after the current run (waits at most `timeout` seconds for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> None:
        """One run of the job (errors are logged, never raised)."""
        from spanlake.analytics import rollups
        from spanlake.analytics.engine import Analytics
        from spanlake.storage.layout import DataDir

        try:
            dd = DataDir(self.data_dir, self.lake)
            if dd.is_remote or not dd.lake.is_dir():
                return  # rollups are kept for a local lake only
            t0 = time.monotonic()
            result = rollups.run(Analytics(dd))
            self.runs += 1
            self.last_error = None
            if any(result.rebuilt.values()):
                log.info("rollups: rebuilt %s in %.1f s", result.rebuilt, time.monotonic() - t0)
        except Exception as e:
            self.last_error = str(e)
            log.exception("rollup job failed; will try again")

    def _loop(self, first_delay_s: float) -> None:
        if self._stop.wait(first_delay_s):
            return
        while True:
            self.run_once()
            if self._stop.wait(self.interval_s):
                return
