"""Latency: tasks end to end and each step category — count, percentiles, errors, timeouts, retries, TTFT."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.query import SPAN_DIMS, STEP_CATEGORIES, Filters, GroupBy, Params, SpanSource
from spanlake.analytics.reports.common import keys_select, latency_metrics, unpack_quantiles
from spanlake.analytics.tasks import TASK_DIMS, TaskOptions, task_ctes, task_source

DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version", "name")
DEFAULT_SLOW_MS = 5000.0


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
    `repeats` counts steps whose name already ran under the same parent (agent loops repeat
    legitimately); `retries` counts the repeats that follow a failed (ERROR) attempt.
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
        return f"""steps AS (
          SELECT *,
            parent_span_id IS NOT NULL AND row_number() OVER attempts > 1 AS is_repeat,
            parent_span_id IS NOT NULL AND lag(status_code) OVER attempts = 'ERROR' AS is_retry
          FROM sp
          WINDOW attempts AS (PARTITION BY project, trace_id, parent_span_id, name ORDER BY start_time, span_id)
        )
        SELECT category AS level, {keys}{latency_metrics(p, slow_ms)},
          count(time_to_first_token_ms) AS ttft_count,
          quantile_cont(time_to_first_token_ms, 0.5) AS ttft_p50_ms,
          quantile_cont(time_to_first_token_ms, 0.95) AS ttft_p95_ms,
          count(*) FILTER (WHERE is_repeat) AS repeats,
          count(*) FILTER (WHERE is_retry) AS retries
        FROM steps GROUP BY ALL"""

    tasks = an.run(task_source(filters, task_group, options, priced=False), task_body)
    steps_src = SpanSource(filters, span_group, categories=STEP_CATEGORIES, priced=False)
    steps = an.run(steps_src, step_body)
    return _order(unpack_quantiles(pl.concat([tasks, steps], how="diagonal_relaxed")), span_group.names)


def _order(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if df.height == 0:
        return df
    rank = {name: i for i, name in enumerate(("task", *STEP_CATEGORIES))}
    df = df.with_columns(pl.col("level").replace_strict(rank, default=99).alias("_rank"))
    return df.sort(["_rank", *keys], nulls_last=True).drop("_rank")
