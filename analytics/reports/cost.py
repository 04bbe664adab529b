"""Tokens and cost: calls and their price, and what tasks cost — per task and per successful task."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import polars as pl

from spanlake.analytics.reports.common import join_on_keys, keys_select, span_keys
from spanlake.analytics.reports.report import Report, Request, Result
from spanlake.analytics.reports.task_rollup import TASKS
from spanlake.analytics.rollups.read import apply_filters, can_answer, read_listed, rows, source_of, sum_rows
from spanlake.analytics.rollups.tables import CALL_KEYS, COST_DIMS, Table, no_reach
from spanlake.analytics.runner import Analytics, Job
from spanlake.analytics.spans import BILLABLE_CATEGORIES, SPAN_DIMS, Filters, GroupBy, Params, SpanSource
from spanlake.analytics.task_outcomes import (
    TASK_DIMS,
    TaskOptions,
    task_ctes,
    task_scope_ctes,
    task_scoped,
    task_source,
)

DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version")


def cost(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group: LLM/embedding calls, tokens, cost, and the cost of tasks.

    Call columns (`calls` … `unpriced_calls`) describe the calls of that group: e.g. grouped
    by model, the calls made to that model. Task columns (`tasks` … `cost_per_successful_task`)
    describe the tasks of that group, a task's model and prompt version being those of its
    first LLM call unless the task span names them. `cost_usd` counts priced calls only;
    `unpriced_calls` says how many calls had no price (their cost is unknown, not zero).
    cost_per_successful_task = task_cost_usd / successful_tasks (all tasks' cost, failed included).
    """
    options = options or TaskOptions()
    names = GroupBy.parse(group_by, {k: SPAN_DIMS[k] for k in DIMS}, bucket).names
    calls, tasks = an.run_many(
        [call_totals_job(filters, group_by, bucket, options), task_totals_job(filters, group_by, bucket, options)]
    )
    return finish(calls, tasks, names)


