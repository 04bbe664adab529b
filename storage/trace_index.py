"""The trace-id index: which UTC hours each (project, trace_id) has spans starting in.

A trace's spans are partitioned by their own start hour, so a bare trace id (a shared link)
names no partition; the index turns it into the few hours to read. It is one Parquet file
per hour under `<data_dir>/rollups/traces/<YYYYMMDDTHH>.parquet` with the rows of
`index_rows` for that hour (hour, project, trace_id, sorted by trace id). The hourly rollup
job (analytics.rollups) writes and refreshes those files beside its other tables, and uses
them to find the hours a late span can change; readers here never depend on it running: an
id not indexed yet has no hours, and the trace view then looks elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.window import query_window

INDEX_FOLDER = ("rollups", "traces")  # under the data directory (the rollup job's folder)


def index_dir(dd: DataDir) -> Path:
    """The folder of the index's hour files."""
    return dd.root.joinpath(*INDEX_FOLDER)


def index_files(dd: DataDir) -> list[Path]:
    """The index's hour files, oldest first."""
    return sorted(index_dir(dd).glob("*.parquet"))


def index_rows(lake: Lake, since: datetime | None, until: datetime | None, project: str | None = None) -> pa.Table:
    """The index rows of the spans starting in [since, until) (of `project`, else every
    project): each distinct (hour, project, trace_id), sorted by hour and trace id."""
    preds, params = [], {}
    if since is not None:
        preds += ["date >= $since_date", "start_time >= $since"]
        params.update(since_date=since.date(), since=since)
    if until is not None:
        preds += ["date <= $until_date", "start_time < $until"]
        params.update(until_date=until.date(), until=until)
    sql = f"""SELECT DISTINCT date_trunc('hour', start_time) AS hour, project, trace_id FROM spans_raw
    WHERE {" AND ".join(preds) or "TRUE"} ORDER BY hour, trace_id"""
    return query_window(lake, sql, params, since, until, project)


def trace_hours(dd: DataDir, trace_id: str, project: str | None = None) -> list[datetime]:
    """The hours a trace has spans in, from the index (empty when not indexed yet)."""
    files = index_files(dd)
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
