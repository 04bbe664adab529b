"""The overview: task figures for a window, their trend, and the change against the
window just before it — one pass over the lake with the analytics task relation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.query import BUCKETS, Filters, GroupBy, Params
from spanlake.analytics.reports.cost import TASK_COST_METRICS
from spanlake.analytics.tasks import TaskOptions, task_ctes, task_source

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


def overview(
    an: Analytics, filters: Filters, *, bucket: str | None = None, options: TaskOptions | None = None
) -> Overview:
    """Tasks, success rate, cost, cost per successful task, p50/p95 task latency, error rate
    (task span ERROR) and validation failure rate (failed checks / checks inside the tasks),
    as defined by analytics.tasks and the cost report."""
    options = options or TaskOptions()
    bucket = bucket or pick_bucket(filters.since, filters.until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    wide = filters
    if filters.since is not None and filters.until is not None:
        wide = Filters(**{**filters.__dict__, "since": filters.since - (filters.until - filters.since)})

    def body(p: Params) -> str:
        period = "'current'"
        if filters.since is not None:
            period = f"CASE WHEN start_time >= {p.add(filters.since)} THEN 'current' ELSE 'previous' END"
        return f"""{task_ctes(wide, GroupBy(), options, p)},
        marked AS (SELECT *, {period} AS period, date_trunc('{bucket}', start_time) AS bucket FROM tasks)
        SELECT period, bucket, GROUPING(bucket) = 1 AS is_total, {TASK_COST_METRICS},
          quantile_cont(duration_ms, 0.5) AS p50_ms,
          quantile_cont(duration_ms, 0.95) AS p95_ms,
          avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate,
          sum(validation_failures) / nullif(sum(validations), 0) AS validation_failure_rate,
          sum(validations)::BIGINT AS validations,
          sum(validation_failures)::BIGINT AS validation_failures,
          sum(llm_calls)::BIGINT AS llm_calls,
          sum(input_tokens + output_tokens)::BIGINT AS tokens
        FROM marked GROUP BY GROUPING SETS ((period), (period, bucket))"""

    df = an.run(task_source(wide, GroupBy(), options), body)
    totals = {r["period"]: r for r in df.filter(pl.col("is_total")).to_dicts()}
    trend = df.filter(~pl.col("is_total") & (pl.col("period") == "current")).drop("period", "is_total").sort("bucket")
    empty = {"tasks": 0}
    return Overview(totals.get("current", empty), totals.get("previous", empty), trend, bucket)
