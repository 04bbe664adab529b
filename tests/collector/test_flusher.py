"""The flusher's worker pool and its garbage-collector pause: segments flushed by worker
processes land every span once, and the cyclic GC is always back to its state afterwards."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spanlake.storage.writer as writermod
from spanlake.collector.flusher import Flusher, publish_segment
from spanlake.collector.wal import WriteAheadLog
from spanlake.storage.layout import DataDir
from spanlake.storage.writer import LakeWriter
from tests.collector.test_recovery import SPANS_PER_REQUEST, raw_counts, write_segment


@pytest.fixture
def gc_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def test_worker_pool_flushes_every_span_once(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir, n_requests=12)
    wal = WriteAheadLog(data_dir.wal)
    wal.recover()
    flusher = Flusher(wal, LakeWriter(data_dir), workers=1)
    flusher.start()  # the worker starts (and imports) now, before any segment
    try:
        flusher.submit(segment)
        assert flusher.wait_idle(timeout=120)
    finally:
        flusher.close()
    assert flusher.segments_flushed == 1 and not segment.exists()
    counts = raw_counts(data_dir)
    assert len(counts) == 12 * SPANS_PER_REQUEST and set(counts.values()) == {1}


def test_gc_is_back_on_after_a_segment_even_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gc_enabled: None
) -> None:
    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir, n_requests=3)
    seen: list[bool] = []

    def full_disk(*args: Any, **kw: Any) -> None:
        seen.append(gc.isenabled())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writermod, "write_parquet", full_disk)
    with pytest.raises(OSError):
        publish_segment(str(segment), str(data_dir.root), "default", False)
    assert seen == [False]  # paused while the segment was decoded and written
    assert gc.isenabled()


def test_gc_left_off_when_it_was_off(tmp_path: Path, gc_enabled: None) -> None:
    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir, n_requests=3)
    gc.disable()
    skipped, files = publish_segment(str(segment), str(data_dir.root), "default", False)
    assert not gc.isenabled()
    assert skipped == 0 and files == len(list(data_dir.lake.rglob("*.parquet"))) >= 1
    assert len(raw_counts(data_dir)) == 3 * SPANS_PER_REQUEST


def test_a_started_worker_has_loaded_what_writing_a_segment_loads(tmp_path: Path) -> None:
    """The first segment after a start does not wait for imports (Arrow loads pandas on its first
    time-zone-aware column, and its Parquet writer on first use): the initializer loads them."""
    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir, n_requests=2)
    script = (
        "import os, sys; from spanlake.collector import flusher as f; f._init_worker(os.getppid()); "
        "before = set(sys.modules); "
        f"f.publish_segment({str(segment)!r}, {str(data_dir.root)!r}, 'default', False); "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
    assert raw_counts(data_dir)  # the segment was written
