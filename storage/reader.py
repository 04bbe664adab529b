"""Query the lake with DuckDB: the one entry point every process uses to read spans.

Each caller gets its own in-memory DuckDB connection with views over the Parquet files;
no database file is opened, so readers never wait on the collector or on each other.

A local lake is read with DuckDB's own `read_parquet` over a glob. A lake on object
storage is read through `pyarrow.dataset` (hive partitioning, `pyarrow.fs.S3FileSystem`)
registered in the connection; DuckDB pushes projections and filters (partition keys
included) into the Arrow scan. The views are the same either way.

Every view includes the rows of the late-arrival area (storage.late) with the table's.

Views:
  spans_raw, logs_raw, metrics_raw
                       every stored row, including re-sent duplicates
  spans_raw_once       the rows of spans_raw known to be distinct (see split_unique_files)
  spans_raw_rest       the other rows of spans_raw (de-duplicate these)
  spans                one row per (project, trace_id, span_id), plus duration_ms, is_root
  logs                 one row per distinct log record
  metrics              one row per distinct metric data point (project, point_id)
  duplicate_calls      one row per LLM span of a call that another span of it counts
                       (project, trace_id, span_id, parent_span_id, duplicate_of: storage.call_pairs)
  labels               one row per label event (feedback, reviews, judges); history kept
  dataset_events       one row per dataset membership event (dataset_events_raw: as stored)
  traces               one row per trace (see storage.schema.TRACES_COLUMNS); a duplicate call
                       counts in neither llm_calls nor the token sums
Lake.query and storage.window.query_window define duplicate_calls and traces (DERIVED_VIEWS)
only for SQL that names them, and spanlake's own readers (reports, trace list and detail),
whose SQL never does, connect with derived=False: DuckDB binds a view when it is defined, and
these two are about half the cost of a connection.
Macros:
  attr(json, key)      value of the attribute named exactly `key` in a JSON object column, as JSON
  attr_str(json, key)  the same as text
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from spanlake.storage.call_pairs import duplicates_sql
from spanlake.storage.late import (
    Hour,
    covered_hours,
    late_files,
    late_files_sql,
    late_prefix,
    late_schema,
    partition_hour,
)
from spanlake.storage.layout import COMPACTED_PREFIX, PARQUET_SUFFIX, DataDir
from spanlake.storage.objectstore import FileEntry
from spanlake.storage.schema import DATASET_EVENTS, LABELS, LOGS, METRICS, SPANS, Table
from spanlake.storage.schema_steps import duckdb_type, parquet_rows

HIVE_TYPES = "{'project': VARCHAR, 'date': DATE, 'hour': INTEGER}"
ROOT_PREDICATE = "(parent_span_id IS NULL OR (coalesce(flags, 0) & 768) = 768)"  # 768: parent is remote
GENAI_CATEGORIES = "('llm', 'embedding')"
# Each metric data point once: a re-sent request repeats its points' ids.
METRICS_VIEW = "CREATE OR REPLACE VIEW metrics AS SELECT DISTINCT ON (project, point_id) * FROM metrics_raw"
COUNTED = "duplicate_of IS NULL"  # not a second span of a call another span counts (storage.call_pairs)
GENAI_CALL = f"(category IN {GENAI_CATEGORIES} AND {COUNTED})"

# Files can vanish between DuckDB listing and opening them when compaction replaces them
# (DuckDB lists them while binding the views, opens them while executing). The query is
# then run again on a fresh listing, which sees the compacted file instead.
_RETRYABLE = ("No files found", "No such file", "Cannot open file", "Could not open file")
# The same through an Arrow dataset on object storage (DuckDB wraps pyarrow's error).
_RETRYABLE_REMOTE = ("NO_SUCH_KEY", "Path does not exist", "Could not open Parquet input source")
T = TypeVar("T")
RETRY_FOR_S = 10.0
_FIRST_DELAY_S = 0.01
_MAX_DELAY_S = 0.5


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> pa.Table:
    """Run `sql` and return an Arrow table (an empty one for statements without a result)."""
    rel = con.sql(sql, params=params)
    if rel is None:
        return pa.table({})
    fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # renamed in DuckDB 2
    return fetch()


def is_vanished_file_error(e: Exception) -> bool:
    """True for the errors DuckDB raises when a listed Parquet file was deleted before it was read."""
    if isinstance(e, duckdb.IOException) and any(s in str(e) for s in _RETRYABLE):
        return True
    return isinstance(e, duckdb.Error) and any(s in str(e) for s in _RETRYABLE_REMOTE)


def retry_vanished(attempt: Callable[[], T]) -> T:
    """Run `attempt` again (for up to RETRY_FOR_S, backing off) while it fails because a Parquet
    file it listed was removed (by compaction or retention) before it was read. Each attempt
    lists the files anew, so it must open its own connection."""
    deadline = time.monotonic() + RETRY_FOR_S
    delay = _FIRST_DELAY_S
    while True:
        try:
            return attempt()
        except duckdb.Error as e:
            if not is_vanished_file_error(e) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY_S)


def _empty_select(table: Table) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in table.all_columns)
    return f"SELECT {cols} WHERE false"


# An attribute is looked up by its exact key through a JSON Pointer (RFC 6901), in which only
# '~' and '/' need escaping ('~0', '~1'): any key (quotes, backslashes, dots, brackets, '$',
# NUL, the empty key) names one member and never a path into nested values.
KEY_POINTER_SQL = "'/' || replace(replace(k, '~', '~0'), '/', '~1')"
MACRO_DDL = (
    f"CREATE OR REPLACE MACRO attr(j, k) AS json_extract(j, {KEY_POINTER_SQL})",
    f"CREATE OR REPLACE MACRO attr_str(j, k) AS json_extract_string(j, {KEY_POINTER_SQL})",
)


def _has_files(glob: str) -> bool:
    root = Path(glob.split("/project=*")[0])
    return root.is_dir() and any(root.glob("project=*/date=*/hour=*/*.parquet"))


def split_unique_files(paths: Iterable[str], covered: Collection[Hour] = ()) -> tuple[list[str], list[str]]:
    """Split a table's files into (files whose rows are known distinct, the rest), in order.

    A re-sent span lands in the partition of its start time, or in the late area with that
    partition's date and hour, so duplicates only ever share a partition (counting the
    late rows of its hour). A partition whose only file the compactor wrote holds each span
    once (it merges with DISTINCT ON), so its rows need no de-duplication unless the late
    area has rows of its hour (`covered`: their (project, date, hour)); any other partition
    may repeat a span (re-sent into two flushed files, or arriving after the merge). Readers
    de-duplicate only the rest, which is what keeps whole-lake reports cheap.
    """
    by_dir: dict[str, list[str]] = {}
    for path in paths:
        by_dir.setdefault(path.rsplit("/", 1)[0], []).append(path)
    once: list[str] = []
    rest: list[str] = []
    for folder, files in by_dir.items():
        merged = len(files) == 1 and files[0].rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX)
        if merged and not (covered and partition_hour(folder) in covered):
            once += files
        else:
            rest += files
    return once, rest


def local_files(data_dir: DataDir, table: Table, dirs: Iterable[Path] | None = None) -> list[str]:
    """Published files of a local lake's table (in the given partition directories, or all)."""
    if dirs is None:
        dirs = (data_dir.lake / table.name).glob("project=*/date=*/hour=*")
    return sorted(str(f) for d in dirs for f in d.glob(f"*{PARQUET_SUFFIX}"))


