"""What the LLM judges spent, per evaluator version and UTC day, kept on disk so that a
restart (of the server, or another `spanlake eval run`) does not reset a daily spend cap.

    <data-dir>/evaluators/spend.json   {"<project>/<name>@v<version>": {"2025-06-01": 0.0123, ...}, ...}

Every process that judges adds to the same file under its lock (storage.json_file), at most
once every FLUSH_S seconds (and when the judge client closes): a locked, fsynced write per call
cost tens of milliseconds each and serialized the judges. The cap is checked before a call, so
calls already in flight when it is reached still finish: the day's spend can pass the cap by
at most `concurrency` calls — plus, after a crash, what was spent in the last FLUSH_S seconds
and not yet written. Days older than KEEP_DAYS are dropped when the file is written.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from spanlake.storage.json_file import JsonFile
from spanlake.storage.layout import DataDir

FILE = "evaluators/spend.json"
KEEP_DAYS = 62
FLUSH_S = 1.0  # spend is written to the file at most this often

Ledger = dict[str, dict[str, float]]


def spend_key(project: str, name: str, version: int) -> str:
    """The ledger's key of an evaluator version."""
    return f"{project}/{name}@v{version}"


def _parse(raw: bytes) -> Ledger:
    doc: Any = orjson.loads(raw)
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise ValueError("not a spend ledger (an object of {day: usd} objects)")
    return {k: {d: float(usd) for d, usd in v.items()} for k, v in doc.items()}


def _dump(doc: Ledger) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def today() -> date:
    return datetime.now(UTC).date()


class SpendLedger:
    """Daily spend per evaluator version; `data_dir` None keeps it in memory (one process)."""

    def __init__(self, data_dir: DataDir | str | Path | None) -> None:
        self._memory: Ledger = {}  # without a file: everything; with one: what is not written yet
        self._file: JsonFile[Ledger] | None = None
        self._lock = threading.Lock()
        self._written_at = 0.0
        if data_dir is not None:
            root = data_dir.root if isinstance(data_dir, DataDir) else Path(data_dir)
            self._file = JsonFile(root / FILE, _parse, _dump, dict, "evaluator spend ledger", mode=0o644)

    def spent(self, key: str, day: date | None = None) -> float:
        """USD spent by `key` on `day` (UTC; default today), written or not."""
        d = (day or today()).isoformat()
        with self._lock:
            pending = self._memory.get(key, {}).get(d, 0.0)
        on_disk = self._file.current().get(key, {}).get(d, 0.0) if self._file is not None else 0.0
        return on_disk + pending

    def add(self, key: str, usd: float, day: date | None = None) -> None:
        """Add a call's cost to `key`'s spend on `day` (UTC; default today)."""
        if not math.isfinite(usd) or usd <= 0:
            return
        with self._lock:
            self._add(self._memory, key, usd, day or today())
        if self._file is not None and time.monotonic() - self._written_at >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write what was spent since the last write into the file."""
        if self._file is None:
            return
        with self._lock:
            pending, self._memory = self._memory, {}
            self._written_at = time.monotonic()
        if not pending:
            return
        try:
            with self._file.change() as doc:
                for key, days in pending.items():
                    for d, usd in days.items():
                        self._add(doc, key, usd, date.fromisoformat(d))
        except BaseException:
            with self._lock:  # not written: keep it for the next flush
                for key, days in pending.items():
                    for d, usd in days.items():
                        self._add(self._memory, key, usd, date.fromisoformat(d))
            raise

    @staticmethod
    def _add(doc: Ledger, key: str, usd: float, day: date) -> None:
        days = doc.setdefault(key, {})
        days[day.isoformat()] = days.get(day.isoformat(), 0.0) + usd
        oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
        for d in [d for d in days if d < oldest]:
            del days[d]
