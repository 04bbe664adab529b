"""Merge a partition's small files into one, dropping re-sent duplicates.

Safe with concurrent readers: the merged file is published whole before the small files
are deleted, and the views count each (project, trace_id, span_id) once, so a reader sees
the same rows before, during and after. A reader that listed a file just before it was
deleted retries (see storage.reader).

Safe with the flusher: a file is merged only once the WAL segment it came from is gone,
because until then a replay may rewrite it. The WAL is listed *after* the partition, so a
segment rotated while compaction runs is seen too (a segment always exists before its
files, and is deleted only after all of them are published).

Safe with itself: one compaction at a time per data directory (a non-blocking file lock;
a second caller returns at once), and crash-safe through a journal: before the merged
file is published, `lake/_compaction/<id>.json` names it and its sources; after a crash,
`recover_interrupted` finishes the job (deletes the sources if the merged file exists,
else forgets it), so no row is ever stored twice for long.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from spanlake.storage.layout import PARQUET_SUFFIX, DataDir
from spanlake.storage.reader import fetch_arrow
from spanlake.storage.schema import LOGS, SPANS, TABLES, Table
from spanlake.storage.writer import clean_staging, fsync_dir, makedirs_durable, write_parquet

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compacted-"
MIN_FILES = 2
MIN_AGE_S = 60.0  # leave young files alone: fewer rewrites of a partition that is still filling
STAGING_MAX_AGE_S = 3600.0
JOURNAL_DIR = "_compaction"
# Suffixes of WAL segment files (collector.wal: .open, .wal, .failed); kept here so the
# storage layer does not import the collector.
WAL_SEGMENT_SUFFIXES = (".open", ".wal", ".failed")
_KEYS = {SPANS.name: ("trace_id", "span_id"), LOGS.name: ("record_id",)}
_ORDER = {SPANS.name: "start_time, trace_id, span_id", LOGS.name: "time, record_id"}

Progress = Callable[[Table, list[Path]], None]


@dataclass
class CompactionResult:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    skipped_busy: bool = False  # another compaction held the lock


def partitions(data_dir: DataDir, table: Table) -> Iterator[Path]:
    root = data_dir.lake / table.name
    if root.is_dir():
        yield from sorted(root.glob("project=*/date=*/hour=*"))


def segment_of(file: Path) -> str | None:
    """The WAL segment a flushed file came from (`<segment>-<part>.parquet`); None for merged files."""
    if file.name.startswith(COMPACTED_PREFIX):
        return None
    return file.stem.rsplit("-", 1)[0]


def candidates(partition: Path, min_age_s: float, in_flight: set[str]) -> list[Path]:
    """Files old enough to merge, skipping those whose WAL segment is still being flushed."""
    now = time.time()
    out = []
    for f in sorted(partition.glob(f"*{PARQUET_SUFFIX}")):
        try:
            mtime = f.stat().st_mtime
        except FileNotFoundError:
            continue
        if now - mtime < min_age_s or segment_of(f) in in_flight:
            continue
        out.append(f)
    return out


def wal_segments(data_dir: DataDir) -> set[str]:
    """Names of WAL segments not yet flushed; their lake files may still be rewritten."""
    wal = data_dir.wal
    if not wal.is_dir():
        return set()
    # A segment deletion we observe must be durable before we act on it: otherwise power
    # loss could bring the segment back after we merged (and deleted) its files.
    with contextlib.suppress(OSError):
        fsync_dir(wal)
    return {p.name.split(".")[0] for p in wal.iterdir() if p.suffix in WAL_SEGMENT_SUFFIXES}


@contextlib.contextmanager
def exclusive(data_dir: DataDir) -> Iterator[bool]:
    """Hold the data directory's compaction lock if it is free; yields whether it was acquired."""
    d = data_dir.lake / JOURNAL_DIR
    makedirs_durable(d)
    fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_journal(data_dir: DataDir, dest: Path, sources: list[Path]) -> Path:
    d = data_dir.lake / JOURNAL_DIR
    lake = data_dir.lake
    rel = {"dest": str(dest.relative_to(lake)), "sources": [str(s.relative_to(lake)) for s in sources]}
    path = d / f"{dest.stem}.json"
    tmp = d / f"{dest.stem}.json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rel, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(d)
    return path


