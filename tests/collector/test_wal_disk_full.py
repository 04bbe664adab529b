"""Write-ahead log on a full disk (a real full tmpfs when the tests run as root): appends are
refused retryably, the segment keeps only acknowledged frames, and writing resumes once freed."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import spanlake.collector.wal as walmod
from spanlake.collector.wal import read_segment, valid_length
from tests.collector.wal_helpers import Wal, assert_retryable_refusal, open_files, rec


class TinyDisk:
    """A directory on a 256 KiB tmpfs that can be filled up and freed again.

    As root this is a real mount: ENOSPC (and short writes) come from the kernel. Otherwise
    (or with SPANLAKE_TEST_NO_MOUNT=1) the WAL module's `os.write` is wrapped to behave like
    a full disk for segment files.
    """

    SIZE = 256 * 1024

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.root.mkdir()
        self.filler = root / "filler"
        self.real = self._mount()
        self._full = False
        if not self.real:
            self._fake(monkeypatch)

    def _mount(self) -> bool:
        if os.geteuid() != 0 or shutil.which("mount") is None or os.environ.get("SPANLAKE_TEST_NO_MOUNT"):
            return False
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", str(self.root)], capture_output=True
        )
        return r.returncode == 0

    def _fake(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_write = os.write

        def write(fd: int, data: Any) -> int:
            if self._full and stat.S_ISREG(os.fstat(fd).st_mode):
                n = len(data) // 3  # a short write first, as the kernel does near the end
                if n and not getattr(write, "short_done", False):
                    write.short_done = True  # type: ignore[attr-defined]
                    return real_write(fd, bytes(data[:n]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr(walmod, "os", types.SimpleNamespace(**{**vars(os), "write": write}))

    def fill(self) -> None:
        self._full = True
        if not self.real:
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            with contextlib.suppress(OSError):
                while os.write(fd, b"\xff" * 4096) > 0:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self._full = False
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.real:
            r = subprocess.run(["umount", str(self.root)], capture_output=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(self.root)], capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TinyDisk]:
    disk = TinyDisk(tmp_path / "tiny", monkeypatch)
    try:
        yield disk
    finally:
        disk.unmount()


def test_disk_full_refuses_retryably_keeps_segment_clean_and_recovers(tiny_disk: TinyDisk) -> None:
    w = Wal(tiny_disk.root / "wal", segment_max_age_s=60)
    w.wal.start()
    try:
        acked: list[bytes] = []
        for i in range(3):
            w.append_wait(rec(i, size=1000))
            acked.append(rec(i, size=1000).body)
        (seg,) = open_files(tiny_disk.root / "wal")
        size_before = seg.stat().st_size

        tiny_disk.fill()
        # Each bigger than the slack in the segment's last page, so the disk must refuse
        # them; small enough that a buffered writer would hold them in memory.
        refused = [w.wal.append(rec(10 + i, size=1500)) for i in range(40)]
        refused.append(w.wal.append(rec(50, size=20_000)))
        for f in refused:
            assert_retryable_refusal(f, "disk full")
        # The segment is still exactly the acknowledged frames: the partial write was cut.
        assert seg.stat().st_size == size_before == valid_length(seg)
        assert [r.body for r in read_segment(seg)] == acked

        tiny_disk.free()
        for i in range(3):
            w.append_wait(rec(20 + i, size=20_000))
            acked.append(rec(20 + i, size=20_000).body)
        assert w.wal.rotate()
        assert [r.body for r in w.records()] == acked
        (closed,) = w.closed
        assert valid_length(closed) == closed.stat().st_size
    finally:
        w.wal.close()
