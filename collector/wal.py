"""Write-ahead log: requests become durable here before the collector acknowledges them.

One writer thread owns the open segment. Appends from any number of concurrent requests
queue up; the thread writes everything queued, calls fsync once for the lot (group
commit) and only then resolves each caller's future. A segment is closed (renamed from
`.open` to `.wal`) when it is large or old enough, and handed to the flusher, which turns
it into Parquet and deletes it.

Frame: <u32 payload length><u32 crc32(payload)> payload
Payload: <u8 kind><u64 ingested_at_ns><u16 project length> project body
A torn or corrupt frame ends a segment on recovery; everything before it is kept.

Durability: a new segment's directory entry is fsynced before its first batch is
acknowledged, each batch is fsynced before its futures resolve, and a rename is followed
by a directory fsync. A failed write or fsync (disk full, I/O error) fails that batch with
`Unavailable` and cuts the segment back to the last good frame, so a segment is always a
clean sequence of frames.
"""

from __future__ import annotations

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
from typing import BinaryIO

from spanlake.collector.errors import Unavailable
from spanlake.storage.writer import fsync_dir

log = logging.getLogger(__name__)

KIND_TRACES = 1
KIND_LOGS = 2
KIND_LABELS = 3  # body: a JSON array of label events (server/api/labels.py)
KIND_DATASETS = 4  # body: a JSON array of dataset membership events (server/api/datasets.py)
KIND_METRICS = 5  # body: a serialized ExportMetricsServiceRequest

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BQH")
OPEN_SUFFIX = ".open"
CLOSED_SUFFIX = ".wal"
FAILED_SUFFIX = ".failed"  # a closed segment the flusher could not decode; kept for an operator
SEGMENT_SUFFIXES = (OPEN_SUFFIX, CLOSED_SUFFIX, FAILED_SUFFIX)
_WRITE_CHUNK = 1024 * 1024
_DISK_RETRY_AFTER_S = 5.0


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


def _scan(f: BinaryIO, name: str) -> Iterator[tuple[int, bytes]]:
    """Yield (end offset, payload) of each intact frame, stopping at the first torn or corrupt one.

    Reads one frame at a time, so memory stays at one record whatever the segment's size.
    """
    pos = 0
    while header := f.read(_FRAME.size):
        if len(header) < _FRAME.size:
            log.warning("WAL %s: torn frame header at byte %d; the rest is ignored", name, pos)
            return
        length, crc = _FRAME.unpack(header)
        payload = f.read(length)
        # length < header also catches a zero-filled tail (length 0, crc32(b"") == 0).
        if len(payload) < length or length < _HEAD.size or zlib.crc32(payload) != crc:
            log.warning("WAL %s: torn or corrupt frame at byte %d; the rest is ignored", name, pos)
            return
        _, _, plen = _HEAD.unpack_from(payload)
        if _HEAD.size + plen > length:
            log.warning("WAL %s: malformed frame at byte %d; the rest is ignored", name, pos)
            return
        pos += _FRAME.size + length
        yield pos, payload


def read_segment(path: Path) -> Iterator[Record]:
    """Yield the intact records of a segment, stopping at the first torn or corrupt frame."""
    with open(path, "rb") as f:
        for _, payload in _scan(f, path.name):
            kind, ts, plen = _HEAD.unpack_from(payload)
            project = payload[_HEAD.size : _HEAD.size + plen].decode("utf-8", errors="replace") or None
            yield Record(kind, ts, project, payload[_HEAD.size + plen :])


def valid_length(path: Path) -> int:
    """Byte length of the intact prefix of a segment (exactly what `read_segment` yields)."""
    end = 0
    with open(path, "rb") as f:
        for end, _ in _scan(f, path.name):  # noqa: B007 - the last end is the answer
            pass
    return end


def segment_instance(path: Path) -> str:
    """The writer instance a segment name carries (`<time_ns>-<instance>.<suffix>`)."""
    return path.name.split(".")[0].rsplit("-", 1)[-1]


