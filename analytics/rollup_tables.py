"""What each hourly rollup table holds, and how its rows are computed from raw spans.

Every builder takes a window (`Filters` with since/until and at most a project) and returns
one row per (hour, keys) with additive columns — counts, sums, min/max, and log-bucket
histograms (analytics.sketch) for percentiles — computed by the same SQL as the raw report,
grouped by the hour a row belongs to. So the rows of a window are the rows of its hours, and
`analytics.rollups` can store hours, rebuild the ones that change, and compute any hour it
lacks on the fly.

`before`/`after`: how many lake hours before and after a row's hour its value depends on
(the spans a report reads around a task or step), so a change in lake hour h invalidates the
rows of hours h - after … h + before. `labels`: rows depend on human labels (outcomes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.reports.common import TIMEOUT_PREDICATE, keys_select
from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.latency import (
    DEFAULT_SLOW_MS,
    RETRY_LOOKBACK,
    step_groups,
    steps_ctes,
    steps_source,
)
from spanlake.analytics.reports.retrieval import _EXTRA as RETRIEVAL_COLUMNS
from spanlake.analytics.reports.retrieval import DOCUMENT_IDS_CTE, documents_source
from spanlake.analytics.reports.tasks import SORTS, TASK_LIST_COLUMNS
from spanlake.analytics.reports.validation import DIMS as CHECK_DIMS
from spanlake.analytics.reports.validation import (
    checks_ctes,
    checks_source,
    failure_messages_cte,
    failure_messages_source,
)
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import BILLABLE_CATEGORIES, SPAN_DIMS, Filters, GroupBy, Params, SpanSource
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, task_ctes, task_source
from spanlake.analytics.traces.filters import HORIZON, SKEW
from spanlake.analytics.traces.overview import lake_window, tasks_sql
from spanlake.analytics.traces.relation import run_on_lake
from spanlake.storage.trace_index import index_rows

HOUR = timedelta(hours=1)
COST_DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version")
CALL_KEYS = (*COST_DIMS, "response_model")
TASK_KEYS = (*COST_DIMS, "name", "task_name", "outcome", "outcome_source")
STEP_KEYS = ("level", *CALL_KEYS, "name")
CHECK_KEYS = ("validator", *COST_DIMS, "task_name")
RETRIEVAL_KEYS = ("data_source", *CALL_KEYS, "name")
OVERVIEW_KEYS = ("project", "service", "model", "prompt_version")
TRACE_KEYS = ("project", "trace_id")
UNPRICED_KEYS = (*CALL_KEYS, "price_model")
MESSAGE_KEYS = ("validator", "pattern", *CALL_KEYS)
DOCUMENT_KEYS = ("data_source", "document_id", *CALL_KEYS)
TOP_KEYS = ("project", "trace_id", "span_id")
TOP_N = 100  # task-list from rollups: each hour keeps its N longest, costliest and latest tasks per outcome

Builder = Callable[[Analytics, Filters, TaskOptions], pl.DataFrame]


@dataclass(frozen=True)
class Table:
    """One rollup table: its group keys and builder, and what its rows depend on."""

    name: str
    keys: tuple[str, ...]
    build: Builder
    reach: Callable[[TaskOptions], tuple[int, int]]  # (before, after) in lake hours
    labels: bool = False


def _hours(d: timedelta) -> int:
    return math.ceil(d / HOUR)


def _unpacked(aggregate: str, *histograms: str) -> str:
    """`agg AS (<aggregate>) SELECT … FROM agg` with the histogram maps unpacked into lists."""
    drop = ", ".join(f"_h_{h}" for h in histograms)
    lists = ", ".join(sketch.unpack_sql(h) for h in histograms)
    return f"agg AS ({aggregate})\n SELECT * EXCLUDE ({drop}), {lists} FROM agg"


def build_calls(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Cost report call totals (analytics.reports.cost.call_totals)."""
    return call_totals(an, f, CALL_KEYS, bucket="hour")


