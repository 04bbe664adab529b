"""Compare two prompt versions or two models side by side — the check a team runs before an upgrade."""

from __future__ import annotations

from typing import Any

import polars as pl

from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.reports.task_rollup import TASKS
from spanlake.analytics.rollups.read import agg, can_answer, nullable_sum, ratio, read
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, task_ctes, task_source

BY = ("prompt_version", "model", "prompt_name", "provider", "service", "task_name")


def compared_tasks(filters: Filters, by: str, a: str, b: str, options: TaskOptions, p: Params) -> str:
    """CTEs after the span relation (read with `task_source(filters, GroupBy(), options)`): the
    task CTEs and `compared`, the tasks whose `by` is `a` or `b`, that value in column `side`.
    The one definition of the compared tasks: the compare report aggregates it, the production
    gate (experiments.production) reads its rows."""
    if by not in BY:
        raise ValueError(f"compare by one of {', '.join(BY)}")
    col = TASK_DIMS[by]
    return f"""{task_ctes(filters, GroupBy(), options, p)},
    compared AS (SELECT {col} AS side, * FROM tasks WHERE {col} IN ({p.add(a)}, {p.add(b)}))"""


def compare(
    an: Analytics,
    filters: Filters,
    by: str,
    a: str,
    b: str,
    *,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Tasks whose `by` (e.g. prompt_version) is `a` versus `b`, and a `b - a` row.

    Columns: tasks, success rate, cost per task and per successful task, task latency
    (p50/p95), failure rate of the task span (ERROR status), and the validation failure
    rate of the checks inside those tasks. A task's model and prompt version are those of
    its first LLM call unless the task span names them.
    """
    if by not in BY:
        raise ValueError(f"compare by one of {', '.join(BY)}")
    options = options or TaskOptions()

    def body(p: Params) -> str:
        return f"""{compared_tasks(filters, by, a, b, options, p)}
        SELECT side AS "{by}", count(*) AS tasks,
          count(*) FILTER (WHERE outcome = 'success') / count(*) AS success_rate,
          sum(cost_usd) / count(*) AS cost_per_task,
          sum(cost_usd) / nullif(count(*) FILTER (WHERE outcome = 'success'), 0) AS cost_per_successful_task,
          sum(unpriced_calls)::BIGINT AS unpriced_calls,
          quantile_cont(duration_ms, 0.5) AS p50_ms,
          quantile_cont(duration_ms, 0.95) AS p95_ms,
          avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate,
          sum(validation_failures) / nullif(sum(validations), 0) AS validation_failure_rate
        FROM compared GROUP BY ALL"""

    df = an.run(task_source(filters, GroupBy(), options), body)
    rows = {r[by]: r for r in df.to_dicts()}
    out = [rows.get(v) or {by: v, "tasks": 0} for v in (a, b)]
    delta: dict[str, object] = {by: "b - a"}
    for k in df.columns[1:]:
        va, vb = out[0].get(k), out[1].get(k)
        delta[k] = vb - va if isinstance(va, int | float) and isinstance(vb, int | float) else None
    return pl.DataFrame([*out, delta], schema=df.schema, strict=False)


def compare_rolled(an: Analytics, q: Request) -> Result | None:
    """The compare report from the `tasks` rollup."""
    by, a, b = q.params["by"], q.params["a"], q.params["b"]
    if by not in BY or not can_answer(q.filters, (), None):
        return None
    t = read(an, TASKS, q.filters, q.options, None)
    if t is None:
        return None
    df = t[0].filter(pl.col(by).is_in([a, b])) if t[0].height else t[0]
    tasks, succ, cost = pl.col("tasks").sum(), pl.col("successful_tasks").sum(), nullable_sum("task_cost_usd")
    exprs = [
        tasks.alias("tasks"),
        (succ / tasks).alias("success_rate"),
        (cost / tasks).alias("cost_per_task"),
        ratio(cost, succ).alias("cost_per_successful_task"),
        pl.col("task_unpriced_calls").sum().alias("unpriced_calls"),
    ]
    tail = [
        (pl.col("errors").sum() / tasks).alias("error_rate"),
        ratio(pl.col("validation_failures").sum(), pl.col("validations").sum()).alias("validation_failure_rate"),
    ]
    out = agg(df, [by], [*exprs, *tail], [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))]) if df.height else None
    names = [by, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "error_rate", "validation_failure_rate"]
    found = {r[by]: r for r in out.select(names).to_dicts()} if out is not None else {}
    rows_ = [found.get(v) or {by: v, "tasks": 0} for v in (a, b)]
    delta: dict[str, Any] = {by: "b - a"}
    for k in names[1:]:
        va, vb = rows_[0].get(k), rows_[1].get(k)
        delta[k] = vb - va if isinstance(va, int | float) and isinstance(vb, int | float) else None
    schema = {by: pl.String, "tasks": pl.Int64, **{k: pl.Float64 for k in names[2:]}, "unpriced_calls": pl.Int64}
    return pl.DataFrame([*rows_, delta], schema=schema, strict=False).select(names), t[1]


REPORT = Report(
    "compare",
    100,
    "two prompt versions or models side by side ({by=prompt_version&a=v1&b=v2})",
    raw=lambda an, q: compare(an, q.filters, q.params["by"], q.params["a"], q.params["b"], options=q.options),
    rollup=compare_rolled,
    params=(
        Param("a", str, help="The first value, e.g. v1", required=True),
        Param("b", str, help="The second value, e.g. v2", required=True),
        Param("by", str, "prompt_version", choices=BY),
    ),
    tables=(TASKS,),
)
