"""The trace-id index (rollup table `traces`): the hours each trace has spans in.

It finds the other hours a changed lake hour can affect (every report relates spans of one
trace only), the hours of traces that got new labels, and a bare trace link's hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics.rollups.tables import Table, hour_name, no_reach, parse_hour, rollup_dir
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, Params
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.analytics.traces.relation import run_on_lake
from spanlake.storage.layout import DataDir

TRACE_KEYS = ("project", "trace_id")


def build_traces(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """The trace-id index: each (project, trace_id) with spans starting in an hour, sorted by trace id."""

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        preds = []
        if f.since is not None:
            preds += [f"date >= {p.add(f.since.date())}", f"start_time >= {p.add(f.since)}"]
        if f.until is not None:
            preds += [f"date <= {p.add(f.until.date())}", f"start_time < {p.add(f.until)}"]
        return f"""SELECT DISTINCT date_trunc('hour', start_time) AS hour, project, trace_id FROM spans_raw
        WHERE {" AND ".join(preds) or "TRUE"} ORDER BY hour, trace_id"""

    return run_on_lake(an, sql, (f.since, f.until, f.project))


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
    index = sorted((rollup_dir(an.lake.data_dir) / "traces").glob("*.parquet"))
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
    index_dir = rollup_dir(dd) / "traces"
    if among is None:
        index = [str(f) for f in sorted(index_dir.glob("*.parquet")) if parse_hour(f.stem) not in changed]
    else:
        index = [str(f) for f in (index_dir / f"{hour_name(h)}.parquet" for h in sorted(among - changed)) if f.exists()]
    if not spans or not index:
        return set()
    con = duckdb.connect(":memory:")
    try:
        sql = """
          WITH n AS (SELECT DISTINCT project, trace_id
                     FROM read_parquet($spans, hive_partitioning = true, union_by_name = true))
          SELECT DISTINCT epoch_us(i.hour) FROM read_parquet($index) i SEMI JOIN n USING (project, trace_id)"""
        rows = con.execute(sql, {"spans": spans, "index": index}).fetchall()
    finally:
        con.close()
    return {datetime.fromtimestamp(r[0] / 1e6, UTC) for r in rows}


def trace_hours(an: Analytics, trace_id: str, project: str | None = None) -> list[datetime]:
    """The hours a trace has spans in, from the trace-id index (empty when not indexed yet)."""
    files = sorted((rollup_dir(an.lake.data_dir) / "traces").glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect(":memory:")
    try:
        where = "trace_id = $t" + (" AND project = $p" if project is not None else "")
        params: dict[str, Any] = {"files": [str(f) for f in files], "t": trace_id.strip().lower()}
        if project is not None:
            params["p"] = project
        sql = f"SELECT DISTINCT epoch_us(hour) FROM read_parquet($files) WHERE {where} ORDER BY 1"
        return [datetime.fromtimestamp(r[0] / 1e6, UTC) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()
