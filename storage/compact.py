"""Merge a partition's small files into fewer (at most MAX_MERGE_BYTES of input each), dropping
re-sent duplicates; fold the late-arrival area (storage.late) into hour partitions.

Safe with concurrent readers: the merged file is published whole before the small files
are deleted, and the views count each (project, trace_id, span_id) once, so a reader sees
the same rows before, during and after. A reader that listed a file just before it was
deleted retries (see storage.reader).

Safe with writers, however many collectors share the lake: a file is merged only once its
WAL segment is marked flushed (`_flushed/<segment>`, written by the flusher after the
segment's last file and before it deletes the segment), because until then a replay may
rewrite it; a replay of a marked segment writes nothing. Files never marked (a collector
whose WAL was lost, lakes from before markers) become eligible after `settle_age_s`. The
compactor's own WAL is checked too, listed *after* the partitions.

Safe with itself: one compaction (or retention run) at a time per lake. A local lake uses
a non-blocking file lock (every process on the host); a lake on object storage has a lease
object `_compaction/lease.json` with an expiry, and one designated compactor (S3 has no
compare-and-swap that pyarrow exposes, so the lease catches a misconfiguration but is not
a consensus protocol). Crash-safe through a journal: before the merged files are published,
`_compaction/<id>.json` names them and their sources; `recover_interrupted` finishes the job
(deletes the sources if every merged file exists, else deletes the merged files it finds).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from spanlake.storage.late import FOLD_MIN_ROWS, Hour, late_by_project, late_rel, late_schema, partition_hour
from spanlake.storage.layout import COMPACT_MIN_AGE_S, COMPACTED_PREFIX, PARQUET_SUFFIX, DataDir, PartitionKey
from spanlake.storage.maintenance import (  # the lock, journal and listing are part of compaction's interface
    JOURNAL_DIR,
    LEASE,
    LEASE_S,
    Held,
    _remove,
    _write_journal,
    exclusive,
    partitions,
    recover_interrupted,
)
from spanlake.storage.objectstore import FileEntry
from spanlake.storage.reader import fetch_arrow
from spanlake.storage.schema import TABLES, Table
from spanlake.storage.schema_steps import conform, parquet_rows
from spanlake.storage.writer import FLUSHED_DIR, clean_staging, fsync_dir, write_parquet

__all__ = [
    "JOURNAL_DIR",
    "LEASE",
    "LEASE_S",
    "Held",
    "compact",
    "compacted_name",
    "exclusive",
    "partitions",
    "recover_interrupted",
    "replace_files",
]

log = logging.getLogger(__name__)

MIN_FILES = 2
# Parquet bytes merged into one file at a time. A merge holds its rows in memory (several times
# their compressed size) and sorts them: an hour of millions of spans merged at once took
# 13 GB. Files of half this size or more count as compacted and are left alone, so a partition
# that keeps growing is not rewritten again and again.
MAX_MERGE_BYTES = 64 * 1024 * 1024
MIN_AGE_S = COMPACT_MIN_AGE_S  # leave young files alone: fewer rewrites of a partition that is still filling
SETTLE_AGE_S = 24 * 3600.0  # files whose segment was never marked flushed are merged after this
STAGING_MAX_AGE_S = 3600.0
# Suffixes of WAL segment files (collector.wal: .open, .wal, .failed); kept here so the
# storage layer does not import the collector.
WAL_SEGMENT_SUFFIXES = (".open", ".wal", ".failed")

Progress = Callable[[Table, list[str]], None]


@dataclass
class CompactionResult:
    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0
    markers_removed: int = 0
    late_hours_folded: int = 0  # hours of late rows moved into their partitions (storage.late)
    skipped_busy: bool = False  # another compaction held the lock


def _hours(groups: dict[str, list[FileEntry]]) -> set[Hour]:
    """(project, date, hour) of these partitions."""
    return {h for h in map(partition_hour, groups) if h is not None}


def segment_of(file: str | PurePath) -> str | None:
    """The WAL segment a flushed file came from (`<segment>-<part>.parquet`); None for merged files."""
    name = PurePath(file).name
    if name.startswith(COMPACTED_PREFIX):
        return None
    return name.removesuffix(PARQUET_SUFFIX).rsplit("-", 1)[0]


def candidates(
    files: list[FileEntry],
    min_age_s: float,
    in_flight: set[str],
    flushed: set[str] | None = None,
    settle_age_s: float = SETTLE_AGE_S,
) -> list[FileEntry]:
    """Files old enough to merge whose WAL segment is done (marked flushed, or settled).

    `flushed=None` treats every segment as marked (callers that know no other writer).
    """
    now = time.time()
    out = []
    for f in files:
        age = now - f.mtime
        seg = segment_of(f.name)
        if age < min_age_s or seg in in_flight:
            continue
        if seg is not None and flushed is not None and seg not in flushed and age < settle_age_s:
            continue
        out.append(f)
    return out


def merge_groups(
    files: list[FileEntry], max_bytes: int = MAX_MERGE_BYTES, min_files: int = MIN_FILES
) -> list[list[str]]:
    """A partition's eligible files (relative paths) in groups of at most `max_bytes`, each
    merged into one file; files of max_bytes/2 or more are left as they are, and so are
    groups of fewer than `min_files`. A key repeated across groups stays repeated on disk (the
    views count it once), until a later merge brings its files together."""
    groups: list[list[str]] = []
    current: list[str] = []
    size = 0
    for f in sorted(files, key=lambda f: f.rel):
        if f.size >= max_bytes // 2:
            continue
        if current and size + f.size > max_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(f.rel)
        size += f.size
    if current:
        groups.append(current)
    return [g for g in groups if len(g) >= min_files]


def wal_segments(data_dir: DataDir) -> set[str]:
    """Names of this data directory's WAL segments not yet flushed; their files may be rewritten."""
    wal = data_dir.wal
    if not wal.is_dir():
        return set()
    # A segment deletion we observe must be durable before we act on it: otherwise power
    # loss could bring the segment back after we merged (and deleted) its files.
    with contextlib.suppress(OSError):
        fsync_dir(wal)
    return {p.name.split(".")[0] for p in wal.iterdir() if p.suffix in WAL_SEGMENT_SUFFIXES}


