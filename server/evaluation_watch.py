"""The evaluation watch: online rules (evaluators.online) and the app's own evaluation events
(evaluators.external) as a background job of the roles that serve the API (all, api).

Every SPANLAKE_EVAL_INTERVAL seconds (default 15; 0: off) one cycle (at most
SPANLAKE_EVAL_BATCH complete traces, default 500, and 5,000 spans or log records carrying
evaluation events; while more wait, the next cycle follows at once) runs in a child process
of its own at low priority (a one-worker server.query_workers.QueryPool, nice 19: ingest and
the API's reads come first, and a slow judge never holds a query worker). It runs with or
without rules: the app's events need none. The child finds the complete traces after the
cursor and the events after the events cursor, evaluates and returns what to write; this
process then

1. appends the label events and the dataset events to its write-ahead log (durable when the
   append returns, like POST /api/v1/labels),
2. commits the webhook notifications to the outbox `<data-dir>/evaluators/outbox/`
   (delivered by server.alerts' workers: signed Standard Webhooks, retries with backoff),
3. saves the retry list (retry.json), then both cursors (cursor.json), then status.json.

A crash anywhere before 3 redoes the cycle from the old cursors: labels and dataset events have
deterministic ids (the lake keeps one of each), a webhook is re-sent with the same id. The
horizon never passes the oldest WAL segment still waiting for the flusher, so a trace is never
judged complete before its last spans are in the lake. A failed cycle (the child killed, the
WAL full) is logged and the next one runs on time; nothing stops the loop but `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from spanlake.analytics.budgets.definition import Destination
from spanlake.collector.wal import CLOSED_SUFFIX, KIND_DATASETS, KIND_LABELS, OPEN_SUFFIX, Record
from spanlake.evaluators.complete_traces import Cursor
from spanlake.evaluators.external import DEFAULT_BATCH as DEFAULT_EVENTS_BATCH
from spanlake.evaluators.external import EventCursor
from spanlake.evaluators.online import DEFAULT_BATCH, Outcome, Request, run_cycle
from spanlake.server.alerts.deliver import Deliverer
from spanlake.server.alerts.store import AlertStore, Delivery
from spanlake.server.env import seconds_from_env
from spanlake.server.query_workers import Local, QueryLimits, QueryPool
from spanlake.storage.json_file import JsonFile, file_lock
from spanlake.storage.layout import DataDir

log = logging.getLogger(__name__)

INTERVAL_ENV = "SPANLAKE_EVAL_INTERVAL"
BATCH_ENV = "SPANLAKE_EVAL_BATCH"  # complete traces per cycle (default evaluators.online.DEFAULT_BATCH)
# spans and log records with the app's evaluation events per cycle (default evaluators.external.DEFAULT_BATCH)
EVENTS_BATCH_ENV = "SPANLAKE_EVAL_EVENTS_BATCH"
DEFAULT_INTERVAL_S = 15.0
NICENESS = 19  # the lowest, like the query workers: ingest, the flusher and the API come first
MAX_RETRY_ENTRIES = 100_000  # beyond this the oldest entries are given up (recorded as failed)
WAL_SLACK = timedelta(seconds=2)  # a record's ingested_at may precede its segment's name by this much
Append = Callable[[Record], Awaitable[None]]


class EvaluationBusy(RuntimeError):
    """Another process (an API node of the same data directory) runs the online evaluators."""


CATCH_UP_PAUSE_S = 2.0  # between cycles while complete traces wait (the child runs at low priority)


def interval_from_env() -> float:
    """SPANLAKE_EVAL_INTERVAL in seconds (0: off); a bad value is logged and the default used."""
    return seconds_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)


def batch_from_env(name: str = BATCH_ENV, default: int = DEFAULT_BATCH) -> int:
    """SPANLAKE_EVAL_BATCH (complete traces handled per cycle), or another whole number above 0
    from the environment; a bad value is logged and the default used."""
    raw = os.environ.get(name, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    if raw:
        log.warning("%s=%r is not a whole number above 0; using %s", name, raw, default)
    return default


def _loads(raw: bytes) -> dict[str, Any]:
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def state_file(root: Path, name: str) -> JsonFile[dict[str, Any]]:
    """One of the watch's files under <data-dir>/evaluators/ (cursor, retry, status)."""
    return JsonFile(root / "evaluators" / f"{name}.json", _loads, _dumps, dict, f"evaluators/{name}.json", 0o644)


def wal_horizon(wal_dir: Path | None) -> datetime | None:
    """When the oldest WAL segment still to flush was opened, less WAL_SLACK (None: none waits)."""
    if wal_dir is None:
        return None
    oldest = None
    with contextlib.suppress(OSError):
        for p in wal_dir.iterdir():
            if p.name.endswith((OPEN_SUFFIX, CLOSED_SUFFIX)):
                head = p.name.split("-", 1)[0]
                if head.isdigit():
                    oldest = int(head) if oldest is None else min(oldest, int(head))
    return datetime.fromtimestamp(oldest / 1e9, UTC) - WAL_SLACK if oldest is not None else None


