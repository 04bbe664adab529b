"""Merge a partition's small files into one, dropping re-sent duplicates.

Safe with concurrent readers: the merged file is published whole before the small files
are deleted, and the views count each (project, trace_id, span_id) once, so a reader sees
the same rows before, during and after. A reader that listed a file just before it was
deleted retries (see storage.reader).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from spanlake.storage.layout import PARQUET_SUFFIX, DataDir
from spanlake.storage.reader import fetch_arrow
from spanlake.storage.schema import LOGS, SPANS, TABLES, Table
from spanlake.storage.writer import fsync_dir, write_parquet

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compacted-"
MIN_FILES = 2
MIN_AGE_S = 60.0  # leave files the flusher may still replace alone
_KEYS = {SPANS.name: ("trace_id", "span_id"), LOGS.name: ("record_id",)}
_ORDER = {SPANS.name: "start_time, trace_id", LOGS.name: "time"}


@dataclass
class CompactionResult:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0


def partitions(data_dir: DataDir, table: Table) -> Iterator[Path]:
    root = data_dir.lake / table.name
    if root.is_dir():
        yield from sorted(root.glob("project=*/date=*/hour=*"))


def candidates(partition: Path, min_age_s: float, in_flight: set[str]) -> list[Path]:
    """Files old enough to merge, skipping those whose WAL segment is still being flushed."""
    now = time.time()
    out = []
    for f in sorted(partition.glob(f"*{PARQUET_SUFFIX}")):
        if now - f.stat().st_mtime < min_age_s:
            continue
        if any(f.name.startswith(seg) for seg in in_flight):
            continue
        out.append(f)
    return out


def compact_partition(data_dir: DataDir, table: Table, files: list[Path]) -> tuple[int, int]:
    """Merge `files` (one partition) into one deduplicated file; returns (rows in, rows out)."""
    names = ", ".join(table.names)
    keys = ", ".join(_KEYS[table.name])
    file_list = ", ".join(f"'{f}'" for f in files)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        rows_in = con.execute(f"SELECT count(*) FROM read_parquet([{file_list}], union_by_name = true)").fetchone()[0]
        data: pa.Table = fetch_arrow(
            con,
            f"SELECT DISTINCT ON ({keys}) {names} FROM read_parquet([{file_list}], union_by_name = true) "
            f"ORDER BY {_ORDER[table.name]}",
        )
    finally:
        con.close()
    data = data.cast(table.arrow_schema)
    dest = files[0].parent / f"{COMPACTED_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}{PARQUET_SUFFIX}"
    write_parquet(data, dest, data_dir.staging)
    for f in files:
        f.unlink()
    fsync_dir(dest.parent)
    return rows_in, data.num_rows


def compact(
    data_dir: DataDir,
    min_age_s: float = MIN_AGE_S,
    min_files: int = MIN_FILES,
    in_flight: set[str] | None = None,
    progress: object | None = None,
) -> CompactionResult:
    """Compact every partition of every table that has at least `min_files` eligible files."""
    result = CompactionResult()
    in_flight = in_flight if in_flight is not None else wal_segments(data_dir)
    work = [
        (table, files)
        for table in TABLES.values()
        for part in partitions(data_dir, table)
        if len(files := candidates(part, min_age_s, in_flight)) >= min_files
    ]
    for table, files in work:
        rows_in, rows_out = compact_partition(data_dir, table, files)
        result.partitions += 1
        result.files_in += len(files)
        result.files_out += 1
        result.rows_in += rows_in
        result.rows_out += rows_out
        if progress is not None:
            progress(table, files)  # type: ignore[operator]
    return result


def wal_segments(data_dir: DataDir) -> set[str]:
    """Names of WAL segments not yet flushed; their lake files may still be rewritten."""
    if not data_dir.wal.is_dir():
        return set()
    return {p.name.split(".")[0] for p in data_dir.wal.iterdir()}