def flushed_markers(data_dir: DataDir) -> dict[str, float]:
    """Segments marked flushed in the lake, with the marker's time."""
    return {e.name: e.mtime for e in data_dir.store.list_files(FLUSHED_DIR)}


def replace_files(data_dir: DataDir, outputs: dict[str, pa.Table], sources: list[str]) -> None:
    """Publish `outputs` (relative path → rows), then delete `sources`, crash-safe through a
    journal (see recover_interrupted). Call with the lock held."""
    store = data_dir.store
    if not outputs:
        _remove(data_dir, sources)
        return
    journal = _write_journal(data_dir, list(outputs), sources)
    for rel, data in outputs.items():
        if store.local:
            write_parquet(data, data_dir.lake / rel, data_dir.staging)
        else:
            store.publish(rel, data)
    _remove(data_dir, [s for s in sources if s not in outputs])
    store.delete([journal])


def compacted_name() -> str:
    """A new name for a file the compactor writes."""
    return f"{COMPACTED_PREFIX}{int(time.time())}-{uuid.uuid4().hex[:8]}{PARQUET_SUFFIX}"


def _merged(data_dir: DataDir, schema: pa.Schema, table: Table, files: list[str], late: bool) -> tuple[int, pa.Table]:
    """(rows in, the rows of `files` with each key once, in the table's order). Of several
    deliveries of one span (or log record) the earliest ingested is kept."""
    names = ", ".join(f.name for f in schema)
    keys = ", ".join(table.unique_key)
    store = data_dir.store
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if store.local:
            file_list = ", ".join("'" + str(data_dir.lake / f).replace("'", "''") + "'" for f in files)
            read = f"read_parquet([{file_list}], union_by_name = true, hive_partitioning = false)"
            source = parquet_rows(table, read)
        else:
            merged_in = pa.concat_tables([conform(store.read_parquet(f), schema) for f in files])
            con.register("merge_source", merged_in)
            source = "merge_source"
        # fetchall, not fetchone: DuckDB 2 refuses the next statement while a result is unfinished.
        ((rows_in,),) = con.execute(f"SELECT count(*) FROM {source}").fetchall()
        order = ", ".join((["date", "hour"] if late else []) + list(table.order_by))
        data: pa.Table = fetch_arrow(
            con,
            f"SELECT * FROM (SELECT DISTINCT ON ({keys}) {names} FROM {source} ORDER BY {keys}, ingested_at) "
            f"ORDER BY {order}",
        )
    finally:
        con.close()
    return rows_in, data.cast(schema)


def compact_partition(data_dir: DataDir, table: Table, files: list[str]) -> tuple[int, int]:
    """Merge `files` (one partition, relative paths) into one deduplicated file; returns (rows in, rows out).

    Of several deliveries of one span (or log record) the earliest ingested is kept.
    """
    rows_in, data = _merged(data_dir, table.arrow_schema, table, files, late=False)
    parent = files[0].rsplit("/", 1)[0]
    replace_files(data_dir, {f"{parent}/{compacted_name()}": data}, files)
    return rows_in, data.num_rows


