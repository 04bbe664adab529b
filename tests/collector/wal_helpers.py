"""What the write-ahead log tests share (tests/collector/test_wal*.py, test_recovery.py): numbered
records, a WAL whose closed segments are collected instead of flushed, and small waits and checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from spanlake.collector.errors import Unavailable
from spanlake.collector.wal import (
    KIND_TRACES,
    OPEN_SUFFIX,
    Record,
    WriteAheadLog,
    read_segment,
)

WAIT_S = 10.0


def rec(i: int, size: int = 32, kind: int = KIND_TRACES, project: str | None = "p") -> Record:
    """A record whose body starts with its number, so it can be found again."""
    head = f"rec-{i:06d}|".encode()
    return Record(kind, 1_700_000_000_000_000_000 + i, project, head + b"x" * max(0, size - len(head)))


def poll(cond: Callable[[], Any], timeout: float = WAIT_S, what: str = "condition", every: float = 0.01) -> Any:
    """`cond()` once it is true, tried every `every` seconds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Wal:
    """A started WAL whose closed segments are collected instead of flushed."""

    def __init__(self, directory: Path, **kw: Any) -> None:
        self.closed: list[Path] = []
        self.wal = WriteAheadLog(directory, on_segment_closed=self.closed.append, **kw)
        self.wal.recover()

    def append_wait(self, r: Record) -> None:
        self.wal.append(r).result(timeout=WAIT_S)

    def records(self) -> list[Record]:
        return [r for seg in self.closed for r in read_segment(seg)]


def open_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{OPEN_SUFFIX}"))


def assert_retryable_refusal(fut: Future[None], fragment: str) -> None:
    with pytest.raises(Unavailable) as e:
        fut.result(timeout=1)
    assert e.value.retryable and e.value.http_status == 503
    assert e.value.retry_after_s and e.value.retry_after_s > 0
    assert fragment in e.value.message
