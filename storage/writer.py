"""Write rows into the lake as whole Parquet files.

A file is written under `lake/_staging/`, fsynced, then renamed into its partition and the
directory fsynced: a reader either sees the whole file or none of it. Writing the same
name again (a replay of the same WAL segment) replaces the file atomically, which is what
makes recovery exactly-once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spanlake.storage.layout import PARQUET_SUFFIX, DataDir, PartitionKey
from spanlake.storage.schema import Table

COMPRESSION = "zstd"
ROW_GROUP_SIZE = 64 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def columns_to_table(table: Table, columns: Mapping[str, list[Any]]) -> pa.Table:
    """Build an Arrow table with the table's declared schema from column lists."""
    schema = table.arrow_schema
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def write_parquet(data: pa.Table, dest: Path, staging: Path) -> None:
    """Write `data` to `dest` atomically (staging file, fsync, rename, fsync dir)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{uuid.uuid4().hex}.tmp"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(data, f, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(dest.parent)


class LakeWriter:
    """Publishes batches of rows into the lake's partitions."""

    def __init__(self, data_dir: DataDir) -> None:
        self.data_dir = data_dir

    def partition_dir(self, table: Table, key: PartitionKey) -> Path:
        return self.data_dir.lake / key.path(table.name)

    def write_batch(
        self, table: Table, batch: Mapping[PartitionKey, Mapping[str, list[Any]]], file_stem: str
    ) -> list[Path]:
        """Write one file per partition named `<file_stem>.parquet`; returns the paths."""
        written = []
        for key, columns in batch.items():
            data = columns_to_table(table, columns)
            if "start_time" in data.column_names:
                data = data.sort_by([("start_time", "ascending")])
            dest = self.partition_dir(table, key) / f"{file_stem}{PARQUET_SUFFIX}"
            write_parquet(data, dest, self.data_dir.staging)
            written.append(dest)
        return written
