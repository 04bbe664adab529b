"""The late-arrival area: where rows go when a write would open too many hour partitions.

An hour partition is a folder and at least one file, so a request whose rows fall in
thousands of different hours would otherwise make thousands of files, and every reader
would pay for each one. Each file the writer publishes (one flush part: at most
`flusher.PART_ROWS` rows) may therefore open at most `MAX_HOUR_FILES` hour partitions;
the hours with the most rows get them, and the rows of every other hour go to one file
per project in the late area, whatever their timestamps say:

    lake/_late/<table>/project=<p>/<file>.parquet

A late file is an ordinary Parquet file of the table plus two stored columns, `date` and
`hour` (the partition keys the path cannot hold), sorted by the table's time column, so a
query for one hour skips its other row groups by their statistics. Readers add the late
rows to the table's views (storage.reader); compaction folds them into their hour
partitions when the hour already has one or has at least `FOLD_MIN_ROWS` late rows, and
merges the rest into one file per project (storage.compact); retention drops expired rows
(storage.retention). Another engine must read this area beside the hour partitions (Spark
and Hive skip a folder starting with `_` under a table's path): analytics.spark does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spanlake.storage.layout import PARQUET_SUFFIX, DataDir, PartitionKey
from spanlake.storage.objectstore import FileEntry
from spanlake.storage.schema import Table
from spanlake.storage.schema_steps import parquet_rows

LATE_DIR = "_late"
LATE_HIVE_TYPES = "{'project': VARCHAR}"
MAX_HOUR_FILES = 24  # hour partitions one written part may open (per table); the rest go late
FOLD_MIN_ROWS = 1000  # compaction gives a late hour its own partition from this many rows
TIME_COLUMNS = (pa.field("date", pa.date32(), nullable=False), pa.field("hour", pa.int32(), nullable=False))

Columns = Mapping[str, list[Any]]
# A covered partition: (project, date, hour) of rows in the late area.
Hour = tuple[str, date, int]


def late_prefix(table: Table) -> str:
    """The late area of a table, relative to the lake root."""
    return f"{LATE_DIR}/{table.name}"


def late_rel(table: Table, project: str, file_name: str) -> str:
    return f"{late_prefix(table)}/project={project}/{file_name}"


def late_schema(table: Table) -> pa.Schema:
    """Schema of a late file: the table's columns plus stored `date` and `hour`."""
    schema = table.arrow_schema
    return pa.schema([*TIME_COLUMNS, *schema], metadata=schema.metadata)


def split_batch(
    batch: Mapping[PartitionKey, Columns], max_hours: int | None
) -> tuple[dict[PartitionKey, Columns], dict[str, dict[PartitionKey, Columns]]]:
    """Split a batch into (rows for their hour partitions, late rows by project).

    At most `max_hours` partitions keep their own file (None: no limit): those with the
    most rows, then the newest. Deterministic, so a replayed WAL segment rewrites the same
    files.
    """
    if max_hours is None or len(batch) <= max_hours:
        return dict(batch), {}

    def rows(key: PartitionKey) -> int:
        return len(next(iter(batch[key].values()), []))

    ranked = sorted(batch, key=lambda k: (-rows(k), -k.date.toordinal(), -k.hour, k.project))
    hours = {k: batch[k] for k in ranked[:max_hours]}
    late: dict[str, dict[PartitionKey, Columns]] = {}
    for key in ranked[max_hours:]:
        late.setdefault(key.project, {})[key] = batch[key]
    return hours, late


def late_table(table: Table, parts: Mapping[PartitionKey, pa.Table]) -> pa.Table:
    """One late file's rows: each partition's rows with its `date` and `hour`, in time order."""
    schema = late_schema(table)
    pieces = []
    for key, data in parts.items():
        n = data.num_rows
        cols = [pa.array([key.date] * n, pa.date32()), pa.array([key.hour] * n, pa.int32()), *data.columns]
        pieces.append(pa.Table.from_arrays(cols, schema=schema))
    merged = pa.concat_tables(pieces)
    return merged.sort_by([(c, "ascending") for c in table.order_by])


