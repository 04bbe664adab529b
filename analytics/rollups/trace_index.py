"""The trace-id index as the rollup table `traces` (rows and files: storage.trace_index).

It finds the other hours a changed lake hour can affect (every report relates spans of one
trace only) and the hours of traces that got new labels; storage.trace_index answers a
bare trace link's hours from the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics.rollups.tables import Table, hour_name, no_reach, parse_hour
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.storage.late import late_covering
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.trace_index import index_dir, index_files, index_rows

TRACE_KEYS = ("project", "trace_id")


def build_traces(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """The trace-id index (storage.trace_index): each (project, trace_id) with spans starting in an hour."""
    return pl.from_arrow(index_rows(an.lake, f.since, f.until, f.project))  # type: ignore[return-value]


TRACES = Table("traces", TRACE_KEYS, build_traces, no_reach)


def hour_files(dd: DataDir, h: datetime) -> list[Path]:
    """The span files of lake hour `h`, all projects."""
    root = dd.lake / "spans"
    out: list[Path] = []
    for hour in {f"{h.hour:02d}", str(h.hour)}:
        out += root.glob(f"project=*/date={h.date().isoformat()}/hour={hour}/*.parquet")
    return out


def labelled_hours(an: Analytics, state: dict[str, Any], labels: dict[str, str]) -> set[datetime] | None:
    """Hours holding traces that got labels since `state` (via the trace-id index).

    Label files that disappeared are not looked at: compaction merges them into a new file
    (looked up as new), and retention deletes a label partition only after the older span
    partitions of the traces it labelled (the same rules apply to every table by date), so
    their hours are gone already. The result is never None today; None would mean "all"."""
    old: dict[str, str] = state.get("labels", {})
    new = [name for name, sig in labels.items() if old.get(name) != sig]
    index = index_files(an.lake.data_dir)
    if not new or not index:
        return set()
    root = an.lake.data_dir.lake / "labels"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        files = [str(root / n) for n in new]
        sql = """
          WITH l AS (SELECT DISTINCT project, lower(trace_id) AS trace_id
                     FROM read_parquet($files, hive_partitioning = true, union_by_name = true))
          SELECT DISTINCT epoch_us(i.hour) FROM read_parquet($index) i SEMI JOIN l USING (project, trace_id)"""
        rows = con.execute(sql, {"files": files, "index": [str(f) for f in index]}).fetchall()
    finally:
        con.close()
    return {datetime.fromtimestamp(r[0] / 1e6, UTC) for r in rows}


def linked_hours(an: Analytics, changed: set[datetime], among: set[datetime] | None = None) -> set[datetime]:
    """Indexed hours (of `among`, default all) holding traces that have spans in the `changed`
    lake hours: the only other hours whose rows those spans can change, since every report
    relates spans of one trace only (a task and its spans, a step and the attempt before it,
    a check and its task)."""
    dd = an.lake.data_dir
    spans = [str(f) for c in changed for f in hour_files(dd, c)]
    if among is None:
        index = [str(f) for f in index_files(dd) if parse_hour(f.stem) not in changed]
    else:
        folder = index_dir(dd)
        index = [str(f) for f in (folder / f"{hour_name(h)}.parquet" for h in sorted(among - changed)) if f.exists()]
    late = late_covering(dd, SPANS, changed)
    if not (spans or late) or not index:
        return set()
    params: dict[str, list[str]] = {"index": index}
    sources = []
    if spans:
        params["spans"] = spans
        sources.append(
            "SELECT project, trace_id FROM read_parquet($spans, hive_partitioning = true, union_by_name = true)"
        )
    if late:
        params["late"] = late
        sources.append(
            "SELECT project, trace_id FROM read_parquet($late, hive_partitioning = true, "
            "hive_types = {'project': VARCHAR}, union_by_name = true)"
        )
    con = duckdb.connect(":memory:")
    try:
        sql = f"""
          WITH n AS (SELECT DISTINCT project, trace_id FROM ({" UNION ALL ".join(sources)}))
          SELECT DISTINCT epoch_us(i.hour) FROM read_parquet($index) i SEMI JOIN n USING (project, trace_id)"""
        rows = con.execute(sql, params).fetchall()
    finally:
        con.close()
    return {datetime.fromtimestamp(r[0] / 1e6, UTC) for r in rows}
