"""The overview: task figures for a window, their trend, and the change against the
window just before it — one pass over the lake's priced spans of both windows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.reports.cost import TASK_COST_METRICS
from spanlake.analytics.reports.task_rollup import task_columns
from spanlake.analytics.rollups.read import agg, can_answer, ratio, read, source_of
from spanlake.analytics.rollups.tables import Table, hours, unpacked
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import BUCKETS, Filters, Params, SpanSource
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.analytics.traces.filters import HORIZON, SKEW
from spanlake.analytics.traces.relation import SP_SRC, Window, priced_ctes, run_on_lake, trace_cte
from spanlake.storage.call_pairs import PAIR_LOOKAHEAD

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
    task_name: str | None = None,
) -> str:
    """`WITH …, tasks AS (…)`: one task per trace whose task span started in [since, until),
    with `task_duration_ms`, and the select items `more` (e.g. a period). `task_name`: only
    traces whose task (first task span, else root) has that name (its task name, else span name)."""
    window = Filters(since=since, until=until, project=project)
    src = SpanSource(window, span_level_filters=False, widen_after=HORIZON, widen_before=SKEW)
    names = OVERVIEW_NAMES if task_name is None else (*OVERVIEW_NAMES, "task_name", "root_name")
    preds = ["task_span_id IS NOT NULL"]
    if task_name is not None:
        preds.append(f"coalesce(task_name, root_name) = {p.add(task_name)}")
    if since is not None:
        preds.append(f"task_start >= {p.add(since)}")
    if until is not None:
        preds.append(f"task_start < {p.add(until)}")
    return f"""WITH {priced_ctes(con, an, src, p)},
        {SP_SRC},
        {trace_cte(names)},
        tasks AS (
          SELECT *, coalesce(task_ms, duration_ms) AS task_duration_ms{more}
          FROM tr_all WHERE {" AND ".join(preds)}
        )"""


def lake_window(since: datetime | None, until: datetime | None, project: str | None) -> Window:
    """The partitions the tasks of [since, until) are read from (with the call pairing's reach at both ends)."""
    return (
        since - SKEW - PAIR_LOOKAHEAD if since else None,
        until + HORIZON + PAIR_LOOKAHEAD if until else None,
        project,
    )


def overview(an: Analytics, filters: Filters, *, bucket: str | None = None, source: str = "auto") -> Overview:
    """Tasks, success rate, cost, cost per successful task, p50/p95 task latency, error rate
    (task span ERROR) and validation failure rate (failed checks / checks in the tasks).

    One task per trace: its first task span, else its root (relation.py) — the same outcome
    rules, costs and metric definitions as analytics.task_outcomes and the cost report, which agree
    whenever a trace holds one task (the SDK's usual shape); a trace with nested tasks counts
    once here. A trace counts in the window its task span starts in; traces whose root and
    task spans have not arrived are not counted yet.

    `source`: 'auto' reads hourly rollups where they are up to date (analytics.rollups, table `overview`;
    percentiles then within sketch.ALPHA), 'raw' reads spans only. `Overview.source` says which.
    """
    bucket = bucket or pick_bucket(filters.since, filters.until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    if source == "auto":
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
        return f"""{tasks_sql(con, an, since, filters.until, filters.project, p, more, filters.task_name)}
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


# --- from hourly rollups ---------------------------------------------------------------------

OVERVIEW_KEYS = ("project", "service", "model", "prompt_version")


def build_overview(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """The overview's figures (one task per trace) per hour, service, first model, prompt version."""

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        aggregate = f"""SELECT date_trunc('hour', task_start) AS hour, project, service_name AS service,
          first_model AS model, prompt_version,
          count(*) AS tasks,
          count(*) FILTER (WHERE outcome = 'success') AS successful_tasks,
          count(*) FILTER (WHERE outcome = 'failure') AS failed_tasks,
          sum(cost_usd) AS task_cost_usd,
          coalesce(sum(unpriced_calls), 0)::BIGINT AS task_unpriced_calls,
          count(*) FILTER (WHERE coalesce(task_status, root_status) = 'ERROR') AS errors,
          coalesce(sum(validations), 0)::BIGINT AS validations,
          coalesce(sum(validation_failures), 0)::BIGINT AS validation_failures,
          coalesce(sum(llm_calls), 0)::BIGINT AS llm_calls,
          coalesce(sum(input_tokens + output_tokens), 0)::BIGINT AS tokens,
          {sketch.agg_sql("task_duration_ms", "dur")}
        FROM tasks GROUP BY ALL"""
        return f"{tasks_sql(con, an, f.since, f.until, f.project, p)},\n{unpacked(aggregate, 'dur')}"

    return run_on_lake(an, sql, lake_window(f.since, f.until, f.project))


OVERVIEW = Table(
    "overview",
    OVERVIEW_KEYS,
    build_overview,
    lambda o: (hours(SKEW), hours(HORIZON)),
    labels=True,
    filters=("project", "service", "prompt_version"),  # and model (the first model): no provider, prompt name
)
TOTALS = ("tasks", "successful_tasks", "failed_tasks", "success_rate", "task_cost_usd", "task_unpriced_calls",
          "cost_per_task", "cost_per_successful_task", "p50_ms", "p95_ms", "error_rate", "validation_failure_rate",
          "validations", "validation_failures", "llm_calls", "tokens")  # fmt: skip


def overview_from_rollups(an: Analytics, filters: Filters, bucket: str) -> Overview | None:
    """The overview from the `overview` rollup (None when it cannot answer)."""
    if filters.since is None or filters.until is None or bucket == "minute" or not can_answer(filters, (), bucket):
        return None
    span = filters.until - filters.since
    previous = replace(filters, since=filters.since - span, until=filters.since)
    windows = {"current": filters, "previous": previous}
    got = {k: read(an, OVERVIEW, f, None, None if bucket == "hour" else bucket) for k, f in windows.items()}
    if any(v is None for v in got.values()):
        return None
    tasks = pl.col("tasks").sum()
    exprs = [
        *task_columns(),
        ratio(pl.col("validation_failures").sum(), pl.col("validations").sum()).alias("validation_failure_rate"),
        (pl.col("errors").sum() / tasks).alias("error_rate"),
        *(pl.col(c).sum().alias(c) for c in ("validations", "validation_failures", "llm_calls", "tokens")),
    ]
    hist = [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))]
    totals: dict[str, dict[str, Any]] = {}
    for period, (df, _) in got.items():  # type: ignore[misc]
        if df.height and df["tasks"].sum() > 0:
            row = agg(df, [], exprs, hist).select(TOTALS).to_dicts()[0]
            totals[period] = {"period": period, "bucket": None, "is_total": True, **row}
    cur = got["current"][0]  # type: ignore[index]
    if cur.height:
        by_bucket = cur.rename({"hour": "bucket"}) if bucket == "hour" else cur.drop("hour").rename({bucket: "bucket"})
        trend = agg(by_bucket, ["bucket"], exprs, hist).select(["bucket", *TOTALS]).sort("bucket")
    else:
        trend = pl.DataFrame(schema={"bucket": pl.Datetime("us", "UTC")})
    empty = {"tasks": 0}
    src = source_of(*(v[1] for v in got.values()))  # type: ignore[index]
    return Overview(totals.get("current", empty), totals.get("previous", empty), trend, bucket, src)