class WriteAheadLog:
    """Durable, group-committed append log split into segments.

    `append` returns a Future resolved once the record is fsynced, or failed with
    `Unavailable` (retryable) when the log is over its memory or disk budget or the disk
    refuses the write. Memory is bounded by `max_pending_bytes`: it counts frames queued
    and frames being written.
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
        self._pending_bytes = 0  # queued + being written
        self._cond = threading.Condition()
        self._closing = False
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened_at = 0.0
        self._last_name_ns = 0
        self._thread: threading.Thread | None = None
        self._rotation_waiters: list[threading.Event] = []
        self.backlog_bytes = 0  # bytes in closed segments not yet flushed (maintained by the flusher)
        self.fsyncs = 0
        self.write_failures = 0

    # --- lifecycle ---------------------------------------------------------------------

    def recover(self) -> list[Path]:
        """Close segments left open by a crash (cutting any torn tail); return every closed segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fsync_dir(self.directory.parent)  # the WAL directory's own entry
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
        fsync_dir(self.directory)
        closed = self.closed_segments()
        self.backlog_bytes = sum(p.stat().st_size for p in closed)
        return closed

    def segment_flushed(self, size: int) -> None:
        """Called by the flusher once a closed segment's data is in the lake."""
        with self._cond:
            self.backlog_bytes = max(0, self.backlog_bytes - size)

    @property
    def running(self) -> bool:
        """Whether the writer thread is taking appends (started, alive, not shutting down)."""
        return self._thread is not None and self._thread.is_alive() and not self._closing

    def closed_segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{CLOSED_SUFFIX}"))

    def oldest_unflushed_ns(self) -> int | None:
        """When the oldest record not yet in the lake was written (its segment's creation, ns
        since the epoch); None when everything written is flushed."""
        closed = self.closed_segments()
        if closed:
            return int(closed[0].name.split("-", 1)[0])
        path = self._path
        return int(path.name.split("-", 1)[0]) if path is not None and self._size > 0 else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spanlake-wal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is queued, close the open segment, stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            if self._thread is None:  # never started: nobody will write what is queued
                self._fail_pending(Unavailable("collector is shutting down", retry_after_s=1))
        if self._thread is not None:
            self._thread.join()

    def rotate(self, timeout: float | None = 10.0) -> bool:
        """Close the open segment now (handing it to the flusher); True once done."""
        done = threading.Event()
        with self._cond:
            self._rotation_waiters.append(done)
            self._cond.notify_all()
        return done.wait(timeout)

    # --- appending ---------------------------------------------------------------------

    def append(self, rec: Record) -> Future[None]:
        frame = encode_record(rec)
        fut: Future[None] = Future()
        with self._cond:
            if self._closing:
                fut.set_exception(Unavailable("collector is shutting down", retry_after_s=1))
                return fut
            # An empty queue always takes the frame, so a large request is never refused forever.
            if self._pending and self._pending_bytes + len(frame) > self.max_pending_bytes:
                fut.set_exception(Unavailable("write-ahead log queue is full", retry_after_s=1))
                return fut
            if self.backlog_bytes > self.max_backlog_bytes:
                fut.set_exception(
                    Unavailable("storage is behind: write-ahead log backlog over its limit", retry_after_s=5)
                )
                return fut
            self._pending.append((frame, fut))
            self._pending_bytes += len(frame)
            self._cond.notify_all()
        return fut

    # --- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                # Sleep until there is work: records, a rotation request, shutdown, or the
                # open segment reaching its age limit.
                while not (self._pending or self._closing or self._rotation_waiters):
                    if self._path is not None and self._should_rotate():
                        break
                    self._cond.wait(self._rotation_wait())
                batch = self._take_batch()
                closing = self._closing
                waiters, self._rotation_waiters = self._rotation_waiters, []
            try:
                if batch:
                    self._write(batch)
                if self._path is not None and (closing or waiters or self._should_rotate()):
                    self._rotate()
            except Exception as e:  # never let the writer thread die: callers would wait forever
                log.exception("write-ahead log writer error")
                self._resolve(batch, Unavailable(f"write-ahead log error: {e}", retry_after_s=_DISK_RETRY_AFTER_S))
            finally:
                with self._cond:
                    self._pending_bytes -= sum(len(frame) for frame, _ in batch)
            for w in waiters:
                w.set()
            if closing:
                with self._cond:
                    if not self._pending:
                        return

    def _take_batch(self) -> list[tuple[bytes, Future[None]]]:
        """Everything queued, minus requests whose caller gave up (cancelled futures); lock held."""
        batch = []
        while self._pending:
            frame, fut = self._pending.popleft()
            if fut.set_running_or_notify_cancel():
                batch.append((frame, fut))
            else:
                self._pending_bytes -= len(frame)
        return batch

    def _fail_pending(self, err: Unavailable) -> None:
        batch = self._take_batch()
        self._pending_bytes -= sum(len(frame) for frame, _ in batch)
        self._resolve(batch, err)

    @staticmethod
    def _resolve(batch: list[tuple[bytes, Future[None]]], err: Exception | None = None) -> None:
        for _, fut in batch:
            if fut.done():
                continue
            if err is None:
                fut.set_result(None)
            else:
                fut.set_exception(err)

    def _rotation_wait(self) -> float | None:
        if self._path is None:
            return None
        return max(0.001, self._opened_at + self.segment_max_age_s - time.monotonic())

    def _should_rotate(self) -> bool:
        return self._size >= self.segment_max_bytes or (time.monotonic() - self._opened_at >= self.segment_max_age_s)

    def _open(self) -> None:
        # Names sort in creation order and never repeat, even if the wall clock steps back.
        self._last_name_ns = max(time.time_ns(), self._last_name_ns + 1)
        path = self.directory / f"{self._last_name_ns:020d}-{self.instance}{OPEN_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fsync_dir(self.directory)  # the new name must survive power loss before we ack into it
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._path, self._size = fd, path, 0
        self._opened_at = time.monotonic()

    def _write(self, batch: list[tuple[bytes, Future[None]]]) -> None:
        """Append the batch, fsync once, then resolve every future (or fail them all)."""
        try:
            if self._path is None:
                self._open()
            fd = self._fd
            assert fd is not None
            start = self._size
            try:
                chunk: list[bytes] = []
                chunk_bytes = 0
                for frame, _ in batch:
                    chunk.append(frame)
                    chunk_bytes += len(frame)
                    if chunk_bytes >= _WRITE_CHUNK:
                        _write_all(fd, b"".join(chunk))
                        chunk, chunk_bytes = [], 0
                if chunk:
                    _write_all(fd, b"".join(chunk))
                os.fsync(fd)
            except OSError:
                self._cut(start)
                raise
            self.fsyncs += 1
            self._size = start + sum(len(frame) for frame, _ in batch)
        except OSError as e:
            self.write_failures += 1
            reason = "disk full" if e.errno == errno.ENOSPC else f"write-ahead log write failed: {e.strerror or e}"
            log.error("WAL write failed: %s", e)
            self._resolve(batch, Unavailable(reason, retry_after_s=_DISK_RETRY_AFTER_S))
            return
        self._resolve(batch)

    def _cut(self, good: int) -> None:
        """After a failed write: drop the partial frames so the segment ends on a frame boundary.

        If even that fails, stop using the segment: it is closed with its bad tail, which
        `read_segment` ignores (every frame before it was fsynced and is kept).
        """
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        except OSError as e:
            log.error("WAL: cannot cut %s back to %d bytes (%s); closing it", self._path, good, e)
            self._size = max(self._size, good)
            try:
                self._rotate()
            except OSError:
                log.exception("WAL: cannot close %s; the next start recovers it", self._path)
                self._fd, self._path = None, None

    def _rotate(self) -> None:
        assert self._path is not None and self._fd is not None
        fd, path, size = self._fd, self._path, self._size
        self._fd, self._path, self._size = None, None, 0
        os.close(fd)
        if size == 0:
            path.unlink(missing_ok=True)
            return
        closed = path.with_suffix(CLOSED_SUFFIX)
        os.replace(path, closed)
        fsync_dir(self.directory)
        with self._cond:
            self.backlog_bytes += size
        if self.on_segment_closed is not None:
            try:
                self.on_segment_closed(closed)
            except Exception:
                log.exception("WAL: segment-closed callback failed for %s", closed.name)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (regular files may take a short write near a full disk)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
