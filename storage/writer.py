"""Write rows into the lake as whole Parquet files.

On a local lake, a file is written under `lake/_staging/`, fsynced, then renamed into its partition and the
directory fsynced: a reader either sees the whole file or none of it. Writing the same
name again (a replay of the same WAL segment) replaces the file atomically, which is what
makes recovery exactly-once. Partition directories created on the way are fsynced into
their parents too, so a published file survives power loss along with its path. On
object storage, each file is one object PUT whole (storage.objectstore); the same name
written again replaces it, so replays stay exactly-once there too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import pyarrow as pa

from spanlake.storage.durable import TMP_SUFFIX, write_parquet
from spanlake.storage.durable import fsync_dir as fsync_dir  # re-exported: the WAL, flusher and state files
from spanlake.storage.durable import makedirs_durable as makedirs_durable  # re-exported, as fsync_dir
from spanlake.storage.late import MAX_HOUR_FILES, late_prefix, late_rel, late_table, split_batch
from spanlake.storage.layout import PARQUET_SUFFIX, DataDir, PartitionKey
from spanlake.storage.schema import Table

FLUSHED_DIR = "_flushed"  # lake/_flushed/<segment>: every file of that WAL segment is published


def columns_to_table(table: Table, columns: Mapping[str, list[Any]]) -> pa.Table:
    """Build an Arrow table with the table's declared schema from column lists."""
    schema = table.arrow_schema
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def clean_staging(staging: Path, min_age_s: float = 3600.0) -> int:
    """Delete staging files older than `min_age_s` (left by a crash mid-write); returns how many."""
    if not staging.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - min_age_s
    for f in staging.glob(f"*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if f.stat().st_mtime < cutoff:
                f.unlink()
                removed += 1
    return removed


class LakeWriter:
    """Publishes batches of rows into the lake's partitions.

    `max_hour_files`: hour partitions one `write_batch` may open; the rows of the others
    go to the late-arrival area (storage.late), one file per project. None: no limit.
    """

    def __init__(self, data_dir: DataDir, max_hour_files: int | None = MAX_HOUR_FILES) -> None:
        self.data_dir = data_dir
        self.max_hour_files = max_hour_files

    def partition_dir(self, table: Table, key: PartitionKey) -> Path:
        return self.data_dir.lake / key.path(table.name)

    def write_batch(
        self, table: Table, batch: Mapping[PartitionKey, Mapping[str, list[Any]]], file_stem: str
    ) -> list[PurePath]:
        """Write one file per partition named `<file_stem>.parquet`, at most `max_hour_files`
        hour partitions plus one late file per project for the rest.

        Returns the files: local paths, or for a lake on object storage the objects' paths
        relative to the lake root.
        """
        hours, late = split_batch(batch, self.max_hour_files)
        written: list[PurePath] = []
        for key, columns in hours.items():
            data = columns_to_table(table, columns)
            if "start_time" in data.column_names:
                data = data.sort_by([("start_time", "ascending")])
            written.append(self._publish(f"{key.path(table.name)}/{file_stem}{PARQUET_SUFFIX}", data))
        for project, parts in late.items():
            data = late_table(table, {key: columns_to_table(table, cols) for key, cols in parts.items()})
            written.append(self._publish(late_rel(table, project, f"{file_stem}{PARQUET_SUFFIX}"), data))
        return written

    def _publish(self, rel: str, data: pa.Table) -> PurePath:
        store = self.data_dir.store
        if store.local:
            dest = self.data_dir.lake / rel
            write_parquet(data, dest, self.data_dir.staging)
            return dest
        store.publish(rel, data)
        return PurePosixPath(rel)

    def mark_flushed(self, segment: str) -> None:
        """Record that every file of WAL segment `segment` is published (see storage.compact)."""
        self.data_dir.store.put_bytes(f"{FLUSHED_DIR}/{segment}", b"")

    def is_flushed(self, segment: str) -> bool:
        return self.data_dir.store.exists(f"{FLUSHED_DIR}/{segment}")

    def remove_strays(self, stem: str, written: set[PurePath], tables: list[Table]) -> list[str]:
        """Delete files named `<stem>-*.parquet` that are not in `written`; returns them (relative)."""
        store = self.data_dir.store
        keep = {self._rel(p) for p in written}
        stray = [
            e.rel
            for table in tables
            for prefix in (table.name, late_prefix(table))
            for e in store.list_files(prefix, PARQUET_SUFFIX)
            if e.name.startswith(f"{stem}-") and e.rel not in keep
        ]
        store.delete(stray)
        return stray

    def _rel(self, p: PurePath) -> str:
        if isinstance(p, Path) and p.is_absolute():
            return p.relative_to(self.data_dir.lake).as_posix()
        return PurePosixPath(p).as_posix()
