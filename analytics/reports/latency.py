"""Latency: tasks end to end and each step category — count, percentiles, errors, timeouts, retries, TTFT."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.query import (
    RAW_FILTER_COLUMNS,
    SPAN_DIMS,
    STEP_CATEGORIES,
    Filters,
    GroupBy,
    Params,
    SpanSource,
    dim_predicates,
)
from spanlake.analytics.reports.common import keys_select, latency_metrics, unpack_quantiles
from spanlake.analytics.tasks import TASK_DIMS, TaskOptions, task_ctes, task_source

DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version", "name")
DEFAULT_SLOW_MS = 5000.0
# A step repeats (or retries) the attempt of the same name under the same parent just before
# it, when that attempt started at most this long before it.
RETRY_LOOKBACK = timedelta(hours=1)


def steps_source(filters: Filters, group: GroupBy | None = None) -> SpanSource:
    """Step spans of the window and RETRY_LOOKBACK before it (for the attempt before each);
    dimension and attribute filters apply after attempts are matched (`steps_ctes`)."""
    return SpanSource(
        filters,
        group or GroupBy(),
        span_level_filters=False,
        widen_before=RETRY_LOOKBACK,
        categories=STEP_CATEGORIES,
        priced=False,
        outside_window_traces_only=True,
    )


def steps_ctes(filters: Filters, p: Params) -> str:
    """CTE `steps`: the window's step spans matching the filters, with `is_repeat`/`is_retry`."""
    preds = dim_predicates(filters, p, RAW_FILTER_COLUMNS)
    if filters.since is not None:
        preds.append(f"start_time >= {p.add(filters.since)}")
    if filters.attributes:
        preds.append("attr_match")
    lookback = p.add(int(RETRY_LOOKBACK / timedelta(microseconds=1)))
    return f"""attempts AS (
      SELECT *, lag(start_time) OVER w AS prev_start, lag(status_code) OVER w AS prev_status FROM sp
      WINDOW w AS (PARTITION BY project, trace_id, parent_span_id, name ORDER BY start_time, span_id)
    ),
    steps AS (
      SELECT * EXCLUDE (prev_start, prev_status),
        parent_span_id IS NOT NULL AND prev_start IS NOT NULL
          AND epoch_us(start_time) - epoch_us(prev_start) <= {lookback} AS is_repeat,
        parent_span_id IS NOT NULL AND prev_start IS NOT NULL
          AND epoch_us(start_time) - epoch_us(prev_start) <= {lookback} AND prev_status = 'ERROR' AS is_retry
      FROM attempts WHERE {" AND ".join(preds) or "TRUE"}
    )"""


def latency(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """One row per level ('task', then each step category) and group.

    Tasks are measured end to end (the task span's duration). Steps are spans of the
    categories in STEP_CATEGORIES. `slow_share` is the share of rows over `slow_ms`.
    `repeats` counts steps whose name ran under the same parent at most RETRY_LOOKBACK before
    (agent loops repeat legitimately); `retries` counts the repeats whose attempt just before
    failed (ERROR), whatever that attempt's model or prompt.
    `ttft_*` describe time to first token of streamed calls (spans that recorded it).
    """
    options = options or TaskOptions()
    task_group = GroupBy.parse(group_by, {k: TASK_DIMS[k] for k in DIMS}, bucket)
    span_group = GroupBy.parse(group_by, {k: SPAN_DIMS[k] for k in DIMS}, bucket)

    def task_body(p: Params) -> str:
        keys = keys_select(task_group, {k: TASK_DIMS[k] for k in DIMS})
        return (
            f"{task_ctes(filters, task_group, options, p)}\n"
            f"SELECT 'task' AS level, {keys}{latency_metrics(p, slow_ms)} FROM tasks GROUP BY ALL"
        )

    def step_body(p: Params) -> str:
        keys = keys_select(span_group, {k: SPAN_DIMS[k] for k in DIMS})
        return f"""{steps_ctes(filters, p)}
        SELECT category AS level, {keys}{latency_metrics(p, slow_ms)},
          count(time_to_first_token_ms) AS ttft_count,
          quantile_cont(time_to_first_token_ms, 0.5) AS ttft_p50_ms,
          quantile_cont(time_to_first_token_ms, 0.95) AS ttft_p95_ms,
          count(*) FILTER (WHERE is_repeat) AS repeats,
          count(*) FILTER (WHERE is_retry) AS retries
        FROM steps GROUP BY ALL"""

    tasks = an.run(task_source(filters, task_group, options, priced=False), task_body)
    steps = an.run(steps_source(filters, span_group), step_body)
    return _order(unpack_quantiles(pl.concat([tasks, steps], how="diagonal_relaxed")), span_group.names)


def _order(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if df.height == 0:
        return df
    rank = {name: i for i, name in enumerate(("task", *STEP_CATEGORIES))}
    df = df.with_columns(pl.col("level").replace_strict(rank, default=99).alias("_rank"))
    return df.sort(["_rank", *keys], nulls_last=True).drop("_rank")