def fold_late(
    data_dir: DataDir, table: Table, project: str, files: list[str], existing: set[Hour]
) -> tuple[int, int, int]:
    """Fold a project's late files (relative paths) into hour partitions; returns (rows in,
    rows out, hours folded).

    The rows of an hour that already has a partition (`existing`), or that has at least
    FOLD_MIN_ROWS rows, move into that partition as a new merged file; the rest stay in
    the late area, merged into one file. Each key is kept once (the earliest ingested).
    """
    rows_in, data = _merged(data_dir, late_schema(table), table, files, late=True)
    hours = data.select(["date", "hour"]).group_by(["date", "hour"]).aggregate([([], "count_all")])
    outputs: dict[str, pa.Table] = {}
    keep = pa.array([True] * data.num_rows) if data.num_rows else pa.array([], pa.bool_())
    for day, hour, n in zip(*(hours.column(c).to_pylist() for c in ("date", "hour", "count_all")), strict=True):
        if (project, day, hour) not in existing and n < FOLD_MIN_ROWS:
            continue
        mask = pc.and_(pc.equal(data.column("date"), day), pc.equal(data.column("hour"), hour))
        rows = data.filter(mask).drop_columns(["date", "hour"]).cast(table.arrow_schema)
        outputs[f"{PartitionKey(project, day, hour).path(table.name)}/{compacted_name()}"] = rows
        keep = pc.and_(keep, pc.invert(mask))
    rest = data.filter(keep)
    if rest.num_rows:
        outputs[late_rel(table, project, compacted_name())] = rest
    replace_files(data_dir, outputs, files)
    return rows_in, data.num_rows, len(outputs) - (1 if rest.num_rows else 0)


def compact(
    data_dir: DataDir,
    min_age_s: float = MIN_AGE_S,
    min_files: int = MIN_FILES,
    in_flight: set[str] | None = None,
    progress: Progress | None = None,
    settle_age_s: float = SETTLE_AGE_S,
    max_merge_bytes: int = MAX_MERGE_BYTES,
) -> CompactionResult:
    """Compact every partition of every table that has at least `min_files` eligible files
    (in groups of at most `max_merge_bytes`: merge_groups).

    `in_flight` overrides the WAL segments whose files must not be touched (by default,
    those present in the data directory's WAL after the partitions are listed).
    `progress(table, files)` is called after each merge.
    """
    result = CompactionResult()
    with exclusive(data_dir) as held:
        if not held:
            result.skipped_busy = True
            return result
        recover_interrupted(data_dir)
        if not data_dir.is_remote:
            clean_staging(data_dir.staging, STAGING_MAX_AGE_S)
        listed = [(table, files) for table in TABLES.values() for files in partitions(data_dir, table).values()]
        late = [(t, p, files) for t in TABLES.values() for p, files in late_by_project(data_dir, t).items()]
        markers = flushed_markers(data_dir)
        busy = in_flight if in_flight is not None else wal_segments(data_dir)  # after listing: see module doc
        flushed = set(markers)
        for table, files in listed:
            groups = merge_groups(candidates(files, min_age_s, busy, flushed, settle_age_s), max_merge_bytes, min_files)
            for group in groups:
                rows_in, rows_out = compact_partition(data_dir, table, group)
                held.renew()
                result.files_in += len(group)
                result.files_out += 1
                result.rows_in += rows_in
                result.rows_out += rows_out
                if progress is not None:
                    progress(table, group)
            result.partitions += 1 if groups else 0
        existing = {t.name: _hours(partitions(data_dir, t)) for t in {t for t, _, _ in late}}
        for table, project, files in late:
            eligible = [f.rel for f in candidates(files, min_age_s, busy, flushed, settle_age_s)]
            fresh = [f for f in eligible if segment_of(f) is not None]  # not yet folded
            if not fresh and len(eligible) < min_files:
                continue
            rows_in, rows_out, folded = fold_late(data_dir, table, project, eligible, existing[table.name])
            held.renew()
            result.files_in += len(eligible)
            result.rows_in += rows_in
            result.rows_out += rows_out
            result.late_hours_folded += folded
            if progress is not None:
                progress(table, eligible)
        # Markers matter until their files may be merged anyway (settle age).
        old = [f"{FLUSHED_DIR}/{m}" for m, t in markers.items() if time.time() - t > settle_age_s]
        data_dir.store.delete(old)
        result.markers_removed = len(old)
    return result