def call_totals(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """The call columns of `cost` (additive: rollups store them per hour)."""
    return an.run(*call_totals_job(filters, group_by, bucket, options))


def call_totals_job(
    filters: Filters, group_by: Sequence[str], bucket: str | None, options: TaskOptions | None = None
) -> Job:
    """The (source, body) of `call_totals` (with a task name, the calls inside tasks of that name)."""
    options = options or TaskOptions()
    dims = {k: SPAN_DIMS[k] for k in (*DIMS, "response_model")}
    group = GroupBy.parse(group_by, dims, bucket)
    src = SpanSource(filters, group, categories=BILLABLE_CATEGORIES)

    def body(p: Params) -> str:
        ctes, calls = task_scope_ctes(src, options, p)
        return f"""{ctes}
        SELECT {keys_select(group, dims)}
          count(*) AS calls,
          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
          coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
          coalesce(sum(cache_write_tokens), 0)::BIGINT AS cache_write_tokens,
          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
          coalesce(sum(reasoning_tokens), 0)::BIGINT AS reasoning_tokens,
          sum(cost_usd) AS cost_usd,
          sum(reported_cost) AS reported_cost_usd,
          count(*) FILTER (WHERE unpriced) AS unpriced_calls
        FROM {calls} WHERE billable GROUP BY ALL"""

    return task_scoped(src, options), body


def task_totals(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """The additive task columns of `cost`: tasks, successes, failures, cost, unpriced calls."""
    return an.run(*task_totals_job(filters, group_by, bucket, options or TaskOptions()))


def task_totals_job(filters: Filters, group_by: Sequence[str], bucket: str | None, options: TaskOptions) -> Job:
    """The (source, body) of `task_totals`."""
    group = GroupBy.parse(group_by, {k: TASK_DIMS[k] for k in DIMS}, bucket)

    def body(p: Params) -> str:
        return f"""{task_ctes(filters, group, options, p)}
        SELECT {keys_select(group, {k: TASK_DIMS[k] for k in DIMS})}
          count(*) AS tasks,
          count(*) FILTER (WHERE outcome = 'success') AS successful_tasks,
          count(*) FILTER (WHERE outcome = 'failure') AS failed_tasks,
          sum(cost_usd) AS task_cost_usd,
          sum(unpriced_calls)::BIGINT AS task_unpriced_calls
        FROM tasks GROUP BY ALL"""

    return task_source(filters, group, options), body


def finish(calls: pl.DataFrame, tasks: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Join call and task totals on the group keys and add the task ratios."""
    if tasks.height:
        some = pl.col("tasks") > 0
        tasks = tasks.with_columns(
            success_rate=pl.when(some).then(pl.col("successful_tasks") / pl.col("tasks")).otherwise(None),
            cost_per_task=pl.when(some).then(pl.col("task_cost_usd") / pl.col("tasks")).otherwise(None),
            cost_per_successful_task=pl.when(pl.col("successful_tasks") > 0)
            .then(pl.col("task_cost_usd") / pl.col("successful_tasks"))
            .otherwise(None),
        )
        order = [*keys, "tasks", "successful_tasks", "failed_tasks", "success_rate", "task_cost_usd"]
        tasks = tasks.select([*order, "task_unpriced_calls", "cost_per_task", "cost_per_successful_task"])
    df = join_on_keys(calls, tasks, keys)
    return df.sort(keys, nulls_last=True) if keys and df.height else df


TASK_COST_METRICS = """
      count(*) AS tasks,
      count(*) FILTER (WHERE outcome = 'success') AS successful_tasks,
      count(*) FILTER (WHERE outcome = 'failure') AS failed_tasks,
      count(*) FILTER (WHERE outcome = 'success') / count(*) AS success_rate,
      sum(cost_usd) AS task_cost_usd,
      sum(unpriced_calls)::BIGINT AS task_unpriced_calls,
      sum(cost_usd) / count(*) AS cost_per_task,
      sum(cost_usd) / nullif(count(*) FILTER (WHERE outcome = 'success'), 0) AS cost_per_successful_task"""


def unpriced(an: Analytics, filters: Filters, options: TaskOptions | None = None) -> pl.DataFrame:
    """Models that were called but have no price (add an override to price them)."""
    options = options or TaskOptions()
    src = SpanSource(filters, categories=BILLABLE_CATEGORIES)

    def body(p: Params) -> str:
        ctes, calls = task_scope_ctes(src, options, p)
        return f"""{ctes}
        SELECT provider, price_model AS model, count(*) AS calls,
          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
          min(start_time) AS first_seen, max(start_time) AS last_seen
        FROM {calls} WHERE unpriced GROUP BY ALL ORDER BY calls DESC, model"""

    return an.run(task_scoped(src, options), body)


# --- from hourly rollups ---------------------------------------------------------------------

UNPRICED_KEYS = (*CALL_KEYS, "price_model")
CALL_METRICS = ["calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                "reasoning_tokens", "cost_usd", "reported_cost_usd", "unpriced_calls"]  # fmt: skip
TASK_METRICS = ["tasks", "successful_tasks", "failed_tasks", "task_cost_usd", "task_unpriced_calls"]


def build_calls(an: Analytics, f: Filters, options: TaskOptions, bucket: str = "hour") -> pl.DataFrame:
    """Cost report call totals (`call_totals`) per hour (or minute)."""
    return call_totals(an, f, CALL_KEYS, bucket=bucket)


def build_unpriced(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Calls of models without a price: calls, tokens, first and last seen (`unpriced`)."""
    group = GroupBy(UNPRICED_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""_ AS (SELECT 1)
        SELECT {keys_select(group, span_keys("price_model"))}count(*) AS calls,
          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
          min(start_time) AS first_seen, max(start_time) AS last_seen
        FROM sp WHERE unpriced GROUP BY ALL"""

    return an.run(SpanSource(f, group, categories=BILLABLE_CATEGORIES), body)


CALLS = Table("calls", CALL_KEYS, build_calls, no_reach, minute_grain=True)
UNPRICED = Table("unpriced", UNPRICED_KEYS, build_unpriced, no_reach)


def _cost_keys(q: Request) -> list[str]:
    return [*q.group_by, *([q.bucket] if q.bucket else [])]


def cost_rolled(an: Analytics, q: Request) -> Result | None:
    """The cost report summed from the `calls` and `tasks` rollups."""
    keys = _cost_keys(q)
    if not can_answer(q.filters, keys, None):
        return None
    group = GroupBy.parse(keys, {k: k for k in COST_DIMS}, None)
    with ThreadPoolExecutor(2) as pool:
        pending = pool.submit(rows, an, CALLS, q.filters, q.options)
        tasks = rows(an, TASKS, q.filters, q.options)
        calls = pending.result()
    if calls is None or tasks is None:
        return None
    c = sum_rows(apply_filters(calls[0], q.filters, CALLS), group, CALL_METRICS)
    t = sum_rows(apply_filters(tasks[0], q.filters, TASKS), group, TASK_METRICS)
    return finish(c, t, group.names), source_of(calls[1], tasks[1])


def unpriced_rolled(an: Analytics, q: Request) -> Result | None:
    """`unpriced` from the `unpriced` rollup."""
    got = read_listed(an, UNPRICED, q.filters)
    if got is None:
        return None
    df, used = got
    seen = pl.Datetime("us", "UTC")
    schema = {"provider": pl.String, "model": pl.String, "calls": pl.Int64, "input_tokens": pl.Int64,
              "output_tokens": pl.Int64, "first_seen": seen, "last_seen": seen}  # fmt: skip
    if df.height == 0:
        return pl.DataFrame(schema=schema), used
    out = (
        df.group_by(["provider", "price_model"])
        .agg(
            pl.col("calls").sum(),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
        )
        .rename({"price_model": "model"})
        .sort(["calls", "model", "provider"], descending=[True, False, False], nulls_last=True)
    )
    return out.select(list(schema)).cast(schema), used  # type: ignore[arg-type]


COST = Report(
    "cost",
    20,
    "calls, tokens and cost; tasks, success rate, cost per task and per successful task",
    raw=lambda an, q: cost(an, q.filters, _cost_keys(q), options=q.options),
    rollup=cost_rolled,
    dimensions=("model", "provider", "service", "prompt_version"),
    tables=(CALLS, TASKS),
    shown_group_by=("model",),
    chart="cost_usd",
)
UNPRICED_REPORT = Report(
    "unpriced",
    30,
    "models called that have no price (their cost is unknown, never counted as zero)",
    raw=lambda an, q: unpriced(an, q.filters, q.options),
    rollup=unpriced_rolled,
    tables=(UNPRICED,),
    chart="calls",
)