def late_files(data_dir: DataDir, table: Table, project: str | None = None) -> list[FileEntry]:
    """Published late files of a table (of one project, or all), from one listing."""
    prefix = late_prefix(table) + (f"/project={project}" if project is not None else "")
    return [e for e in data_dir.store.list_files(prefix, PARQUET_SUFFIX) if e.rel.count("/") == 3]


def late_by_project(data_dir: DataDir, table: Table) -> dict[str, list[FileEntry]]:
    """Late files of a table by project."""
    out: dict[str, list[FileEntry]] = {}
    for e in late_files(data_dir, table):
        out.setdefault(e.rel.split("/")[2].removeprefix("project="), []).append(e)
    return out


def project_of(rel: str) -> str:
    """The project of a late file (`_late/<table>/project=<p>/<file>`)."""
    return rel.split("/")[2].removeprefix("project=")


def read_hours(data_dir: DataDir, rel: str) -> pa.Table:
    """The `date` and `hour` columns of one late file."""
    store = data_dir.store
    return pq.read_table(store.full(rel), columns=["date", "hour"], filesystem=store.filesystem)


def hours_by_file(data_dir: DataDir, files: list[FileEntry]) -> dict[FileEntry, set[Hour]]:
    """The (project, date, hour) of the rows of each of these late files.

    Reads two small columns of each file; the late area holds few files (compaction
    folds them), so this stays cheap. A file compacted away since the listing is left out
    (a query that lists it retries; see storage.reader).
    """
    out: dict[FileEntry, set[Hour]] = {}
    for f in files:
        project = project_of(f.rel)
        try:
            data = read_hours(data_dir, f.rel)
        except OSError:
            continue
        pairs = zip(data.column("date").to_pylist(), data.column("hour").to_pylist(), strict=True)
        out[f] = {(project, d, h) for d, h in set(pairs)}
    return out


def covered_hours(data_dir: DataDir, files: list[FileEntry]) -> set[Hour]:
    """The (project, date, hour) of every row in these late files."""
    return set().union(*hours_by_file(data_dir, files).values())


def late_by_hour(data_dir: DataDir, table: Table) -> dict[datetime, list[FileEntry]]:
    """UTC hour (all projects) → the late files of a local lake's table with rows of that hour."""
    out: dict[datetime, list[FileEntry]] = {}
    if data_dir.is_remote:
        return out
    for e, hours in hours_by_file(data_dir, late_files(data_dir, table)).items():
        for h in {datetime(d.year, d.month, d.day, hour, tzinfo=UTC) for _, d, hour in hours}:
            out.setdefault(h, []).append(e)
    return out


def late_covering(data_dir: DataDir, table: Table, hours: Collection[datetime]) -> list[str]:
    """Local paths of a table's late files with rows in any of these UTC hours."""
    by_hour = late_by_hour(data_dir, table)
    found = {e.rel for h in hours for e in by_hour.get(h, [])}
    return [str(data_dir.lake / rel) for rel in sorted(found)]


def partition_hour(rel_dir: str) -> Hour | None:
    """(project, date, hour) of a partition folder `…/project=P/date=D/hour=H` (None if not one)."""
    parts = rel_dir.rstrip("/").split("/")
    if len(parts) < 3:
        return None
    try:
        return (
            parts[-3].removeprefix("project="),
            date.fromisoformat(parts[-2].removeprefix("date=")),
            int(parts[-1].removeprefix("hour=")),
        )
    except ValueError:
        return None


def late_files_sql(table: Table, paths: list[str]) -> str:
    """SQL for every row of these local late files, columns in the views' order (partition keys first)."""
    names = ", ".join(c.name for c in table.all_columns)
    quoted = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    read = f"read_parquet([{quoted}], hive_partitioning = true, hive_types = {LATE_HIVE_TYPES}, union_by_name = true)"
    return f"SELECT {names} FROM {parquet_rows(table, read)}"
