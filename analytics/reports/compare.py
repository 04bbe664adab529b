"""Compare two prompt versions or two models side by side — the check a team runs before an upgrade."""

from __future__ import annotations

import polars as pl

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, task_ctes, task_source

BY = ("prompt_version", "model", "prompt_name", "provider", "service", "task_name")


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
    col = TASK_DIMS[by]

    def body(p: Params) -> str:
        pa_, pb = p.add(a), p.add(b)
        return f"""{task_ctes(filters, GroupBy(), options, p)}
        SELECT {col} AS "{by}", count(*) AS tasks,
          count(*) FILTER (WHERE outcome = 'success') / count(*) AS success_rate,
          sum(cost_usd) / count(*) AS cost_per_task,
          sum(cost_usd) / nullif(count(*) FILTER (WHERE outcome = 'success'), 0) AS cost_per_successful_task,
          sum(unpriced_calls)::BIGINT AS unpriced_calls,
          quantile_cont(duration_ms, 0.5) AS p50_ms,
          quantile_cont(duration_ms, 0.95) AS p95_ms,
          avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate,
          sum(validation_failures) / nullif(sum(validations), 0) AS validation_failure_rate
        FROM tasks WHERE {col} IN ({pa_}, {pb}) GROUP BY ALL"""

    df = an.run(task_source(filters, GroupBy(), options), body)
    rows = {r[by]: r for r in df.to_dicts()}
    out = [rows.get(v) or {by: v, "tasks": 0} for v in (a, b)]
    delta: dict[str, object] = {by: "b - a"}
    for k in df.columns[1:]:
        va, vb = out[0].get(k), out[1].get(k)
        delta[k] = vb - va if isinstance(va, int | float) and isinstance(vb, int | float) else None
    return pl.DataFrame([*out, delta], schema=df.schema, strict=False)