def _remove(files: list[Path]) -> None:
    for f in files:
        f.unlink(missing_ok=True)
    for d in {f.parent for f in files}:
        fsync_dir(d)


def recover_interrupted(data_dir: DataDir) -> int:
    """Finish compactions a crash interrupted; returns how many. Call with the lock held."""
    d = data_dir.lake / JOURNAL_DIR
    if not d.is_dir():
        return 0
    n = 0
    for tmp in d.glob("*.json.tmp"):  # a journal never completed: nothing was published
        tmp.unlink(missing_ok=True)
    for j in sorted(d.glob("*.json")):
        entry = json.loads(j.read_text(encoding="utf-8"))
        dest = data_dir.lake / entry["dest"]
        if dest.exists():
            _remove([data_dir.lake / s for s in entry["sources"]])
            log.info("finished an interrupted compaction into %s", dest.name)
        j.unlink()
        n += 1
    if n:
        fsync_dir(d)
    return n


def compact_partition(data_dir: DataDir, table: Table, files: list[Path]) -> tuple[int, int]:
    """Merge `files` (one partition) into one deduplicated file; returns (rows in, rows out).

    Of several deliveries of one span (or log record) the earliest ingested is kept.
    """
    names = ", ".join(table.names)
    keys = ", ".join(_KEYS[table.name])
    file_list = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    source = f"read_parquet([{file_list}], union_by_name = true, hive_partitioning = false)"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unfinished.
        ((rows_in,),) = con.execute(f"SELECT count(*) FROM {source}").fetchall()
        data: pa.Table = fetch_arrow(
            con,
            f"SELECT * FROM (SELECT DISTINCT ON ({keys}) {names} FROM {source} ORDER BY {keys}, ingested_at) "
            f"ORDER BY {_ORDER[table.name]}",
        )
    finally:
        con.close()
    data = data.cast(table.arrow_schema)
    dest = files[0].parent / f"{COMPACTED_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}{PARQUET_SUFFIX}"
    journal = _write_journal(data_dir, dest, files)
    write_parquet(data, dest, data_dir.staging)
    _remove(files)
    journal.unlink()
    return rows_in, data.num_rows


def compact(
    data_dir: DataDir,
    min_age_s: float = MIN_AGE_S,
    min_files: int = MIN_FILES,
    in_flight: set[str] | None = None,
    progress: Progress | None = None,
) -> CompactionResult:
    """Compact every partition of every table that has at least `min_files` eligible files.

    `in_flight` overrides the WAL segments whose files must not be touched (by default,
    those present in the data directory's WAL after the partitions are listed).
    `progress(table, files)` is called after each partition.
    """
    result = CompactionResult()
    with exclusive(data_dir) as acquired:
        if not acquired:
            result.skipped_busy = True
            return result
        recover_interrupted(data_dir)
        clean_staging(data_dir.staging, STAGING_MAX_AGE_S)
        listed = [
            (table, candidates(part, min_age_s, set()))
            for table in TABLES.values()
            for part in partitions(data_dir, table)
        ]
        busy = in_flight if in_flight is not None else wal_segments(data_dir)  # after listing: see module doc
        work = [(table, [f for f in files if segment_of(f) not in busy]) for table, files in listed]
        for table, files in work:
            if len(files) < min_files:
                continue
            rows_in, rows_out = compact_partition(data_dir, table, files)
            result.partitions += 1
            result.files_in += len(files)
            result.files_out += 1
            result.rows_in += rows_in
            result.rows_out += rows_out
            if progress is not None:
                progress(table, files)
    return result
