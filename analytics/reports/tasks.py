"""Tasks: counts by outcome and outcome source, success rate over time, slowest and costliest tasks."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from spanlake.analytics.reports.common import keys_select
from spanlake.analytics.reports.cost import TASK_COST_METRICS
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