def build_tasks(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Tasks by outcome and source: counts, cost, errors, timeouts, slow (> DEFAULT_SLOW_MS), checks, durations."""
    group = GroupBy(TASK_KEYS, (), "hour")

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
        return f"{task_ctes(f, group, options, p)},\n{_unpacked(aggregate, 'dur')}"

    return an.run(task_source(f, group, options), body)


def build_steps(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Step latency per category (`level`): counts, errors, timeouts, slow, repeats, retries, durations, TTFT."""
    dims = {**{k: SPAN_DIMS[k] for k in STEP_KEYS if k != "level"}, "level": "category"}
    group = GroupBy(STEP_KEYS, (), "hour")

    def body(p: Params) -> str:
        slow = p.add(DEFAULT_SLOW_MS)
        keys = group.select(dims)
        metrics = f"""count(*) AS count,
          count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
          count(*) FILTER (WHERE {TIMEOUT_PREDICATE}) AS timeouts,
          count(*) FILTER (WHERE duration_ms > {slow}) AS slow,
          count(time_to_first_token_ms) AS ttft_count,
          {sketch.agg_sql("duration_ms", "dur")},
          {sketch.agg_sql("time_to_first_token_ms", "ttft")}"""
        return f"{steps_ctes(f, p, keys)},\n{_unpacked(step_groups(keys, metrics), 'dur', 'ttft')}"

    df = an.run(steps_source(f, group), body)
    # the column order of the files written before step_groups, so old and new hours scan as one
    head = [c for c in df.columns if c not in ("repeats", "retries")]
    at = head.index("slow") + 1
    return df.select([*head[:at], "repeats", "retries", *head[at:]])


def build_checks(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Validation checks and failures per validator, model, prompt and task name."""
    group = GroupBy(CHECK_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""{checks_ctes(f, options, p)}
        SELECT {keys_select(group, CHECK_DIMS)}count(*) AS checks, count(*) FILTER (WHERE NOT passed) AS failures
        FROM checks GROUP BY ALL"""

    return an.run(checks_source(f, options), body)


def build_retrieval(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Retrieval queries per data source: documents, empty results, scores, errors, durations."""
    dims = {**{k: SPAN_DIMS[k] for k in RETRIEVAL_KEYS if k != "data_source"}, "data_source": "data_source"}
    group = GroupBy(RETRIEVAL_KEYS, (), "hour")

    def body(p: Params) -> str:
        aggregate = f"""SELECT {keys_select(group, dims)}count(*) AS queries,
          count(*) FILTER (WHERE doc_count IS NULL) AS queries_without_content,
          coalesce(sum(doc_count), 0)::BIGINT AS doc_count_sum, count(doc_count) AS doc_count_n,
          count(*) FILTER (WHERE doc_count = 0) AS empty_queries,
          sum(top1_score) AS top1_sum, count(top1_score) AS top1_n,
          sum(list_sum(doc_scores)) AS score_sum, coalesce(sum(len(doc_scores)), 0)::BIGINT AS score_n,
          count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
          {sketch.agg_sql("duration_ms", "dur")}
        FROM sp GROUP BY ALL"""
        return _unpacked(aggregate, "dur")

    src = SpanSource(f, group, categories=("retrieval",), extra_columns=RETRIEVAL_COLUMNS, priced=False)
    return an.run(src, body)


def build_overview(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """The dashboard overview's figures (one task per trace) per hour, service, first model, prompt version."""

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
        return f"{tasks_sql(con, an, f.since, f.until, f.project, p)},\n{_unpacked(aggregate, 'dur')}"

    return run_on_lake(an, sql, lake_window(f.since, f.until, f.project))


def build_traces(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """The trace-id index (storage.trace_index): each (project, trace_id) with spans starting in an hour."""
    return pl.from_arrow(index_rows(an.lake, f.since, f.until, f.project))  # type: ignore[return-value]


def _span_keys(*first: str) -> dict[str, str]:
    """Group-by name -> column of the span relation, for rollup keys `first` + CALL_KEYS."""
    return {**{k: k for k in first}, **{k: SPAN_DIMS[k] for k in CALL_KEYS}}


def build_unpriced(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Calls of models without a price: calls, tokens, first and last seen (reports.cost.unpriced)."""
    group = GroupBy(UNPRICED_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""_ AS (SELECT 1)
        SELECT {keys_select(group, _span_keys("price_model"))}count(*) AS calls,
          coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
          coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
          min(start_time) AS first_seen, max(start_time) AS last_seen
        FROM sp WHERE unpriced GROUP BY ALL"""

    return an.run(SpanSource(f, group, categories=BILLABLE_CATEGORIES), body)


def build_messages(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Failure messages per validator and pattern (reports.validation.validation_errors)."""
    group = GroupBy(MESSAGE_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""{failure_messages_cte()}
        SELECT {keys_select(group, _span_keys("validator", "pattern"))}count(*) AS occurrences,
          arg_min(message, trace_id) AS example, min(trace_id) AS example_trace_id
        FROM patterned GROUP BY ALL"""

    return an.run(failure_messages_source(f), body)


def build_documents(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Retrievals per data source and document (reports.retrieval.retrieved_documents)."""
    group = GroupBy(DOCUMENT_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""{DOCUMENT_IDS_CTE}
        SELECT {keys_select(group, _span_keys("data_source", "document_id"))}count(*) AS retrievals
        FROM ids GROUP BY ALL"""

    return an.run(documents_source(f), body)


def build_task_top(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Per hour and outcome, the TOP_N tasks of each task-list sort (reports.tasks.task_list).

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


def _skew_and_horizon(o: TaskOptions) -> tuple[int, int]:
    return _hours(o.skew), _hours(o.horizon)


TABLES = {
    t.name: t
    for t in (
        Table("calls", CALL_KEYS, build_calls, lambda o: (0, 0)),
        Table("tasks", TASK_KEYS, build_tasks, _skew_and_horizon, labels=True),
        Table("steps", STEP_KEYS, build_steps, lambda o: (_hours(RETRY_LOOKBACK), 0)),
        Table("checks", CHECK_KEYS, build_checks, lambda o: (_hours(o.horizon + o.skew), _hours(o.horizon))),
        Table("retrieval", RETRIEVAL_KEYS, build_retrieval, lambda o: (0, 0)),
        Table("overview", OVERVIEW_KEYS, build_overview, lambda o: (_hours(SKEW), _hours(HORIZON)), labels=True),
        Table("traces", TRACE_KEYS, build_traces, lambda o: (0, 0)),
        Table("unpriced", UNPRICED_KEYS, build_unpriced, lambda o: (0, 0)),
        Table("messages", MESSAGE_KEYS, build_messages, lambda o: (0, 0)),
        Table("documents", DOCUMENT_KEYS, build_documents, lambda o: (0, 0)),
        Table("task_top", TOP_KEYS, build_task_top, _skew_and_horizon, labels=True),
    )
}