class EvaluationWatch:
    """`start()` (in the running event loop) and `await stop()`; `run_once()` for one cycle.

    `evaluators`: an object with `status() -> (EvaluatorSet, file error | None)`
    (evaluators.evaluators_file.EvaluatorsFile); `append`: the WAL's durable append;
    `destinations()`: the budgets file's destinations by name (for rules' webhooks)."""

    def __init__(
        self,
        data_dir: DataDir,
        evaluators: Any,
        append: Append,
        interval_s: float,
        *,
        traces_endpoint: str | None = None,
        wal_dir: Path | None = None,
        destinations: Callable[[], Mapping[str, Destination]] | None = None,
        batch: int | None = None,
    ) -> None:
        self.data_dir, self.evaluators, self.append = data_dir, evaluators, append
        self.interval_s, self.traces_endpoint, self.wal_dir = interval_s, traces_endpoint, wal_dir
        self.batch = batch or batch_from_env()
        self.events_batch = batch_from_env(EVENTS_BATCH_ENV, DEFAULT_EVENTS_BATCH)
        root = data_dir.root
        self.cursor_file, self.retry_file, self.status_file = (
            state_file(root, n) for n in ("cursor", "retry", "status")
        )
        self.outbox = AlertStore(root / "evaluators" / "outbox")
        self.deliverer = Deliverer(self.outbox, destinations or dict)
        self.pool = QueryPool(data_dir, QueryLimits(workers=1, max_queued=0, niceness=NICENESS))
        self.lock_path = root / "evaluators" / "watch.lock"
        self._held = contextlib.ExitStack()
        self.cycles = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (no-op when the interval is 0 or it runs already); the first cycle runs at once."""
        if self.interval_s <= 0 or self.running:
            return
        if not self._held.enter_context(file_lock(self.lock_path, blocking=False)):
            raise EvaluationBusy(f"another process runs the online evaluators of {self.data_dir.root}")
        self.outbox.recover()
        self.deliverer.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="spanlake-evaluation-watch")

    async def stop(self) -> None:
        """Stop the loop and the child; a cycle in progress is abandoned (redone from the saved cursor)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.pool.stop)
        await asyncio.to_thread(self.deliverer.stop)
        self._held.close()

    def status(self) -> dict[str, Any]:
        """status.json as saved by the last cycle (empty before the first)."""
        try:
            return self.status_file.read()
        except ValueError:
            return {}

    async def run_once(self, now: datetime | None = None) -> Outcome:
        """One cycle: the rules (when some are enabled), the retries due, and the app's own
        evaluation events (always: they need no rule)."""
        now = now or datetime.now(UTC)
        started = time.monotonic()
        found, file_error = await asyncio.to_thread(self.evaluators.status)
        cursor_doc, retry_doc = await asyncio.to_thread(self._read_state)
        cursor = Cursor.from_dict(cursor_doc.get("cursor"))
        events_cursor = EventCursor.from_dict(cursor_doc.get("events_cursor"))
        retries: dict[str, dict[str, Any]] = retry_doc.get("entries", {})
        due = [e for e in retries.values() if datetime.fromisoformat(e["next_at"]) <= now]
        horizon = now - found.settings.quiet_period
        flushed = wal_horizon(self.wal_dir)
        if flushed is not None:
            horizon = min(horizon, flushed)
        req = Request(found=found, cursor=cursor, horizon=horizon, now=now, retries=due, batch=self.batch,
                      data_dir=str(self.data_dir.root), traces_endpoint=self.traces_endpoint,
                      events_cursor=events_cursor, events_batch=self.events_batch)  # fmt: skip
        out: Outcome = await self.pool.run(run_cycle, Local.ANALYTICS, req)
        await self._write(out, now)
        for lid in out.retry_drop:
            retries.pop(lid, None)
        retries |= out.retry_put
        _bound(retries)
        cursor_doc = {"cursor": out.cursor.to_dict(), "handled": int(cursor_doc.get("handled", 0)) + out.handled,
                      "skipped": int(cursor_doc.get("skipped", 0)) + out.skipped,
                      "events_cursor": out.events_cursor.to_dict(),
                      "events_read": int(cursor_doc.get("events_read", 0)) + out.events_read}  # fmt: skip
        await asyncio.to_thread(self._save, cursor_doc, retries)
        await asyncio.to_thread(self._save_status, now, started, out, cursor_doc, retries, file_error)
        self.cycles += 1
        return out

    async def _write(self, out: Outcome, now: datetime) -> None:
        """Labels and dataset events into the WAL (durable when this returns), webhooks to the outbox."""
        ns = time.time_ns()
        if out.labels:
            await self.append(Record(KIND_LABELS, ns, None, orjson.dumps(out.labels)))
        if out.dataset_events:
            await self.append(Record(KIND_DATASETS, ns, None, orjson.dumps(out.dataset_events)))
        if out.webhooks:
            await asyncio.to_thread(self._commit_webhooks, out.webhooks, now)

    def _commit_webhooks(self, hooks: list[dict[str, Any]], now: datetime) -> None:
        batch = self.outbox.next_batch()
        deliveries = [
            Delivery(id=h["id"], destination=h["destination"], key=f"{h['project']}/{h['rule']}", kind="evaluation",
                     batch=batch, n=i, created_at=now, message=h["message"])
            for i, h in enumerate(hooks)
        ]  # fmt: skip
        self.outbox.commit({}, [], deliveries)
        self.deliverer.wake({d.destination for d in deliveries})

    def _read_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        docs = []
        for f in (self.cursor_file, self.retry_file):
            try:
                docs.append(f.read())
            except ValueError as e:  # a damaged file: start over from it rather than stop (logged)
                log.error("evaluation watch: %s; starting it afresh", e)
                docs.append({})
        return docs[0], docs[1]

    def _save(self, cursor_doc: dict[str, Any], retries: dict[str, dict[str, Any]]) -> None:
        self.retry_file.write({"entries": retries})  # first: a crash before the cursor redoes the cycle
        self.cursor_file.write(cursor_doc)

    def _save_status(
        self,
        now: datetime,
        started: float,
        out: Outcome,
        cursor_doc: dict[str, Any],
        retries: dict[str, dict[str, Any]],
        file_error: str | None,
    ) -> None:
        old = self.status()
        evaluators: dict[str, Any] = old.get("evaluators", {})
        for key, delta in out.stats.items():
            merge_stats(evaluators, key, delta, now)
        cursor = Cursor.from_dict(cursor_doc.get("cursor"))
        doc = {
            "at": now.isoformat(),
            "duration_s": round(time.monotonic() - started, 3),
            "interval_s": self.interval_s,
            "cursor": cursor.to_dict() | {"at": cursor.at.isoformat() if cursor.at else None},
            "backlog": out.backlog,
            "handled": int(cursor_doc.get("handled", 0)),
            "skipped": int(cursor_doc.get("skipped", 0)),
            "retry": len(retries),
            "file_error": file_error,
            "cycle_error": None,
            "rules": out.rule_errors,
            "evaluators": evaluators,
            "events": {
                "cursor": EventCursor.from_dict(cursor_doc.get("events_cursor")).to_dict(),
                "read": int(cursor_doc.get("events_read", 0)),
                "more": out.events_more,
            },
        }
        self.status_file.write(doc)

    def _note_failure(self, error: str) -> None:
        doc = self.status()
        doc |= {"cycle_error": error[-2000:], "cycle_error_at": datetime.now(UTC).isoformat()}
        self.status_file.write(doc)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                out = await self.run_once()
                self.last_error = None
                if out.backlog > 0 or out.events_more:  # more complete traces or events wait: catch up now
                    await asyncio.sleep(CATCH_UP_PAUSE_S)
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next cycle may work (child restarted, WAL drained): keep going
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("evaluation cycle failed; trying again in %.0fs", self.interval_s)
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._note_failure, self.last_error)
            await asyncio.sleep(max(0.0, started + self.interval_s - loop.time()))