def files_sql(table: Table, files: list[str]) -> str:
    """SQL for every row of these local Parquet files of a table (an empty typed relation for none)."""
    if not files:
        return _empty_select(table)
    names = ", ".join(c.name for c in table.all_columns)
    quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)  # a path may hold a quote
    read = f"read_parquet([{quoted}], hive_partitioning = true, hive_types = {HIVE_TYPES}, union_by_name = true)"
    return f"SELECT {names} FROM {parquet_rows(table, read)}"


def _union(table: Table, parts: list[str]) -> str:
    return " UNION ALL ".join(parts) if parts else _empty_select(table)


def local_table_sql(
    data_dir: DataDir, table: Table, dirs: Iterable[Path] | None = None, project: str | None = None
) -> str:
    """SQL for the rows of a local lake's table: the files of these partition directories
    (or all) and the table's late area (of `project`, or all)."""
    files = local_files(data_dir, table, dirs)
    late = [str(data_dir.lake / e.rel) for e in late_files(data_dir, table, project)]
    return _union(table, ([files_sql(table, files)] if files else []) + ([late_files_sql(table, late)] if late else []))


def local_span_sources(
    data_dir: DataDir, dirs: Iterable[Path] | None = None, project: str | None = None
) -> dict[str, str]:
    """The `spans_raw_once` and `spans_raw_rest` sources over a local lake's span files
    (of these partition directories, or all) and its late span files (of `project`, or all)."""
    late = late_files(data_dir, SPANS, project)
    once, rest = split_unique_files(local_files(data_dir, SPANS, dirs), covered_hours(data_dir, late))
    rest_sql = [files_sql(SPANS, rest)] if rest else []
    if late:
        rest_sql.append(late_files_sql(SPANS, [str(data_dir.lake / e.rel) for e in late]))
    return {"spans_raw_once": files_sql(SPANS, once), "spans_raw_rest": _union(SPANS, rest_sql)}


