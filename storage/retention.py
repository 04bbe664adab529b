"""Retention: delete a project's partitions older than N days (default: keep forever).

A partition `project=P/date=D/hour=H` expires when its whole hour is older than the
project's limit: every row in it started before `now - days`. Retention deletes whole
files only, never rewrites one, and runs under the compaction lock (storage.maintenance.exclusive),
so it never races with a compaction. Writers are unaffected: a late span written into an
expired partition after the run is deleted by the next one; a reader that listed a deleted
file retries (storage.reader).

Rows in the late-arrival area (storage.late) expire by the same rule, row by row: a late
file whose rows all expired is deleted, one with some expired rows is rewritten without
them (crash-safe, like a compaction).

Rules are `{project: days}`; the project `*` applies to every project without its own rule.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from spanlake.storage.compact import Held, compacted_name, exclusive, partitions, replace_files
from spanlake.storage.late import late_by_project, late_rel, late_schema, read_hours
from spanlake.storage.layout import ALL_PROJECTS, DataDir
from spanlake.storage.retention_rules import format_rules, parse_rules
from spanlake.storage.schema import TABLES, Table
from spanlake.storage.schema_steps import conform

__all__ = ["RetentionResult", "apply_retention", "expired_partitions", "format_rules", "parse_rules"]

Progress = Callable[[str, int], None]  # (partition, files deleted)


@dataclass
class RetentionResult:
    partitions: int = 0
    files: int = 0
    bytes: int = 0
    skipped_busy: bool = False


def _partition_key(rel_dir: str) -> tuple[str, datetime] | None:
    """(project, start of the hour) of `<table>/project=P/date=D/hour=H`."""
    parts = rel_dir.split("/")
    if len(parts) != 4:
        return None
    try:
        project = parts[1].removeprefix("project=")
        day = date.fromisoformat(parts[2].removeprefix("date="))
        hour = int(parts[3].removeprefix("hour="))
    except ValueError:
        return None
    return project, datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def expired(rel_dir: str, rules: Mapping[str, int], now: datetime) -> bool:
    key = _partition_key(rel_dir)
    if key is None:
        return False
    project, hour_start = key
    days = rules.get(project, rules.get(ALL_PROJECTS))
    return days is not None and hour_start + timedelta(hours=1) <= now - timedelta(days=days)


def apply_retention(
    data_dir: DataDir,
    rules: Mapping[str, int],
    now: datetime | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Delete every expired partition of every table; `progress(partition, files)` after each."""
    result = RetentionResult()
    if not rules:
        return result
    now = now or datetime.now(UTC)
    store = data_dir.store
    with exclusive(data_dir) as held:
        if not held:
            result.skipped_busy = True
            return result
        for table in TABLES.values():
            for rel_dir, files in partitions(data_dir, table).items():
                if not expired(rel_dir, rules, now):
                    continue
                if not dry_run:
                    store.delete([f.rel for f in files])
                    if store.local:
                        _remove_empty_dirs(data_dir, rel_dir)
                    held.renew()
                result.partitions += 1
                result.files += len(files)
                result.bytes += sum(f.size for f in files)
                if progress is not None:
                    progress(rel_dir, len(files))
            _expire_late(data_dir, table, rules, now, held, result, dry_run)
    return result


def _expire_late(
    data_dir: DataDir,
    table: Table,
    rules: Mapping[str, int],
    now: datetime,
    held: Held,
    result: RetentionResult,
    dry_run: bool,
) -> None:
    """Drop the expired rows of a table's late files (deleting or rewriting each file)."""
    store = data_dir.store
    for project, files in late_by_project(data_dir, table).items():
        days = rules.get(project, rules.get(ALL_PROJECTS))
        if days is None:
            continue
        # A row's hour expires when it ends at or before now - days (as `expired` says).
        last = int((now - timedelta(days=days)).timestamp() // 3600) - 1  # last expired hour since the epoch
        for f in files:
            hours = read_hours(data_dir, f.rel)
            days_since_epoch = pc.cast(hours.column("date"), pa.int32()).cast(pa.int64())
            index = pc.add(pc.multiply(days_since_epoch, 24), hours.column("hour"))
            expired_rows = pc.less_equal(index, last)
            n = pc.sum(expired_rows).as_py() or 0
            if not n:
                continue
            result.files += 1
            result.bytes += f.size
            if dry_run:
                continue
            if n == hours.num_rows:
                store.delete([f.rel])
            else:
                data = conform(store.read_parquet(f.rel), late_schema(table)).filter(pc.invert(expired_rows))
                replace_files(data_dir, {late_rel(table, project, compacted_name()): data}, [f.rel])
            held.renew()


def expired_partitions(data_dir: DataDir, rules: Mapping[str, int], now: datetime | None = None) -> list[str]:
    """Partitions (relative directories) that `apply_retention` would delete now."""
    now = now or datetime.now(UTC)
    return [p for t in TABLES.values() for p in partitions(data_dir, t) if expired(p, rules, now)]


def _remove_empty_dirs(data_dir: DataDir, rel_dir: str) -> None:
    """Remove the hour folder, then the date folder, if empty. A writer that loses the race
    (its rename finds the folder gone) fails with an OSError, which the flusher retries."""
    path = data_dir.lake / rel_dir
    for d in (path, path.parent):
        with contextlib.suppress(OSError):
            os.rmdir(d)
