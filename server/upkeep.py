"""Lake upkeep, a background job of the compactor role: compaction every `compact_interval_s`,
retention every `retention_interval_s`, both under the lake's compaction lock so they never
overlap (with each other, `spanlake compact` or another node's run)."""

from __future__ import annotations

import logging
import threading
import time

from spanlake.collector.config import CollectorConfig
from spanlake.storage.compact import compact
from spanlake.storage.layout import DataDir
from spanlake.storage.retention import apply_retention

log = logging.getLogger(__name__)


class LakeUpkeep:
    """A daemon thread compacting the lake and applying retention on the config's schedule."""

    def __init__(self, data_dir: DataDir, config: CollectorConfig) -> None:
        self.data_dir, self.config = data_dir, config
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.compactions = {"ok": 0, "failed": 0}  # runs, for /metrics
        self.retentions = {"ok": 0, "failed": 0}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="spanlake-compactor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end and wait for a run in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        cfg = self.config
        next_retention = time.monotonic()
        while not self._stop.wait(cfg.compact_interval_s):
            try:
                result = compact(self.data_dir, min_age_s=cfg.compact_min_age_s)
                if result.partitions:
                    log.info("compacted %d files into %d", result.files_in, result.files_out)
                self.compactions["ok"] += 1
            except Exception:
                self.compactions["failed"] += 1
                log.exception("compaction failed; will try again")
            if not cfg.retention or time.monotonic() < next_retention:
                continue
            try:
                kept = apply_retention(self.data_dir, cfg.retention)
                if not kept.skipped_busy:
                    next_retention = time.monotonic() + cfg.retention_interval_s
                if kept.partitions:
                    log.info("retention deleted %d partition(s), %d files", kept.partitions, kept.files)
                self.retentions["ok"] += 1
            except Exception:
                self.retentions["failed"] += 1
                log.exception("retention failed; will try again")
