"""Local files that survive power loss: fsynced folders and whole-or-absent Parquet files.

The lowest layer of storage: storage.objectstore (LocalStore), storage.writer, compaction,
the WAL and the small state files build on these.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"
ROW_GROUP_SIZE = 64 * 1024
TMP_SUFFIX = ".tmp"
RENAME_ATTEMPTS = 10  # tries against retention removing the folder being written into


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: Path) -> None:
    """`mkdir -p` that fsyncs the parent of every directory it creates."""
    if path.is_dir():
        return
    makedirs_durable(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return  # created concurrently; whoever created it fsyncs its parent
    fsync_dir(path.parent)


def write_parquet(data: pa.Table, dest: Path, staging: Path) -> None:
    """Write `data` to `dest` atomically (staging file, fsync, rename, fsync dir)."""
    makedirs_durable(staging)
    tmp = staging / f"{uuid.uuid4().hex}{TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(data, f, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
            f.flush()
            os.fsync(f.fileno())
        _rename_into(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(FileNotFoundError):  # retention deleted the (expired) file already
        fsync_dir(dest.parent)


def _rename_into(tmp: Path, dest: Path) -> None:
    """Rename `tmp` to `dest`, creating `dest`'s folders. Retention removes a partition's hour
    and date folders once they are empty, so one can vanish between its mkdir and the next
    step (the child's mkdir, an fsync, the rename); then the folders are made again, a bounded
    number of times (it loses only to another removal)."""
    for attempt in range(RENAME_ATTEMPTS):
        try:
            makedirs_durable(dest.parent)
            os.replace(tmp, dest)
            return
        except FileNotFoundError:
            if not tmp.exists() or attempt == RENAME_ATTEMPTS - 1:
                raise
