"""Tasks: counts by outcome and outcome source, success rate over time, slowest and costliest tasks."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from spanlake.analytics.reports.common import keys_select
from spanlake.analytics.reports.cost import TASK_COST_METRICS
from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.reports.task_rollup import TASKS, task_columns
from spanlake.analytics.rollups.read import agg, group, read, read_listed, sort_groups
from spanlake.analytics.rollups.tables import Table, task_reach
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import OUTCOME_SOURCES, TASK_DIMS, TaskOptions, task_ctes, task_source

SORTS = {"duration": "duration_ms", "cost": "cost_usd", "start": "start_time"}
# The task-list's columns, from the `tasks` relation (analytics.task_outcomes).
TASK_LIST_COLUMNS = """project, trace_id, span_id, task_name, start_time, duration_ms, outcome, outcome_source,
          task_outcome_reason AS outcome_reason, cost_usd, unpriced_calls, llm_calls, input_tokens, output_tokens,
          validation_failures, model, prompt_version, service_name AS service"""


def tasks(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group: tasks by outcome, how each outcome was decided, success rate, duration and cost.

    `from_<source>` columns count outcomes decided by each rule (label, app, validation,
    error, default); they add up to `tasks`.
    """
    options = options or TaskOptions()
    group = GroupBy.parse(group_by, TASK_DIMS, bucket)

    def body(p: Params) -> str:
        sources = "".join(f"count(*) FILTER (WHERE outcome_source = {p.add(s)}) AS from_{s}, " for s in OUTCOME_SOURCES)
        return f"""{task_ctes(filters, group, options, p)}
        SELECT {keys_select(group, TASK_DIMS)}{TASK_COST_METRICS},
          count(*) FILTER (WHERE outcome = 'unknown') AS unknown_tasks,
          {sources}
          quantile_cont(duration_ms, 0.5) AS p50_ms,
          quantile_cont(duration_ms, 0.95) AS p95_ms,
          sum(llm_calls)::BIGINT AS llm_calls
        FROM tasks GROUP BY ALL"""

    df = an.run(task_source(filters, group, options), body)
    return df.sort(group.names, nulls_last=True) if group.names else df


def task_list(
    an: Analytics,
    filters: Filters,
    *,
    sort: str = "duration",
    limit: int = 20,
    outcome: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Individual tasks, slowest (sort='duration') or most expensive (sort='cost') first."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    options = options or TaskOptions()

    def body(p: Params) -> str:
        where = f"WHERE outcome = {p.add(outcome)}" if outcome else ""
        return f"""{task_ctes(filters, GroupBy(), options, p)}
        SELECT {TASK_LIST_COLUMNS} FROM tasks {where}
        ORDER BY {SORTS[sort]} DESC NULLS LAST, trace_id, span_id LIMIT {p.add(int(limit))}"""

    return an.run(task_source(filters, GroupBy(), options), body)


# --- from hourly rollups ---------------------------------------------------------------------

TOP_KEYS = ("project", "trace_id", "span_id")
TOP_N = 100  # task-list from rollups: each hour keeps its N longest, costliest and latest tasks per outcome
DIM_FILTERS = ("service", "model", "provider", "prompt_name", "prompt_version")


def build_task_top(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Per hour and outcome, the TOP_N tasks of each task-list sort (`task_list`).

    The window's top N by any sort is among the union of its hours' top N (a task belongs to
    one hour and one outcome), so the task-list of an unfiltered window is exact from these."""

    def body(p: Params) -> str:
        ranks = ", ".join(
            f"row_number() OVER (PARTITION BY hour, outcome ORDER BY {col} DESC NULLS LAST, trace_id, span_id) "
            f"AS rank_{name}"
            for name, col in SORTS.items()
        )
        top = " OR ".join(f"rank_{name} <= {TOP_N}" for name in SORTS)
        return f"""{task_ctes(f, GroupBy(), options, p)},
        listed AS (SELECT date_trunc('hour', start_time) AS hour, {TASK_LIST_COLUMNS} FROM tasks),
        ranked AS (SELECT *, {ranks} FROM listed)
        SELECT * EXCLUDE ({", ".join(f"rank_{name}" for name in SORTS)}) FROM ranked WHERE {top}"""

    return an.run(task_source(f, GroupBy(), options), body)


TASK_TOP = Table("task_top", TOP_KEYS, build_task_top, task_reach, labels=True)


def tasks_rolled(an: Analytics, q: Request) -> Result | None:
    """The tasks report from the `tasks` rollup."""
    g = group(q.filters, q.group_by, TASK_DIMS, q.bucket)
    if g is None:
        return None
    t = read(an, TASKS, q.filters, q.options, g.bucket)
    if t is None:
        return None
    if t[0].height == 0:
        return pl.DataFrame(), t[1]
    sources = [pl.col("tasks").filter(pl.col("outcome_source") == s).sum().alias(f"from_{s}") for s in OUTCOME_SOURCES]
    exprs = [*task_columns(), pl.col("unknown_tasks").sum().alias("unknown_tasks"), *sources]
    df = agg(t[0], g.names, [*exprs, pl.col("llm_calls").sum()], [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))])
    cols = [*g.names, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "llm_calls"]
    return sort_groups(df.select(cols), g.names), t[1]


def task_list_rolled(an: Analytics, q: Request) -> Result | None:
    """`task_list` from the `task_top` rollup: windows without dimension filters and limits up
    to TOP_N (each hour keeps that many per sort and outcome; read when called, so a test can
    lower it)."""
    sort, limit, outcome = q.params["sort"], q.params["limit"], q.params["outcome"]
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if limit > TOP_N or any(getattr(q.filters, d) is not None for d in DIM_FILTERS):
        return None
    got = read_listed(an, TASK_TOP, q.filters, q.options)
    if got is None:
        return None
    df, used = got
    if outcome is not None and df.height:
        df = df.filter(pl.col("outcome") == outcome)
    if df.height:
        df = df.sort([SORTS[sort], "trace_id", "span_id"], descending=[True, False, False], nulls_last=True)
    return df.head(limit).drop("hour", strict=False), used


REPORT = Report(
    "tasks",
    40,
    "tasks by outcome and by how the outcome was decided; success rate, duration, cost",
    raw=lambda an, q: tasks(an, q.filters, q.group_by, bucket=q.bucket, options=q.options),
    rollup=tasks_rolled,
    dimensions=("task_name", "model", "prompt_version", "service", "outcome_source"),
    tables=(TASKS,),
    shown_group_by=("task_name",),
    chart="success_rate",
)
LIST = Report(
    "task-list",
    50,
    "single tasks, slowest first ({sort=cost}: most expensive first)",
    raw=lambda an, q: task_list(
        an, q.filters, sort=q.params["sort"], limit=q.params["limit"], outcome=q.params["outcome"], options=q.options
    ),
    rollup=task_list_rolled,
    params=(
        Param("sort", str, "duration", choices=tuple(SORTS)),
        Param("limit", int, 20, ge=1, le=1000),
        Param("outcome", str, None, public=False),
    ),
    tables=(TASK_TOP,),
)
