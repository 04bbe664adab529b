"""Write-ahead log: framing, recovery of torn and corrupt segments, group commit, rotation and
backpressure (a full disk: test_wal_disk_full.py)."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import spanlake.collector.wal as walmod
from spanlake.collector.errors import Unavailable
from spanlake.collector.wal import (
    CLOSED_SUFFIX,
    KIND_LOGS,
    KIND_TRACES,
    OPEN_SUFFIX,
    Record,
    WriteAheadLog,
    encode_record,
    read_segment,
    valid_length,
)
from tests.collector.wal_helpers import WAIT_S, Wal, assert_retryable_refusal, open_files, poll, rec


@pytest.fixture
def make_wal(tmp_path: Path) -> Iterator[Callable[..., Wal]]:
    made: list[Wal] = []

    def make(directory: Path | None = None, start: bool = True, **kw: Any) -> Wal:
        w = Wal(directory or tmp_path / "wal", **kw)
        if start:
            w.wal.start()
        made.append(w)
        return w

    yield make
    for w in made:
        w.wal.close()


# --- framing and recovery ----------------------------------------------------------------


def test_records_round_trip(make_wal: Callable[..., Wal]) -> None:
    records = [
        rec(0),
        rec(1, kind=KIND_LOGS, project=None),
        rec(2, size=1_000_000, project="ünïcode-project"),
        Record(KIND_TRACES, 0, "p", b""),
        rec(4, size=3),
    ]
    w = make_wal(segment_max_age_s=60)
    futures = [w.wal.append(r) for r in records]
    for f in futures:
        f.result(timeout=WAIT_S)
    assert w.wal.rotate()
    assert len(w.closed) == 1 and w.closed[0].suffix == CLOSED_SUFFIX
    assert w.records() == records
    assert valid_length(w.closed[0]) == w.closed[0].stat().st_size == sum(len(encode_record(r)) for r in records)


def write_open_segment(directory: Path, records: list[Record], name: str = "00000000000000000001-abc") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}{OPEN_SUFFIX}"
    path.write_bytes(b"".join(encode_record(r) for r in records))
    return path


def frame_bounds(records: list[Record]) -> list[tuple[int, int]]:
    bounds, pos = [], 0
    for r in records:
        n = len(encode_record(r))
        bounds.append((pos, pos + n))
        pos += n
    return bounds


@pytest.mark.parametrize("cut", ["in_header", "in_payload", "one_byte_short"])
def test_recover_cuts_a_torn_tail_and_keeps_everything_before(tmp_path: Path, cut: str) -> None:
    records = [rec(i, size=200) for i in range(5)]
    seg = write_open_segment(tmp_path / "wal", records)
    start, end = frame_bounds(records)[-1]
    at = {"in_header": start + 5, "in_payload": start + 60, "one_byte_short": end - 1}[cut]
    with open(seg, "r+b") as f:
        f.truncate(at)

    wal = WriteAheadLog(tmp_path / "wal")
    (closed,) = wal.recover()
    assert closed.name == seg.with_suffix(CLOSED_SUFFIX).name
    assert not seg.exists()
    assert list(read_segment(closed)) == records[:4]
    assert closed.stat().st_size == start  # the torn bytes are gone from disk, not just skipped
    assert wal.backlog_bytes == start


@pytest.mark.parametrize("where", ["payload", "crc", "length"])
def test_recover_cuts_at_a_corrupt_frame(tmp_path: Path, where: str) -> None:
    records = [rec(i, size=100) for i in range(5)]
    seg = write_open_segment(tmp_path / "wal", records)
    start, _ = frame_bounds(records)[2]
    offset = {"payload": start + 40, "crc": start + 5, "length": start + 1}[where]
    data = bytearray(seg.read_bytes())
    data[offset] ^= 0x5A
    seg.write_bytes(bytes(data))

    (closed,) = WriteAheadLog(tmp_path / "wal").recover()
    assert list(read_segment(closed)) == records[:2]
    assert closed.stat().st_size == start


def test_recover_drops_a_zero_filled_tail(tmp_path: Path) -> None:
    """After power loss a file can be longer than what was written, the rest zeros."""
    records = [rec(i) for i in range(3)]
    seg = write_open_segment(tmp_path / "wal", records)
    with open(seg, "ab") as f:
        f.write(b"\0" * 4096)
    (closed,) = WriteAheadLog(tmp_path / "wal").recover()
    assert list(read_segment(closed)) == records
    assert closed.stat().st_size == sum(len(encode_record(r)) for r in records)


def test_recover_removes_an_empty_open_segment_and_keeps_closed_ones(tmp_path: Path) -> None:
    d = tmp_path / "wal"
    empty = write_open_segment(d, [], name="00000000000000000002-abc")
    closed = d / "00000000000000000001-abc.wal"
    closed.write_bytes(encode_record(rec(1)))
    wal = WriteAheadLog(d)
    assert wal.recover() == [closed]
    assert not empty.exists()


def test_appends_after_recovery_go_to_a_new_segment(make_wal: Callable[..., Wal], tmp_path: Path) -> None:
    old = write_open_segment(tmp_path / "wal", [rec(0)])
    w = make_wal(segment_max_age_s=60)
    assert old.with_suffix(CLOSED_SUFFIX).exists()
    w.append_wait(rec(1))
    assert w.wal.rotate()
    assert [r.body for r in w.records()] == [rec(1).body]
    assert list(read_segment(old.with_suffix(CLOSED_SUFFIX))) == [rec(0)]


# --- group commit -------------------------------------------------------------------------


def test_group_commit_batches_concurrent_appends_and_acks_only_synced_data(
    make_wal: Callable[..., Wal], monkeypatch: pytest.MonkeyPatch
) -> None:
    """16 threads append one record at a time and wait for it, against a disk whose fsync
    takes 3 ms. Group commit must share fsyncs, and no future may resolve before the
    bytes of its record were covered by a completed fsync."""
    real_fsync = os.fsync
    synced = {"size": 0}

    def slow_fsync(fd: int) -> None:
        st = os.fstat(fd)
        real_fsync(fd)
        if stat.S_ISREG(st.st_mode):
            time.sleep(0.003)
            synced["size"] = st.st_size  # everything up to here is on disk

    monkeypatch.setattr(walmod.os, "fsync", slow_fsync)
    w = make_wal(segment_max_age_s=60)
    threads, per_thread = 16, 25
    synced_at_ack: dict[bytes, int] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(per_thread):
                r = rec(t * 1000 + i, size=100)
                fut = w.wal.append(r)
                fut.add_done_callback(lambda _f, b=r.body: synced_at_ack.__setitem__(b, synced["size"]))
                fut.result(timeout=WAIT_S)
        except BaseException as e:
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=60)
    assert not errors
    n = threads * per_thread
    assert len(synced_at_ack) == n
    assert w.wal.fsyncs <= n / 4, f"{w.wal.fsyncs} fsyncs for {n} records: not group-committed"

    assert w.wal.rotate()
    (seg,) = w.closed
    data = seg.read_bytes()
    for body, synced_size in synced_at_ack.items():
        end = data.index(body) + len(body)
        assert end <= synced_size, "a future resolved before its record was fsynced"
    assert sorted(r.body for r in w.records()) == sorted(synced_at_ack)


def test_many_unwaited_appends_share_few_fsyncs(make_wal: Callable[..., Wal]) -> None:
    w = make_wal(start=False, segment_max_age_s=60)
    futures = [w.wal.append(rec(i)) for i in range(2000)]
    w.wal.start()
    for f in futures:
        f.result(timeout=WAIT_S)
    assert w.wal.fsyncs <= 5
    assert w.wal.rotate()
    assert [r.body for r in w.records()] == [rec(i).body for i in range(2000)]


# --- rotation -----------------------------------------------------------------------------


def test_rotation_by_age(make_wal: Callable[..., Wal], tmp_path: Path) -> None:
    w = make_wal(segment_max_age_s=0.2)
    w.append_wait(rec(0))
    poll(lambda: w.closed, what="the segment to be closed by age")
    assert [r.body for r in w.records()] == [rec(0).body]
    assert not open_files(tmp_path / "wal")

    # Under continuous load a segment still closes on time.
    stop = time.monotonic() + 1.2
    i = 1
    while time.monotonic() < stop:
        w.append_wait(rec(i))
        i += 1
    poll(lambda: len(w.records()) == i, what="every record in a closed segment")
    assert len(w.closed) >= 3
    assert [r.body for r in w.records()] == [rec(k).body for k in range(i)]

    # An idle log makes no empty segments.
    n = len(w.closed)
    time.sleep(0.5)
    assert len(w.closed) == n and not open_files(tmp_path / "wal")


def test_rotation_by_size(make_wal: Callable[..., Wal]) -> None:
    w = make_wal(segment_max_bytes=2048, segment_max_age_s=60)
    records = [rec(i, size=300) for i in range(30)]
    for r in records:
        w.append_wait(r)
    assert w.wal.rotate()
    assert len(w.closed) >= 4
    for seg in w.closed[:-1]:
        assert 2048 <= seg.stat().st_size < 2048 + 400
    assert w.records() == records
    assert w.closed == sorted(w.closed), "segment names must sort in write order"


def test_rotate_closes_the_open_segment_now(make_wal: Callable[..., Wal], tmp_path: Path) -> None:
    w = make_wal(segment_max_age_s=60)
    assert w.wal.rotate() and not w.closed  # nothing open: nothing to close
    w.append_wait(rec(0))
    assert len(open_files(tmp_path / "wal")) == 1
    assert w.wal.rotate()
    assert [s.suffix for s in w.closed] == [CLOSED_SUFFIX]
    assert not open_files(tmp_path / "wal")
    assert w.wal.backlog_bytes == w.closed[0].stat().st_size
    w.wal.segment_flushed(w.closed[0].stat().st_size)
    assert w.wal.backlog_bytes == 0


def test_close_writes_what_is_queued_then_refuses(make_wal: Callable[..., Wal], tmp_path: Path) -> None:
    w = make_wal(segment_max_age_s=60)
    futures = [w.wal.append(rec(i)) for i in range(500)]
    w.wal.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(w.records()) == 500 and not open_files(tmp_path / "wal")
    late = w.wal.append(rec(999))
    with pytest.raises(Unavailable):
        late.result(timeout=1)


# --- backpressure -------------------------------------------------------------------------


def test_refuses_over_max_pending_bytes(make_wal: Callable[..., Wal]) -> None:
    frame = len(encode_record(rec(0, size=3000)))
    w = make_wal(start=False, max_pending_bytes=3 * frame, segment_max_age_s=60)
    queued = [w.wal.append(rec(i, size=3000)) for i in range(3)]
    refused = w.wal.append(rec(3, size=3000))
    assert_retryable_refusal(refused, "queue is full")
    assert not any(f.done() for f in queued)
    w.wal.start()
    for f in queued:
        f.result(timeout=WAIT_S)
    w.append_wait(rec(4, size=3000))  # budget is free again once written
    assert w.wal.rotate()
    assert [r.body[:10] for r in w.records()] == [rec(i).body[:10] for i in (0, 1, 2, 4)]


def test_refuses_over_max_backlog_bytes_until_flushed(make_wal: Callable[..., Wal]) -> None:
    w = make_wal(max_backlog_bytes=1200, segment_max_age_s=60)
    for i in range(3):
        w.append_wait(rec(i, size=500))
        assert w.wal.rotate()
    assert w.wal.backlog_bytes > 1200
    assert_retryable_refusal(w.wal.append(rec(9)), "backlog")
    for seg in w.closed:
        w.wal.segment_flushed(seg.stat().st_size)
    w.append_wait(rec(10))


def test_a_cancelled_request_does_not_stop_the_writer(make_wal: Callable[..., Wal]) -> None:
    """gRPC cancels the handler (and the wrapped future) when a client gives up."""
    w = make_wal(start=False, segment_max_age_s=60)
    gave_up = w.wal.append(rec(0))
    kept = w.wal.append(rec(1))
    assert gave_up.cancel()
    w.wal.start()
    kept.result(timeout=WAIT_S)
    w.append_wait(rec(2))
    assert w.wal.rotate()
    assert [r.body for r in w.records()] == [rec(1).body, rec(2).body]


def test_writer_survives_a_segment_it_cannot_create(make_wal: Callable[..., Wal], tmp_path: Path) -> None:
    d = tmp_path / "wal"
    w = make_wal(d, segment_max_age_s=60)
    w.append_wait(rec(0))
    assert w.wal.rotate()
    shutil.rmtree(d)  # e.g. an operator wiped the directory
    fut = w.wal.append(rec(1))
    with pytest.raises(Unavailable):
        fut.result(timeout=WAIT_S)
    d.mkdir()
    w.append_wait(rec(2))
    assert w.wal.rotate()
    assert [r.body for r in read_segment(w.closed[-1])] == [rec(2).body]
