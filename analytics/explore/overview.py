"""The overview: task figures for a window, their trend, and the change against the
window just before it — one pass over the lake's priced spans of both windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.explore.filters import HORIZON, SKEW
from spanlake.analytics.explore.relation import SP_SRC, priced_ctes, run_on_lake, trace_cte
from spanlake.analytics.query import BUCKETS, Filters, Params, SpanSource
from spanlake.analytics.reports.cost import TASK_COST_METRICS

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

    def change(self, metric: str) -> float | None:
        """current - previous for a metric (None when either is unknown)."""
        a, b = self.previous.get(metric), self.current.get(metric)
        if isinstance(a, int | float) and isinstance(b, int | float):
            return b - a
        return None


OVERVIEW_NAMES = ("start_time", "task_span_id", "task_ms", "duration_ms", "service_name", "first_model",
                  "prompt_version", "outcome", "task_status", "root_status", "cost_usd", "unpriced_calls",
                  "validations", "validation_failures", "llm_calls", "input_tokens", "output_tokens")  # fmt: skip


def overview(an: Analytics, filters: Filters, *, bucket: str | None = None) -> Overview:
    """Tasks, success rate, cost, cost per successful task, p50/p95 task latency, error rate
    (task span ERROR) and validation failure rate (failed checks / checks in the tasks).

    One task per trace: its first task span, else its root (relation.py) — the same outcome
    rules, costs and metric definitions as analytics.tasks and the cost report, which agree
    whenever a trace holds one task (the SDK's usual shape); a trace with nested tasks counts
    once here. Traces whose root and task spans have not arrived are not counted yet.
    """
    bucket = bucket or pick_bucket(filters.since, filters.until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    since = filters.since
    if filters.since is not None and filters.until is not None:
        since = filters.since - (filters.until - filters.since)
    window = Filters(since=since, until=filters.until, project=filters.project)
    src = SpanSource(window, span_level_filters=False, widen_after=HORIZON, widen_before=SKEW)

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        preds = ["task_span_id IS NOT NULL"]
        if since is not None:
            preds.append(f"start_time >= {p.add(since)}")
        if filters.until is not None:
            preds.append(f"start_time < {p.add(filters.until)}")
        for col, value in (
            ("service_name", filters.service),
            ("first_model", filters.model),
            ("prompt_version", filters.prompt_version),
        ):
            if value is not None:
                preds.append(f"{col} = {p.add(value)}")
        period = "'current'"
        if filters.since is not None:
            period = f"CASE WHEN start_time >= {p.add(filters.since)} THEN 'current' ELSE 'previous' END"
        return f"""WITH {priced_ctes(con, an, src, p)},
        {SP_SRC},
        {trace_cte(OVERVIEW_NAMES)},
        tasks AS (
          SELECT *, coalesce(task_ms, duration_ms) AS task_duration_ms, {period} AS period,
            date_trunc('{bucket}', start_time) AS bucket
          FROM tr_all WHERE {" AND ".join(preds)}
        )
        SELECT period, bucket, GROUPING(bucket) = 1 AS is_total, {TASK_COST_METRICS},
          quantile_cont(task_duration_ms, 0.5) AS p50_ms,
          quantile_cont(task_duration_ms, 0.95) AS p95_ms,
          avg(CASE WHEN coalesce(task_status, root_status) = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate,
          sum(validation_failures) / nullif(sum(validations), 0) AS validation_failure_rate,
          sum(validations)::BIGINT AS validations,
          sum(validation_failures)::BIGINT AS validation_failures,
          sum(llm_calls)::BIGINT AS llm_calls,
          sum(input_tokens + output_tokens)::BIGINT AS tokens
        FROM tasks GROUP BY GROUPING SETS ((period), (period, bucket))"""

    lake_window = (since - SKEW if since else None, filters.until + HORIZON if filters.until else None, filters.project)
    df = run_on_lake(an, sql, lake_window)
    totals = {r["period"]: r for r in df.filter(pl.col("is_total")).to_dicts()}
    trend = df.filter(~pl.col("is_total") & (pl.col("period") == "current")).drop("period", "is_total").sort("bucket")
    empty = {"tasks": 0}
    return Overview(totals.get("current", empty), totals.get("previous", empty), trend, bucket)
