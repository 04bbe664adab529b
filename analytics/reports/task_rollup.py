"""The `tasks` rollup table, which the latency, cost, tasks and compare reports read: tasks by
outcome and outcome source per hour — counts, cost, errors, timeouts, slow tasks, checks and a
duration histogram."""

from __future__ import annotations

import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.reports.common import DEFAULT_SLOW_MS, TIMEOUT_PREDICATE, keys_select
from spanlake.analytics.rollups.read import nullable_sum, ratio
from spanlake.analytics.rollups.tables import COST_DIMS, Table, task_reach, unpacked
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, task_ctes, task_source

TASK_KEYS = (*COST_DIMS, "name", "task_name", "outcome", "outcome_source")


def build_tasks(an: Analytics, f: Filters, options: TaskOptions, bucket: str = "hour") -> pl.DataFrame:
    """Tasks by outcome and source: counts, cost, errors, timeouts, slow (> DEFAULT_SLOW_MS), checks, durations."""
    group = GroupBy(TASK_KEYS, (), bucket)

    def body(p: Params) -> str:
        slow = p.add(DEFAULT_SLOW_MS)
        aggregate = f"""SELECT {keys_select(group, TASK_DIMS)}
          count(*) AS tasks,
          count(*) FILTER (WHERE outcome = 'success') AS successful_tasks,
          count(*) FILTER (WHERE outcome = 'failure') AS failed_tasks,
          count(*) FILTER (WHERE outcome = 'unknown') AS unknown_tasks,
          sum(cost_usd) AS task_cost_usd,
          coalesce(sum(unpriced_calls), 0)::BIGINT AS task_unpriced_calls,
          coalesce(sum(llm_calls), 0)::BIGINT AS llm_calls,
          count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
          count(*) FILTER (WHERE {TIMEOUT_PREDICATE}) AS timeouts,
          count(*) FILTER (WHERE duration_ms > {slow}) AS slow,
          coalesce(sum(validations), 0)::BIGINT AS validations,
          coalesce(sum(validation_failures), 0)::BIGINT AS validation_failures,
          {sketch.agg_sql("duration_ms", "dur")}
        FROM tasks GROUP BY ALL"""
        return f"{task_ctes(f, group, options, p)},\n{unpacked(aggregate, 'dur')}"

    return an.run(task_source(f, group, options), body)


TASKS = Table("tasks", TASK_KEYS, build_tasks, task_reach, labels=True, minute_grain=True)


def task_columns() -> list[pl.Expr]:
    """The cost report's task columns summed over rows of the `tasks` (or `overview`) table."""
    tasks, succ, cost = pl.col("tasks").sum(), pl.col("successful_tasks").sum(), nullable_sum("task_cost_usd")
    return [
        tasks.alias("tasks"),
        succ.alias("successful_tasks"),
        pl.col("failed_tasks").sum().alias("failed_tasks"),
        (succ / tasks).alias("success_rate"),
        cost.alias("task_cost_usd"),
        pl.col("task_unpriced_calls").sum().alias("task_unpriced_calls"),
        (cost / tasks).alias("cost_per_task"),
        ratio(cost, succ).alias("cost_per_successful_task"),
    ]
