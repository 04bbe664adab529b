"""Connections over a time window of the lake: views that read only the partitions of its hours or days.

Lake.connect() defines the views over every file of the lake, which reads every file's
footer, so its cost grows with the lake; a dashboard or API query needs a few days at most.
A windowed connection has the same views (storage.reader), defined over the partition
folders of the window only. On an object-storage lake (no folders to list cheaply) and
without a start it is the whole-lake connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from spanlake.storage.reader import (
    MACRO_DDL,
    METRICS_VIEW,
    Lake,
    fetch_arrow,
    local_span_sources,
    local_table_sql,
    names_derived_view,
    new_connection,
    retry_vanished,
    view_ddl,
)
from spanlake.storage.schema import LOGS, METRICS, SPANS, Table

MAX_HOURS = 72  # longer windows list whole days


def connect_window(
    lake: Lake, since: datetime | None, until: datetime | None, project: str | None = None, derived: bool = True
) -> duckdb.DuckDBPyConnection:
    """A lake connection whose `spans_raw`/`logs_raw`/`metrics_raw` read only the partitions of the hours
    (or days) [since, until] of `project` (all projects when None); the whole lake without
    `since` or on object storage. Other views (labels, dataset events) are empty; without `derived`,
    those of storage.reader.DERIVED_VIEWS are not defined."""
    dd = lake.data_dir
    if since is None or dd.is_remote:
        return lake.connect(derived)
    proj = f"project={project}" if project is not None else "project=*"
    patterns = partition_patterns(since, until)

    def dirs(table: Table) -> list[Path]:
        root = dd.lake / table.name
        return [d for pattern in patterns for d in root.glob(f"{proj}/{pattern}")]

    sources = local_span_sources(dd, dirs(SPANS), project)  # with the late area's rows (storage.late)
    sources[LOGS.name] = local_table_sql(dd, LOGS, dirs(LOGS), project)
    sources[METRICS.name] = local_table_sql(dd, METRICS, dirs(METRICS), project)
    con = new_connection()
    for stmt in view_ddl(dd, sources, derived):
        con.execute(stmt)
    return con


def connect_metrics(lake: Lake, project: str | None = None) -> duckdb.DuckDBPyConnection:
    """A connection with only the `metrics_raw` and `metrics` views (of `project`, or all) and the
    attribute macros: a metrics query never lists the span files. On object storage, the whole-lake
    connection."""
    dd = lake.data_dir
    if dd.is_remote:
        return lake.connect(derived=False)
    con = new_connection()
    for stmt in MACRO_DDL:
        con.execute(stmt)
    dirs = None if project is None else list((dd.lake / METRICS.name).glob(f"project={project}/date=*/hour=*"))
    con.execute(f"CREATE OR REPLACE VIEW metrics_raw AS {local_table_sql(dd, METRICS, dirs, project)}")
    con.execute(METRICS_VIEW)
    return con


def partition_patterns(since: datetime, until: datetime | None) -> list[str]:
    """`date=…/hour=…` globs of the hours (or, for long windows, days) from since to until."""
    until = until or datetime.now(UTC)
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if until - start <= timedelta(hours=MAX_HOURS):
        hours = int((until - start) / timedelta(hours=1)) + 1
        return [f"date={t:%Y-%m-%d}/hour={t:%H}" for t in (start + timedelta(hours=i) for i in range(hours))]
    days = (until.astimezone(UTC).date() - start.date()).days + 1
    return [f"date={start.date() + timedelta(days=i)}/hour=*" for i in range(days)]


def query_window(
    lake: Lake,
    sql: str,
    params: Mapping[str, Any] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    project: str | None = None,
) -> pa.Table:
    """Run `sql` on a connection over the window. Retried, like Lake.query, when compaction
    removed a file between listing and reading."""

    derived = names_derived_view(sql)

    def attempt() -> pa.Table:
        con = connect_window(lake, since, until, project, derived)
        try:
            return fetch_arrow(con, sql, dict(params or {}))
        finally:
            con.close()

    return retry_vanished(attempt)