def merge_stats(into: dict[str, Any], key: str, delta: Mapping[str, Any], now: datetime) -> None:
    """Add one cycle's counts of an evaluator version to the running totals (key `project/name@vN`;
    the app's own evaluators, version None, keep their key `project/name@otel`)."""
    k = key if delta["version"] is None else f"{key}@v{delta['version']}"
    cur = into.setdefault(k, {"version": delta["version"]})
    for name in ("evaluated", "passed", "failed", "not_applicable", "errors", "malformed", "transient", "timed"):
        cur[name] = int(cur.get(name, 0)) + int(delta.get(name, 0))
    for name in ("cost_usd", "latency_ms"):
        cur[name] = float(cur.get(name, 0.0)) + float(delta.get(name, 0.0))
    if delta.get("last_error"):
        cur |= {"last_error": delta["last_error"], "last_error_trace": delta.get("last_error_trace"),
                "last_error_at": now.isoformat()}  # fmt: skip
        if "last_error_span" in delta:
            cur["last_error_span"] = delta["last_error_span"]
    cur["updated_at"] = now.isoformat()


def _bound(retries: dict[str, dict[str, Any]]) -> None:
    """Keep at most MAX_RETRY_ENTRIES (the oldest go first)."""
    extra = len(retries) - MAX_RETRY_ENTRIES
    if extra > 0:
        for lid, _ in sorted(retries.items(), key=lambda kv: kv[1].get("first_at", ""))[:extra]:
            log.warning("evaluation retry list full: giving up %s", lid)
            retries.pop(lid)