def arrow_dataset(data_dir: DataDir, table: Table, files: list[str] | None = None) -> pads.Dataset | None:
    """A table of a lake on object storage as a hive-partitioned Arrow dataset (None if it has no files).

    `files` are full paths in the store (default: every published file of the table). The
    schema is the declared one, so files written before a column existed read it as NULL.
    """
    store = data_dir.store
    root = store.full(table.name)
    if files is None:
        files = remote_files(data_dir, table)
    if not files:
        return None
    part_schema = pa.schema([pa.field(c.name, c.type) for c in table.partitions])
    schema = pa.schema([*part_schema, *table.arrow_schema])
    partitioning = pads.partitioning(part_schema, flavor="hive")
    return pads.dataset(
        files,
        schema=schema,
        format="parquet",
        filesystem=store.filesystem,
        partitioning=partitioning,
        partition_base_dir=root,
    )


def remote_files(data_dir: DataDir, table: Table) -> list[str]:
    """Full store paths of a table's published files on object storage."""
    store = data_dir.store
    return [f"{store.base}/{e.rel}" for e in store.list_files(table.name, PARQUET_SUFFIX) if e.rel.count("/") == 4]


def late_dataset(data_dir: DataDir, table: Table, entries: list[FileEntry]) -> pads.Dataset | None:
    """A table's late files on object storage as an Arrow dataset (None for none)."""
    if not entries:
        return None
    store = data_dir.store
    part_schema = pa.schema([pa.field("project", pa.string())])
    return pads.dataset(
        [store.full(e.rel) for e in entries],
        schema=pa.schema([*part_schema, *late_schema(table)]),
        format="parquet",
        filesystem=store.filesystem,
        partitioning=pads.partitioning(part_schema, flavor="hive"),
        partition_base_dir=store.full(late_prefix(table)),
    )


def remote_source_sql(name: str, table: Table, has_files: bool) -> str:
    """SQL over a registered Arrow dataset `name` (or an empty typed relation)."""
    if not has_files:
        return _empty_select(table)
    return f"SELECT {', '.join(c.name for c in table.all_columns)} FROM {name}"


def source_sql(data_dir: DataDir, table: Table) -> str:
    """SQL for every stored row of a local lake's table, late area included (an empty typed
    relation when there are none)."""
    glob = data_dir.table_glob(table.name)
    parts = []
    if _has_files(glob):
        names = ", ".join(c.name for c in table.all_columns)
        quoted = glob.replace("'", "''")  # a data directory may have a quote in its path
        read = f"read_parquet('{quoted}', hive_partitioning = true, hive_types = {HIVE_TYPES}, union_by_name = true)"
        parts.append(f"SELECT {names} FROM {parquet_rows(table, read)}")
    late = [str(data_dir.lake / e.rel) for e in late_files(data_dir, table)]
    if late:
        parts.append(late_files_sql(table, late))
    return _union(table, parts)


