"""The overview: task figures for a window, their trend, and the change against the
window just before it — one pass over the lake's priced spans of both windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics.reports.cost import TASK_COST_METRICS
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import BUCKETS, Filters, Params, SpanSource
from spanlake.analytics.traces.filters import HORIZON, SKEW
from spanlake.analytics.traces.relation import SP_SRC, Window, priced_ctes, run_on_lake, trace_cte

METRICS = (
    "tasks",
    "success_rate",
    "task_cost_usd",
    "cost_per_successful_task",
    "p50_ms",
    "p95_ms",
    "error_rate",
    "validation_failure_rate",
)


def pick_bucket(since: datetime | None, until: datetime | None) -> str:
    """A trend bucket giving a readable number of points for the window."""
    if since is None or until is None:
        return "day"
    span = until - since
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=3):
        return "hour"
    return "day"


@dataclass(frozen=True)
class Overview:
    """Figures of the window (`current`), of the window of equal length before it
    (`previous`, empty without a start), and per time bucket of the window (`trend`)."""

    current: dict[str, Any]
    previous: dict[str, Any]
    trend: pl.DataFrame
    bucket: str
    source: str = "raw"  # raw | rollups | rollups+raw

    def change(self, metric: str) -> float | None:
        """current - previous for a metric (None when either is unknown)."""
        a, b = self.previous.get(metric), self.current.get(metric)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return b - a
        return None


OVERVIEW_NAMES = ("start_time", "task_start", "task_span_id", "task_ms", "duration_ms", "service_name",
                  "first_model", "prompt_version", "outcome", "task_status", "root_status", "cost_usd",
                  "unpriced_calls", "validations", "validation_failures", "llm_calls", "input_tokens",
                  "output_tokens")  # fmt: skip


def tasks_sql(
    con: duckdb.DuckDBPyConnection,
    an: Analytics,
    since: datetime | None,
    until: datetime | None,
    project: str | None,
    p: Params,
    more: str = "",
) -> str:
    """`WITH …, tasks AS (…)`: one task per trace whose task span started in [since, until),
    with `task_duration_ms`, and the select items `more` (e.g. a period)."""
    window = Filters(since=since, until=until, project=project)
    src = SpanSource(window, span_level_filters=False, widen_after=HORIZON, widen_before=SKEW)
    preds = ["task_span_id IS NOT NULL"]
    if since is not None:
        preds.append(f"task_start >= {p.add(since)}")
    if until is not None:
        preds.append(f"task_start < {p.add(until)}")
    return f"""WITH {priced_ctes(con, an, src, p)},
        {SP_SRC},
        {trace_cte(OVERVIEW_NAMES)},
        tasks AS (
          SELECT *, coalesce(task_ms, duration_ms) AS task_duration_ms{more}
          FROM tr_all WHERE {" AND ".join(preds)}
        )"""


def lake_window(since: datetime | None, until: datetime | None, project: str | None) -> Window:
    """The partitions the tasks of [since, until) are read from."""
    return (since - SKEW if since else None, until + HORIZON if until else None, project)


def overview(an: Analytics, filters: Filters, *, bucket: str | None = None, source: str = "auto") -> Overview:
    """Tasks, success rate, cost, cost per successful task, p50/p95 task latency, error rate
    (task span ERROR) and validation failure rate (failed checks / checks in the tasks).

    One task per trace: its first task span, else its root (relation.py) — the same outcome
    rules, costs and metric definitions as analytics.task_outcomes and the cost report, which agree
    whenever a trace holds one task (the SDK's usual shape); a trace with nested tasks counts
    once here. A trace counts in the window its task span starts in; traces whose root and
    task spans have not arrived are not counted yet.

    `source`: 'auto' reads hourly rollups where they are up to date (analytics.rollups;
    percentiles then within sketch.ALPHA), 'raw' reads spans only. `Overview.source` says which.
    """
    bucket = bucket or pick_bucket(filters.since, filters.until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    if source == "auto":
        from spanlake.analytics.rollup_reports import overview_from_rollups

        rolled = overview_from_rollups(an, filters, bucket)
        if rolled is not None:
            return rolled
    elif source != "raw":
        raise ValueError("source must be auto or raw")
    since = filters.since
    if filters.since is not None and filters.until is not None:
        since = filters.since - (filters.until - filters.since)

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        preds = ["TRUE"]
        for col, value in (
            ("service_name", filters.service),
            ("first_model", filters.model),
            ("prompt_version", filters.prompt_version),
        ):
            if value is not None:
                preds.append(f"{col} = {p.add(value)}")
        period = "'current'"
        if filters.since is not None:
            period = f"CASE WHEN task_start >= {p.add(filters.since)} THEN 'current' ELSE 'previous' END"
        more = f", {period} AS period, date_trunc('{bucket}', task_start) AS bucket"
        return f"""{tasks_sql(con, an, since, filters.until, filters.project, p, more)}
        SELECT period, bucket, GROUPING(bucket) = 1 AS is_total, {TASK_COST_METRICS},
          quantile_cont(task_duration_ms, 0.5) AS p50_ms,
          quantile_cont(task_duration_ms, 0.95) AS p95_ms,
          avg(CASE WHEN coalesce(task_status, root_status) = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate,
          sum(validation_failures) / nullif(sum(validations), 0) AS validation_failure_rate,
          sum(validations)::BIGINT AS validations,
          sum(validation_failures)::BIGINT AS validation_failures,
          sum(llm_calls)::BIGINT AS llm_calls,
          sum(input_tokens + output_tokens)::BIGINT AS tokens
        FROM tasks WHERE {" AND ".join(preds)} GROUP BY GROUPING SETS ((period), (period, bucket))"""

    df = run_on_lake(an, sql, lake_window(since, filters.until, filters.project))
    totals = {r["period"]: r for r in df.filter(pl.col("is_total")).to_dicts()}
    trend = df.filter(~pl.col("is_total") & (pl.col("period") == "current")).drop("period", "is_total").sort("bucket")
    empty = {"tasks": 0}
    return Overview(totals.get("current", empty), totals.get("previous", empty), trend, bucket, "raw")
