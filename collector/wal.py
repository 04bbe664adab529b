"""Write-ahead log: requests become durable here before the collector acknowledges them.

One writer thread owns the open segment. Appends from any number of concurrent requests
queue up; the thread writes everything queued, calls fsync once for the lot (group
commit) and only then resolves each caller's future. A segment is closed (renamed from
`.open` to `.wal`) when it is large or old enough, and handed to the flusher, which turns
it into Parquet and deletes it.

Frame: <u32 payload length><u32 crc32(payload)> payload
Payload: <u8 kind><u64 ingested_at_ns><u16 project length> project body
A torn or corrupt frame ends a segment on recovery; everything before it is kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from spanlake.collector.errors import Unavailable

log = logging.getLogger(__name__)

KIND_TRACES = 1
KIND_LOGS = 2

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BQH")
OPEN_SUFFIX = ".open"
CLOSED_SUFFIX = ".wal"


@dataclass(frozen=True)
class Record:
    kind: int
    ingested_at_ns: int
    project: str | None
    body: bytes


def encode_record(rec: Record) -> bytes:
    project = (rec.project or "").encode("utf-8")
    payload = _HEAD.pack(rec.kind, rec.ingested_at_ns, len(project)) + project + rec.body
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_segment(path: Path) -> Iterator[Record]:
    """Yield the intact records of a segment, stopping at the first torn or corrupt frame."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc or length < _HEAD.size:
            log.warning("WAL %s: torn or corrupt frame at byte %d; the rest is ignored", path.name, pos)
            return
        kind, ts, plen = _HEAD.unpack_from(payload)
        project = payload[_HEAD.size : _HEAD.size + plen].decode("utf-8") or None
        yield Record(kind, ts, project, payload[_HEAD.size + plen :])
        pos = start + length


def valid_length(path: Path) -> int:
    """Byte length of the intact prefix of a segment."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if end > len(data) or zlib.crc32(data[pos + _FRAME.size : end]) != crc:
            break
        pos = end
    return pos


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Durable, group-committed append log split into segments.

    `append` returns a Future resolved once the record is fsynced, or failed with
    `Unavailable` (retryable) when the log is over its memory or disk budget or the disk
    refuses the write.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_max_bytes: int = 32 * 1024 * 1024,
        segment_max_age_s: float = 1.0,
        max_pending_bytes: int = 64 * 1024 * 1024,
        max_backlog_bytes: int = 1024 * 1024 * 1024,
        on_segment_closed: Callable[[Path], None] | None = None,
    ) -> None:
        self.directory = directory
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.max_pending_bytes = max_pending_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.on_segment_closed = on_segment_closed
        self.instance = uuid.uuid4().hex[:12]
        self._pending: deque[tuple[bytes, Future[None]]] = deque()
        self._pending_bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self._file: object | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened_at = 0.0
        self._thread: threading.Thread | None = None
        self._rotation_waiters: list[threading.Event] = []
        self.backlog_bytes = 0  # bytes in closed segments not yet flushed (maintained by the flusher)
        self.fsyncs = 0

    # --- lifecycle ---------------------------------------------------------------------

    def recover(self) -> list[Path]:
        """Close segments left open by a crash (cutting any torn tail); return every closed segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for p in sorted(self.directory.glob(f"*{OPEN_SUFFIX}")):
            good = valid_length(p)
            with open(p, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
            if good == 0:
                p.unlink()
            else:
                os.replace(p, p.with_suffix(CLOSED_SUFFIX))
        _fsync_dir(self.directory)
        closed = self.closed_segments()
        self.backlog_bytes = sum(p.stat().st_size for p in closed)
        return closed

    def segment_flushed(self, size: int) -> None:
        """Called by the flusher once a closed segment's data is in the lake."""
        with self._cond:
            self.backlog_bytes = max(0, self.backlog_bytes - size)

    def closed_segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{CLOSED_SUFFIX}"))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spanlake-wal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, close the open segment, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def rotate(self, timeout: float | None = 10.0) -> bool:
        """Close the open segment now (handing it to the flusher); True once done."""
        done = threading.Event()
        with self._cond:
            self._rotation_waiters.append(done)
            self._cond.notify()
        return done.wait(timeout)

    # --- appending ---------------------------------------------------------------------

    def append(self, rec: Record) -> Future[None]:
        frame = encode_record(rec)
        fut: Future[None] = Future()
        with self._cond:
            if self._closing:
                fut.set_exception(Unavailable("collector is shutting down"))
                return fut
            if self._pending_bytes + len(frame) > self.max_pending_bytes:
                fut.set_exception(Unavailable("write-ahead log queue is full", retry_after_s=1))
                return fut
            if self.backlog_bytes > self.max_backlog_bytes:
                fut.set_exception(
                    Unavailable("storage is behind: write-ahead log backlog over its limit", retry_after_s=5)
                )
                return fut
            self._pending.append((frame, fut))
            self._pending_bytes += len(frame)
            self._cond.notify()
        return fut

    # --- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing and not self._rotation_waiters:
                    timeout = self._rotation_wait()
                    if not self._cond.wait(timeout=timeout) and timeout is not None:
                        break
                batch = list(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                closing = self._closing
                waiters, self._rotation_waiters = self._rotation_waiters, []
            if batch:
                self._write(batch)
            if self._path is not None and (closing or waiters or self._should_rotate()):
                self._rotate()
            for w in waiters:
                w.set()
            if closing and not self._pending:
                return

    def _rotation_wait(self) -> float | None:
        if self._path is None:
            return None
        return max(0.0, self._opened_at + self.segment_max_age_s - time.monotonic())

    def _should_rotate(self) -> bool:
        return self._size >= self.segment_max_bytes or (time.monotonic() - self._opened_at >= self.segment_max_age_s)

    def _open(self) -> None:
        name = f"{time.time_ns():020d}-{self.instance}"
        self._path = self.directory / f"{name}{OPEN_SUFFIX}"
        self._file = open(self._path, "ab")  # noqa: SIM115 - owned by this thread until rotation
        self._size = 0
        self._opened_at = time.monotonic()

    def _write(self, batch: list[tuple[bytes, Future[None]]]) -> None:
        try:
            if self._path is None:
                self._open()
            f = self._file
            assert f is not None
            start = self._size
            try:
                for frame, _ in batch:
                    f.write(frame)  # type: ignore[attr-defined]
                f.flush()  # type: ignore[attr-defined]
                os.fsync(f.fileno())  # type: ignore[attr-defined]
            except OSError:
                # Cut what was partly written so the segment stays a clean sequence of frames.
                with contextlib.suppress(OSError):
                    f.truncate(start)  # type: ignore[attr-defined]
                raise
            self.fsyncs += 1
            self._size += sum(len(frame) for frame, _ in batch)
        except OSError as e:
            reason = "disk full" if e.errno == errno.ENOSPC else f"write-ahead log write failed: {e.strerror}"
            log.error("WAL write failed: %s", e)
            for _, fut in batch:
                fut.set_exception(Unavailable(reason, retry_after_s=5))
            return
        for _, fut in batch:
            fut.set_result(None)

    def _rotate(self) -> None:
        assert self._path is not None and self._file is not None
        self._file.close()  # type: ignore[attr-defined]
        path, self._path, self._file = self._path, None, None
        if self._size == 0:
            path.unlink(missing_ok=True)
            return
        closed = path.with_suffix(CLOSED_SUFFIX)
        os.replace(path, closed)
        _fsync_dir(self.directory)
        with self._cond:
            self.backlog_bytes += self._size
        if self.on_segment_closed is not None:
            self.on_segment_closed(closed)