def view_ddl(data_dir: DataDir, sources: dict[str, str] | None = None, derived: bool = True) -> list[str]:
    """The statements that define spanlake's views over a data directory.

    `sources` maps a raw view (`spans_raw_once`, `spans_raw_rest`) or a table name to the
    SQL of its rows (default: the local lake's files). Without `derived`, the views of
    DERIVED_VIEWS are left out: they come last, and binding them (which DuckDB does when a
    view is defined) is about half the cost of a connection.
    """
    sources = dict(sources or {})
    if "spans_raw_once" not in sources:
        sources.update(local_span_sources(data_dir))
    logs_sql = sources.get(LOGS.name) or source_sql(data_dir, LOGS)
    labels_sql = sources.get(LABELS.name) or source_sql(data_dir, LABELS)
    datasets_sql = sources.get(DATASET_EVENTS.name) or source_sql(data_dir, DATASET_EVENTS)
    metrics_sql = sources.get(METRICS.name) or source_sql(data_dir, METRICS)
    return [
        *MACRO_DDL,  # first: views use them
        f"CREATE OR REPLACE VIEW spans_raw_once AS {sources['spans_raw_once']}",
        f"CREATE OR REPLACE VIEW spans_raw_rest AS {sources['spans_raw_rest']}",
        "CREATE OR REPLACE VIEW spans_raw AS SELECT * FROM spans_raw_once UNION ALL SELECT * FROM spans_raw_rest",
        f"CREATE OR REPLACE VIEW logs_raw AS {logs_sql}",
        f"CREATE OR REPLACE VIEW labels_raw AS {labels_sql}",
        # Label events, each once (history kept: the latest per trace/span/source/author is current).
        # A label_id written twice keeps its first copy: an evaluator version judging a target
        # again (same deterministic id, evaluators/result.py) does not replace its first result.
        "CREATE OR REPLACE VIEW labels AS SELECT DISTINCT ON (project, label_id) * FROM labels_raw "
        "ORDER BY project, label_id, ingested_at",
        f"CREATE OR REPLACE VIEW dataset_events_raw AS {datasets_sql}",
        # Dataset membership events, each once (docs/datasets.md: the latest per item decides).
        "CREATE OR REPLACE VIEW dataset_events AS SELECT DISTINCT ON (project, event_id) * FROM dataset_events_raw",
        f"CREATE OR REPLACE VIEW spans AS SELECT *, duration_ns / 1e6 AS duration_ms, {ROOT_PREDICATE} AS is_root "
        "FROM (SELECT * FROM spans_raw_once UNION ALL "
        "SELECT DISTINCT ON (project, trace_id, span_id) * FROM spans_raw_rest)",
        "CREATE OR REPLACE VIEW logs AS SELECT DISTINCT ON (project, record_id) * FROM logs_raw",
        f"CREATE OR REPLACE VIEW metrics_raw AS {metrics_sql}",
        METRICS_VIEW,
    ] + (_derived_ddl() if derived else [])


# Views over whole traces, defined last; Lake.query defines them only for SQL that names them.
DERIVED_VIEWS = ("duplicate_calls", "traces")
_DERIVED_RE = re.compile(r"\b(?:" + "|".join(DERIVED_VIEWS) + r")\b", re.IGNORECASE)


def _derived_ddl() -> list[str]:
    return [
        f"CREATE OR REPLACE VIEW duplicate_calls AS {duplicates_sql()}",
        f"""CREATE OR REPLACE VIEW traces AS
        SELECT project, trace_id,
          any_value(span_id) FILTER (WHERE is_root) AS root_span_id,
          any_value(name) FILTER (WHERE is_root) AS root_name,
          coalesce(any_value(service_name) FILTER (WHERE is_root), any_value(service_name)) AS service_name,
          min(start_time) AS start_time,
          max(end_time) AS end_time,
          coalesce(any_value(duration_ms) FILTER (WHERE is_root),
                   date_diff('microsecond', min(start_time), max(end_time)) / 1000.0) AS duration_ms,
          count(*) AS span_count,
          count(*) FILTER (WHERE category = 'llm' AND {COUNTED}) AS llm_calls,
          coalesce(sum(input_tokens) FILTER (WHERE {GENAI_CALL}), 0)::BIGINT AS input_tokens,
          coalesce(sum(output_tokens) FILTER (WHERE {GENAI_CALL}), 0)::BIGINT AS output_tokens,
          coalesce(sum(total_tokens) FILTER (WHERE {GENAI_CALL}), 0)::BIGINT AS total_tokens,
          bool_or(status_code = 'ERROR') AS has_error,
          bool_or(is_root) AS is_complete
        FROM (SELECT s.*, d.duplicate_of FROM spans s LEFT JOIN duplicate_calls d
              ON d.project = s.project AND d.trace_id = s.trace_id AND d.span_id = s.span_id)
        GROUP BY project, trace_id""",
    ]


def new_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC that reads each Parquet footer once.

    Defining the views binds every view over the span files, and each binding of a view
    that names another reads their footers again; the metadata cache makes the later ones
    free (a connection lives for one caller's queries, over files that are never rewritten
    in place)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET parquet_metadata_cache = true")
    return con


def names_derived_view(sql: str) -> bool:
    """Whether `sql` may read a view of DERIVED_VIEWS (a word match: a false yes only costs time)."""
    return _DERIVED_RE.search(sql) is not None


class Lake:
    """Read access to one data directory's lake."""

    def __init__(self, data_dir: str | Path | DataDir, lake: str | Path | None = None) -> None:
        """`lake`: where the lake is, when not in the data directory (a folder or `s3://bucket/prefix`)."""
        self.data_dir = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir, lake)

    def connect(self, derived: bool = True) -> duckdb.DuckDBPyConnection:
        """A new in-memory DuckDB connection with the views defined (cheap; one per caller);
        without `derived`, the views of DERIVED_VIEWS are left out."""
        con = new_connection()
        sources: dict[str, str] = {}
        if self.data_dir.is_remote:
            sources = self._remote_sources(con)
        for stmt in view_ddl(self.data_dir, sources, derived):
            con.execute(stmt)
        return con

    def _remote_sources(self, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """Register Arrow datasets over a lake on object storage; returns the views' sources."""
        dd = self.data_dir
        sources: dict[str, str] = {}

        def register(name: str, table: Table, dataset: pads.Dataset | None) -> str | None:
            if dataset is None:
                return None
            con.register(name, dataset)
            return remote_source_sql(name, table, True)

        for table in (SPANS, LOGS, LABELS, DATASET_EVENTS, METRICS):
            late_entries = late_files(dd, table)
            late = register(f"_{table.name}_late_dataset", table, late_dataset(dd, table, late_entries))
            if table is SPANS:
                once, rest = split_unique_files(remote_files(dd, SPANS), covered_hours(dd, late_entries))
                once_sql = register("_spans_raw_once_dataset", SPANS, arrow_dataset(dd, SPANS, once))
                rest_sql = register("_spans_raw_rest_dataset", SPANS, arrow_dataset(dd, SPANS, rest))
                sources["spans_raw_once"] = once_sql or _empty_select(SPANS)
                sources["spans_raw_rest"] = _union(SPANS, [s for s in (rest_sql, late) if s])
            else:
                own = register(f"_{table.name}_dataset", table, arrow_dataset(dd, table))
                sources[table.name] = _union(table, [s for s in (own, late) if s])
        return sources

    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run SQL over the views and return an Arrow table.

        Retries (for up to RETRY_FOR_S) when a file it listed was removed by compaction
        before it could be read; the views are re-created each attempt, since defining
        them already reads every file's footer.
        """

        derived = names_derived_view(sql)

        def attempt() -> pa.Table:
            con = self.connect(derived)
            try:
                return fetch_arrow(con, sql, params)
            finally:
                con.close()

        return retry_vanished(attempt)

    def query_polars(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """Run SQL over the views and return a Polars DataFrame."""
        return pl.from_arrow(self.query(sql, params))
