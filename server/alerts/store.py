"""The alerts' files under `<data-dir>/alerts/`, and the order they are written in, so that a
`kill -9` at any instant neither re-sends what was delivered nor loses what was not.

    state.json            every budget's AlertState, the number of the last committed batch and
                          that batch's events (storage.json_file: temporary file, fsync, rename)
    events.jsonl          every transition, one JSON line each, appended and fsynced
                          (rotated to events.1.jsonl past ROTATE_BYTES; one old file is kept)
    outbox/pending/<destination>/<batch>-<n>-<id>.json    a notification still to deliver
    outbox/delivered/<destination>/...                     delivered (the last KEEP_DONE kept)
    outbox/failed/<destination>/...                        given up on, with the last error

One evaluation (`commit`) is one batch, numbered 1, 2, ...:

1. its notifications are written to outbox/pending/ (each file whole or absent), named by
   batch so they sort in the order they were made;
2. state.json is replaced, with `batch` = this batch: the commit point;
3. its events are appended to events.jsonl.

A crash before 2 leaves pending files of a batch newer than state.json's: `recover()` deletes
them (the state they belong to was never written; the next evaluation decides again), and
the delivery workers never take a file of an uncommitted batch. A crash between 2 and 3 is
mended by `recover()` appending the events state.json carries. A notification is moved from
pending/ to delivered/ after its receiver answered; a crash between the two re-sends it on
restart with the same id (the Standard Webhooks `webhook-id`), so a receiver de-duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from spanlake.server.alerts.state import AlertState, Event
from spanlake.storage.durable import fsync_dir, makedirs_durable
from spanlake.storage.json_file import JsonFile, write_atomically

log = logging.getLogger(__name__)

DeliveryStatus = Literal["pending", "delivered", "failed"]
STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "failed")
ROTATE_BYTES = 32 * 1024 * 1024
KEEP_DONE = 1000  # delivered (and failed) notifications kept per destination
_STATE_VERSION = 1


@dataclass(frozen=True)
class Delivery:
    """One notification for one destination, and how its delivery went. `message` is the
    notification (server.alerts.message), rendered for the destination's kind when sent."""

    id: str  # the webhook-id: the same on every attempt
    destination: str
    key: str  # the budget's project/name
    kind: str  # the event: firing, escalated, deescalated, resolved, renotify, no_data, removed
    batch: int
    n: int
    created_at: datetime
    message: dict[str, Any]
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    done_at: datetime | None = None  # delivered or given up

    @property
    def file_name(self) -> str:
        return f"{self.batch:012d}-{self.n:05d}-{self.id}.json"

    def to_dict(self, message: bool = True) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "last_attempt_at", "next_attempt_at", "done_at"):
            d[k] = None if d[k] is None else d[k].isoformat()
        if not message:
            del d["message"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Delivery:
        times = {
            k: None if d.get(k) is None else datetime.fromisoformat(d[k])
            for k in ("created_at", "last_attempt_at", "next_attempt_at", "done_at")
        }
        return cls(**{**d, **times})


class AlertStore:
    """The files of one data directory's alerts. Reading (`states`, `history`, `deliveries`)
    is safe from any process; writing (`recover`, `commit`, the delivery marks) belongs to the
    one engine that holds `engine.lock` (server.alerts.engine)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.outbox = self.root / "outbox"
        self.events_path = self.root / "events.jsonl"
        self.old_events_path = self.root / "events.1.jsonl"
        self.readings_path = self.root / "readings.jsonl"  # every evaluation's figures (the trend)
        self.old_readings_path = self.root / "readings.1.jsonl"
        self.lock_path = self.root / "engine.lock"
        self._state = JsonFile(self.root / "state.json", _parse_state, _dump_state, _empty_state, "alert state")
        self._committed: int | None = None  # the writer's last committed batch (None: read the file)
        self._events_lock = threading.Lock()

    # ---- reading ---------------------------------------------------------------------------

    def committed_batch(self) -> int:
        """The number of the last committed batch (0: none yet)."""
        if self._committed is not None:
            return self._committed
        return int(self._state.current()["batch"])

    def states(self) -> dict[str, AlertState]:
        """Every budget's current alert state, by key (project/name)."""
        return {k: AlertState.from_dict(v) for k, v in self._state.current()["states"].items()}

    def history(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` events (of budget `key`, or of all), newest first."""
        out: list[dict[str, Any]] = []
        for path in (self.events_path, self.old_events_path):
            for line in _lines_backwards(path):
                event = _parse_line(line)
                if event is None or (key is not None and event.get("key") != key):
                    continue
                out.append(event)
                if len(out) >= limit:
                    return out
        return out

    def readings(self, key: str, since: datetime | None = None, limit: int = 5000) -> list[dict[str, Any]]:
        """Budget `key`'s evaluations (at, level, figure, warning_at, critical_at), oldest first."""
        out: list[dict[str, Any]] = []
        for path in (self.readings_path, self.old_readings_path):
            for line in _lines_backwards(path):
                r = _parse_line(line)
                if r is None or r.get("key") != key:
                    continue
                if since is not None and str(r.get("at", "")) < since.isoformat():
                    return out[::-1]
                out.append(r)
                if len(out) >= limit:
                    return out[::-1]
        return out[::-1]

    def deliveries(
        self,
        status: DeliveryStatus | None = None,
        destination: str | None = None,
        key: str | None = None,
        limit: int = 200,
    ) -> list[Delivery]:
        """Notifications and how their delivery went, newest first (pending: oldest first,
        the order they are sent in)."""
        out: list[Delivery] = []
        for st in (status,) if status else STATUSES:
            found = [d for d in self._read_folder(st, destination) if key is None or d.key == key]
            found.sort(key=lambda d: (d.batch, d.n), reverse=st != "pending")
            out += found
        return out[:limit]

    def next_pending(self, destination: str) -> Delivery | None:
        """The oldest committed notification still to send to `destination`."""
        folder = self.outbox / "pending" / destination
        names = sorted(_json_names(folder))
        limit = self.committed_batch()
        for name in names:
            if _batch_of(name) > limit:
                return None
            d = _read_delivery(folder / name)
            if d is not None:
                return d
        return None

    def pending_destinations(self) -> list[str]:
        """Destinations with a folder of pending notifications."""
        folder = self.outbox / "pending"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    # ---- writing (the engine) --------------------------------------------------------------

    def recover(self) -> None:
        """Mend what a crash left: drop the notifications of an uncommitted batch and any
        pending copy of one already delivered or failed; append the committed batch's events
        when events.jsonl lacks them. Run once, by the engine, before anything else."""
        makedirs_durable(self.root)
        doc = self._state.read()
        batch = int(doc["batch"])
        self._committed = batch
        pending = self.outbox / "pending"
        for folder in [p for p in pending.iterdir() if p.is_dir()] if pending.is_dir() else []:
            for stale in [n for n in os.listdir(folder) if n.startswith(".") and n.endswith(".tmp")]:
                (folder / stale).unlink()  # a write a crash cut short
            for name in _json_names(folder):
                done = any((self.outbox / st / folder.name / name).exists() for st in ("delivered", "failed"))
                if _batch_of(name) > batch or done:
                    log.info("alerts: dropping %s (%s)", name, "done" if done else "uncommitted")
                    (folder / name).unlink()
            fsync_dir(folder)
        if batch and self._last_logged_batch() < batch:
            self._append_events(doc.get("batch_events", []))

    def commit(self, states: dict[str, AlertState], events: list[Event], deliveries: list[Delivery]) -> int:
        """Write one evaluation: its notifications, then the states (the commit point), then
        its events. Returns the batch number (the deliveries must carry it)."""
        batch = self.committed_batch() + 1
        folders = set()
        for d in deliveries:
            if d.batch != batch:
                raise ValueError(f"delivery {d.id} is of batch {d.batch}, not {batch}")
            folder = self.outbox / "pending" / d.destination
            _write_delivery(folder / d.file_name, d, sync_dir=False)
            folders.add(folder)
        for folder in folders:
            fsync_dir(folder)
        logged = [e.to_dict() | {"batch": batch} for e in events]
        doc = {
            "version": _STATE_VERSION,
            "batch": batch,
            "states": {k: s.to_dict() for k, s in sorted(states.items())},
            "batch_events": logged,
        }
        self._state.write(doc)
        self._committed = batch
        self._append_events(logged)
        return batch

    def next_batch(self) -> int:
        """The number the next `commit` gives its batch."""
        return self.committed_batch() + 1

    # ---- writing (the delivery workers; each owns its destination's files) -----------------

    def attempted(self, d: Delivery, at: datetime, error: str, next_at: datetime) -> Delivery:
        """An attempt that failed and will be retried at `next_at`."""
        new = replace(d, attempts=d.attempts + 1, last_attempt_at=at, last_error=error, next_attempt_at=next_at)
        _write_delivery(self.outbox / "pending" / d.destination / d.file_name, new)
        return new

    def delivered(self, d: Delivery, at: datetime) -> Delivery:
        """The receiver accepted it: move it to delivered/."""
        new = replace(d, status="delivered", attempts=d.attempts + 1, last_attempt_at=at, done_at=at,
                      next_attempt_at=None)  # fmt: skip
        self._finish(new)
        return new

    def failed(self, d: Delivery, at: datetime, error: str, attempted: bool = True) -> Delivery:
        """Given up on (retries spent, or an error no retry mends): move it to failed/."""
        new = replace(d, status="failed", attempts=d.attempts + int(attempted), last_attempt_at=at if attempted
                      else d.last_attempt_at, last_error=error, done_at=at, next_attempt_at=None)  # fmt: skip
        self._finish(new)
        return new

    def _finish(self, d: Delivery) -> None:
        folder = self.outbox / d.status / d.destination
        _write_delivery(folder / d.file_name, d)
        pending = self.outbox / "pending" / d.destination
        with contextlib.suppress(FileNotFoundError):
            (pending / d.file_name).unlink()
        fsync_dir(pending)
        names = sorted(_json_names(folder))
        for name in names[: max(0, len(names) - KEEP_DONE)]:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()

    def _read_folder(self, status: DeliveryStatus, destination: str | None) -> Iterator[Delivery]:
        base = self.outbox / status
        if not base.is_dir():
            return
        limit = self.committed_batch()
        for folder in sorted(base.iterdir()):
            if not folder.is_dir() or (destination is not None and folder.name != destination):
                continue
            for name in _json_names(folder):
                if status == "pending" and _batch_of(name) > limit:
                    continue
                d = _read_delivery(folder / name)
                if d is not None:
                    yield d

    def _last_logged_batch(self) -> int:
        for path in (self.events_path, self.old_events_path):
            for line in _lines_backwards(path):
                event = _parse_line(line)
                if event is not None:
                    return int(event.get("batch", 0))
        return 0

    def append_readings(self, rows: list[dict[str, Any]]) -> None:
        """Add one evaluation's figures to readings.jsonl (for the trend: not fsynced, rotated
        like the events)."""
        if not rows:
            return
        makedirs_durable(self.root)
        with open(self.readings_path, "ab") as f:
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            size = f.tell()
        if size > ROTATE_BYTES:
            os.replace(self.readings_path, self.old_readings_path)

    def _append_events(self, logged: list[dict[str, Any]]) -> None:
        if not logged:
            return
        body = b"".join(orjson.dumps(e) + b"\n" for e in logged)
        with self._events_lock:
            makedirs_durable(self.root)
            with open(self.events_path, "ab") as f:
                if f.tell() > 0 and _last_byte(self.events_path) != b"\n":
                    f.write(b"\n")  # a line torn by a crash stays alone (and is skipped)
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            if size > ROTATE_BYTES:
                os.replace(self.events_path, self.old_events_path)
                fsync_dir(self.root)


def _parse_state(raw: bytes) -> dict[str, Any]:
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("states"), dict) or not isinstance(doc.get("batch"), int):
        raise ValueError("not an alert state file (expected batch and states)")
    return doc


def _dump_state(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def _empty_state() -> dict[str, Any]:
    return {"version": _STATE_VERSION, "batch": 0, "states": {}, "batch_events": []}


def _json_names(folder: Path) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(".")]
    except FileNotFoundError:
        return []


def _batch_of(name: str) -> int:
    return int(name.split("-", 1)[0])


def _write_delivery(path: Path, d: Delivery, sync_dir: bool = True) -> None:
    if sync_dir:
        write_atomically(path, orjson.dumps(d.to_dict()))
    else:  # the caller fsyncs the folder once for many files
        makedirs_durable(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(d.to_dict()))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _read_delivery(path: Path) -> Delivery | None:
    try:
        return Delivery.from_dict(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return None  # delivered and moved while listed
    except (ValueError, TypeError, KeyError) as e:
        log.warning("alerts: unreadable outbox file %s: %s", path, e)
        return None


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        got = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None  # a line torn by a crash
    return got if isinstance(got, dict) else None


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _lines_backwards(path: Path, block: int = 64 * 1024) -> Iterator[bytes]:
    """The non-empty lines of `path`, last first, read in blocks from the end."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the with below; a missing file is no lines)
    except FileNotFoundError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            size = min(block, pos)
            pos -= size
            f.seek(pos)
            chunk = f.read(size) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest
