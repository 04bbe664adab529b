"""Trace lists and sessions: one row per trace, with its outcome, latency, tokens and cost.

Built on the analytics span relation (analytics.query: de-duplicated, priced spans of the
window), so cost here is the reports' cost. Every value is a bound parameter; the sort
column comes from an allow-list.

A trace's outcome follows analytics.tasks for its first task span (or its root): the
outcome the app recorded, else 'failure' when a validation failed or the task span is an
ERROR, else 'unknown'. (Human labels are not stored yet.)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.explore.filters import HORIZON, SKEW, Page, TraceFilters
from spanlake.analytics.query import BILLABLE_CATEGORIES, Params, SpanSource, window_predicates

EXTRA_COLUMNS = ("session_id", "user_id")
IS_TASK = "(category = 'task' OR task_name IS NOT NULL)"


def span_source(f: TraceFilters) -> SpanSource:
    """The spans to read: the window widened by HORIZON/SKEW, whole traces (no span filters)."""
    return SpanSource(
        f.window(), span_level_filters=False, widen_after=HORIZON, widen_before=SKEW, extra_columns=EXTRA_COLUMNS
    )


def _hits_cte(f: TraceFilters, p: Params) -> str:
    """`hits`: trace ids whose span names/content or log bodies/attributes contain the text."""
    assert f.text
    needle = p.add(f.text.lower())
    span_preds = [f"(contains(lower(name), {needle}) OR contains(lower(content), {needle}))"]
    log_preds = [f"(contains(lower(body), {needle}) OR contains(lower(attributes), {needle}))"]
    if f.since is not None:
        since = f.since - SKEW
        d = p.add(since.date())
        t = p.add(since)
        span_preds += [f"date >= {d}", f"start_time >= {t}"]
        log_preds += [f"date >= {d}", f"time >= {t}"]
    if f.until is not None:
        until = f.until + HORIZON
        d = p.add(until.date())
        t = p.add(until)
        span_preds += [f"date <= {d}", f"start_time < {t}"]
        log_preds += [f"date <= {d}", f"time < {t}"]
    if f.project is not None:
        proj = p.add(f.project)
        span_preds.append(f"project = {proj}")
        log_preds.append(f"project = {proj}")
    return f"""hits AS (
      SELECT trace_id FROM spans_raw WHERE {" AND ".join(span_preds)}
      UNION SELECT trace_id FROM logs_raw WHERE trace_id IS NOT NULL AND {" AND ".join(log_preds)}
    )"""


def trace_ctes(f: TraceFilters, p: Params) -> str:
    """CTEs after `sp`: `tr_all` (one row per trace) and `tr` (the traces matching `f`)."""
    model_match = "TRUE"
    if f.model is not None:
        m = p.add(f.model)
        model_match = f"bool_or(request_model = {m} OR response_model = {m})"
    preds = []
    if f.since is not None:
        preds.append(f"start_time >= {p.add(f.since)}")
    if f.until is not None:
        preds.append(f"start_time < {p.add(f.until)}")
    for col, value in (
        ("service_name", f.service),
        ("outcome", f.outcome),
        ("session_id", f.session_id),
        ("task_name", f.task_name),
        ("prompt_version", f.prompt_version),
        ("has_error", f.has_error),
    ):
        if value is not None:
            preds.append(f"{col} = {p.add(value)}")
    for col, lo, hi in (("duration_ms", f.min_ms, f.max_ms), ("cost_usd", f.min_cost, f.max_cost)):
        if lo is not None:
            preds.append(f"{col} >= {p.add(float(lo))}")
        if hi is not None:
            preds.append(f"{col} <= {p.add(float(hi))}")
    if f.model is not None:
        preds.append("model_match")
    if f.attributes:
        preds.append("attr_match")
    hits = ""
    if f.text:
        hits = _hits_cte(f, p) + ",\n"
        preds.append("trace_id IN (SELECT trace_id FROM hits)")
    where = " AND ".join(preds) or "TRUE"
    return f"""{hits}tr_agg AS (
      SELECT project, trace_id,
        min(start_time) AS start_time,
        max(start_time + to_microseconds(duration_ns // 1000)) AS end_time,
        arg_min(span_id, start_time) FILTER (WHERE is_root) AS root_span_id,
        arg_min(name, start_time) FILTER (WHERE is_root) AS root_name,
        arg_min(duration_ms, start_time) FILTER (WHERE is_root) AS root_ms,
        coalesce(arg_min(service_name, start_time) FILTER (WHERE is_root), any_value(service_name)) AS service_name,
        arg_min(coalesce(task_name, name), start_time) FILTER (WHERE {IS_TASK}) AS task_name,
        arg_min(task_outcome, start_time) FILTER (WHERE {IS_TASK}) AS app_outcome,
        arg_min(task_outcome_reason, start_time) FILTER (WHERE {IS_TASK}) AS outcome_reason,
        arg_min(status_code, start_time) FILTER (WHERE {IS_TASK}) AS task_status,
        arg_min(status_code, start_time) FILTER (WHERE is_root) AS root_status,
        coalesce(bool_or(validation_passed = false), false) AS validation_failed,
        count(validation_passed) AS validations,
        count(*) FILTER (WHERE validation_passed = false) AS validation_failures,
        count(*) AS span_count,
        count(*) FILTER (WHERE category = 'llm') AS llm_calls,
        coalesce(sum(input_tokens) FILTER (WHERE category IN {BILLABLE_CATEGORIES}), 0)::BIGINT AS input_tokens,
        coalesce(sum(output_tokens) FILTER (WHERE category IN {BILLABLE_CATEGORIES}), 0)::BIGINT AS output_tokens,
        sum(cost_usd) AS cost_usd,
        count(*) FILTER (WHERE unpriced) AS unpriced_calls,
        bool_or(status_code = 'ERROR') AS has_error,
        list_sort(list_distinct(list(model) FILTER (WHERE category IN {BILLABLE_CATEGORIES}))) AS models,
        arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL) AS session_id,
        arg_min(user_id, start_time) FILTER (WHERE user_id IS NOT NULL) AS user_id,
        arg_min(prompt_version, start_time) FILTER (WHERE prompt_version IS NOT NULL) AS prompt_version,
        bool_or(is_root) AS is_complete,
        bool_or(attr_match) AS attr_match,
        {model_match} AS model_match
      FROM sp GROUP BY project, trace_id
    ),
    tr_all AS (
      SELECT * EXCLUDE (root_ms, app_outcome, task_status, root_status),
        coalesce(root_ms, date_diff('microsecond', start_time, end_time) / 1000.0) AS duration_ms,
        input_tokens + output_tokens AS total_tokens,
        CASE WHEN app_outcome IS NOT NULL THEN app_outcome
             WHEN validation_failed THEN 'failure'
             WHEN coalesce(task_status, root_status) = 'ERROR' THEN 'failure'
             ELSE 'unknown' END AS outcome
      FROM tr_agg
    ),
    tr AS (SELECT * FROM tr_all WHERE {where})"""


LIST_COLUMNS = (
    "start_time, project, trace_id, coalesce(task_name, root_name) AS name, service_name, outcome, duration_ms, "
    "span_count, llm_calls, models, input_tokens, output_tokens, total_tokens, cost_usd, unpriced_calls, "
    "has_error, validation_failures, session_id, user_id, prompt_version, outcome_reason, is_complete"
)


@dataclass(frozen=True)
class TracePage:
    """One page of a trace list: the rows and how many traces match in all."""

    rows: pl.DataFrame
    total: int
    page: Page

    @property
    def has_next(self) -> bool:
        return self.page.offset + self.rows.height < self.total


def list_traces(an: Analytics, f: TraceFilters, page: Page | None = None) -> TracePage:
    """The traces matching `f`, sorted and paged (rows: LIST_COLUMNS)."""
    page = page or Page()

    def body(p: Params) -> str:
        return f"""{trace_ctes(f, p)}
        SELECT {LIST_COLUMNS}, count(*) OVER () AS total_count FROM tr
        ORDER BY {page.order_by} LIMIT {p.add(page.limit)} OFFSET {p.add(page.offset)}"""

    df = an.run(span_source(f), body)
    total = int(df["total_count"][0]) if df.height else 0
    if not df.height and page.offset:
        total = count_traces(an, f)
    return TracePage(df.drop("total_count") if "total_count" in df.columns else df, total, page)


def count_traces(an: Analytics, f: TraceFilters) -> int:
    """How many traces match `f`."""
    df = an.run(span_source(f), lambda p: f"{trace_ctes(f, p)}\nSELECT count(*) AS n FROM tr")
    return int(df["n"][0])


def list_sessions(an: Analytics, f: TraceFilters, limit: int = 100) -> pl.DataFrame:
    """Sessions (traces grouped by session or conversation id) with a trace in the window,
    most recently active first."""

    def body(p: Params) -> str:
        return f"""{trace_ctes(f, p)}
        SELECT session_id, any_value(project) AS project, any_value(user_id) AS user_id,
          count(*) AS traces, min(start_time) AS first_start, max(start_time) AS last_start,
          count(*) FILTER (WHERE outcome = 'failure') AS failures, count(*) FILTER (WHERE has_error) AS errors,
          sum(total_tokens)::BIGINT AS total_tokens, sum(cost_usd) AS cost_usd,
          sum(duration_ms) AS total_ms
        FROM tr WHERE session_id IS NOT NULL GROUP BY session_id
        ORDER BY last_start DESC, session_id LIMIT {p.add(int(limit))}"""

    return an.run(span_source(f), body)


def session_traces(an: Analytics, f: TraceFilters, session_id: str, limit: int = 200) -> pl.DataFrame:
    """The traces of one session in the window, in the order they started."""
    page = Page(sort="start_time", descending=False, limit=min(limit, 500))
    return list_traces(an, f.with_(session_id=session_id), page).rows


def facets(an: Analytics, f: TraceFilters) -> dict[str, list[str]]:
    """Values seen in the window, for filter pickers: services, models, task names, prompt versions."""
    p = Params()
    where = " AND ".join(window_predicates(span_source(f), p)) or "TRUE"
    sql = f"""SELECT
      list_sort(list(DISTINCT service_name) FILTER (WHERE service_name IS NOT NULL)) AS services,
      list_sort(list(DISTINCT request_model) FILTER (WHERE request_model IS NOT NULL)) AS models,
      list_sort(list(DISTINCT task_name) FILTER (WHERE task_name IS NOT NULL)) AS task_names,
      list_sort(list(DISTINCT prompt_version) FILTER (WHERE prompt_version IS NOT NULL)) AS prompt_versions
    FROM spans_raw WHERE {where}"""
    row = an.lake.query(sql, p.values).to_pylist()[0]
    return {k: v or [] for k, v in row.items()}
