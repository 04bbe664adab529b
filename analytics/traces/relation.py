"""Per-trace SQL shared by the trace list, sessions and the overview, and the ways to run it.

A trace row is built by AGGREGATES over a span relation that has the spans columns plus
`is_root`, `is_task` (and `cost_usd`, `unpriced`, `attr_match` when priced), then DERIVED
expressions. Three span relations:

- lean: DISTINCT spans of the window, only the columns the requested aggregates read
  (cheap: what filters and sorts use, no price join);
- priced on the lake: analytics.spans.span_ctes over the window (cost filters and sorts);
- priced rows: span_ctes over a given Arrow table of raw rows registered as `spans_raw`
  in an in-memory DuckDB (the rows of one page of traces, or of one trace).

Outcome (as analytics.task_outcomes, for the trace's first task span, else its root): the latest
human label, else the latest judge label of an evaluator that decides outcomes, else the app's
recorded outcome, else 'failure' when a validation in the
trace failed or the task span is an ERROR, else 'unknown'.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.runner import Analytics, task_labels_table
from spanlake.analytics.spans import (
    BILLABLE_CATEGORIES,
    Params,
    SpanSource,
    attr_predicate,
    pairing_needed,
    pairs_sql,
    span_ctes,
)
from spanlake.analytics.task_outcomes import IS_TASK, latest_label_cte
from spanlake.storage.call_pairs import duplicate_ctes
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import MACRO_DDL, ROOT_PREDICATE, fetch_arrow, retry_vanished
from spanlake.storage.schema import TASK_LABELS_SCHEMA
from spanlake.storage.window import connect_window

PRICED = ("cost_usd", "unpriced")
BILLABLE = f"category IN {BILLABLE_CATEGORIES}"
# A call counts once: an LLM span that repeats a span of the call that counts does not
# (storage.call_pairs); `duplicate_of` is computed, not read.
COUNTED = "duplicate_of IS NULL"
DUP = ("duplicate_of",)
COMPUTED = (*PRICED, *DUP)

# name → (aggregate over the span relation, raw columns it reads)
AGGREGATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "start_time": ("min(start_time)", ()),
    "end_time": ("max(start_time + to_microseconds(duration_ns // 1000))", ("duration_ns",)),
    "root_span_id": ("arg_min(span_id, start_time) FILTER (WHERE is_root)", ()),
    "root_name": ("arg_min(name, start_time) FILTER (WHERE is_root)", ("name",)),
    "root_ms": ("arg_min(duration_ns, start_time) FILTER (WHERE is_root) / 1e6", ("duration_ns",)),
    "task_span_id": (
        "coalesce(arg_min(span_id, start_time) FILTER (WHERE is_task), "
        "arg_min(span_id, start_time) FILTER (WHERE is_root))",
        (),
    ),
    "task_ms": ("arg_min(duration_ns, start_time) FILTER (WHERE is_task) / 1e6", ("duration_ns",)),
    "task_start": (
        "coalesce(min(start_time) FILTER (WHERE is_task), min(start_time) FILTER (WHERE is_root))",
        (),
    ),
    "service_name": (
        "coalesce(arg_min(service_name, start_time) FILTER (WHERE is_root), any_value(service_name))",
        ("service_name",),
    ),
    "task_name": ("arg_min(coalesce(task_name, name), start_time) FILTER (WHERE is_task)", ("task_name", "name")),
    # the trace's task is its first marked task span, else its root (as analytics.task_outcomes)
    "app_outcome": (
        "CASE WHEN bool_or(is_task) THEN arg_min(task_outcome, start_time) FILTER (WHERE is_task) "
        "ELSE arg_min(task_outcome, start_time) FILTER (WHERE is_root) END",
        ("task_outcome",),
    ),
    "outcome_reason": (
        "CASE WHEN bool_or(is_task) THEN arg_min(task_outcome_reason, start_time) FILTER (WHERE is_task) "
        "ELSE arg_min(task_outcome_reason, start_time) FILTER (WHERE is_root) END",
        ("task_outcome_reason",),
    ),
    "task_status": ("arg_min(status_code, start_time) FILTER (WHERE is_task)", ("status_code",)),
    "root_status": ("arg_min(status_code, start_time) FILTER (WHERE is_root)", ("status_code",)),
    "validation_failed": ("coalesce(bool_or(validation_passed = false), false)", ("validation_passed",)),
    "validations": ("count(validation_passed)", ("validation_passed",)),
    "validation_failures": ("count(*) FILTER (WHERE validation_passed = false)", ("validation_passed",)),
    "span_count": ("count(*)", ()),
    "llm_calls": (f"count(*) FILTER (WHERE category = 'llm' AND {COUNTED})", DUP),
    "input_tokens": (
        f"coalesce(sum(input_tokens) FILTER (WHERE {BILLABLE} AND {COUNTED}), 0)::BIGINT",
        ("input_tokens", *DUP),
    ),
    "output_tokens": (
        f"coalesce(sum(output_tokens) FILTER (WHERE {BILLABLE} AND {COUNTED}), 0)::BIGINT",
        ("output_tokens", *DUP),
    ),
    "cost_usd": ("sum(cost_usd)", PRICED),
    "unpriced_calls": ("count(*) FILTER (WHERE unpriced)", PRICED),
    "has_error": ("bool_or(status_code = 'ERROR')", ("status_code",)),
    "models": (
        f"list_sort(list_distinct(list(coalesce(request_model, response_model)) FILTER (WHERE {BILLABLE})))",
        ("request_model", "response_model"),
    ),
    "first_model": (
        f"arg_min(coalesce(request_model, response_model), start_time) FILTER (WHERE {BILLABLE} "
        "AND coalesce(request_model, response_model) IS NOT NULL)",
        ("request_model", "response_model"),
    ),
    "session_id": ("arg_min(session_id, start_time) FILTER (WHERE session_id IS NOT NULL)", ("session_id",)),
    "user_id": ("arg_min(user_id, start_time) FILTER (WHERE user_id IS NOT NULL)", ("user_id",)),
    "prompt_version": (
        "arg_min(prompt_version, start_time) FILTER (WHERE prompt_version IS NOT NULL)",
        ("prompt_version",),
    ),
    "is_complete": ("bool_or(is_root)", ()),
}
# name → (expression over the aggregates (and `label`), aggregates it needs)
DERIVED: dict[str, tuple[str, tuple[str, ...]]] = {
    "duration_ms": (
        "coalesce(root_ms, date_diff('microsecond', start_time, end_time) / 1000.0)",
        ("root_ms", "start_time", "end_time"),
    ),
    "total_tokens": ("input_tokens + output_tokens", ("input_tokens", "output_tokens")),
    "outcome": (
        "CASE WHEN label IS NOT NULL THEN label WHEN app_outcome IS NOT NULL THEN app_outcome "
        "WHEN validation_failed THEN 'failure' WHEN coalesce(task_status, root_status) = 'ERROR' THEN 'failure' "
        "ELSE 'unknown' END",
        ("app_outcome", "validation_failed", "task_status", "root_status", "task_span_id"),
    ),
}
ALL = tuple(AGGREGATES) + tuple(DERIVED)
# aggregates a repeated span row cannot change (extrema of a column of the span)
DEDUP_FREE = frozenset({"start_time"})


def closure(names: Iterable[str]) -> list[str]:
    """The aggregates needed for these aggregate/derived names, in AGGREGATES order."""
    need = set()
    for n in names:
        if n in DERIVED:
            need.update(DERIVED[n][1])
        elif n in AGGREGATES:
            need.add(n)
    return [n for n in AGGREGATES if n in need]


def raw_columns(names: Iterable[str]) -> list[str]:
    """Raw span columns a lean relation must carry for these aggregates."""
    cols: dict[str, None] = {}
    for n in closure(names):
        cols.update(dict.fromkeys(AGGREGATES[n][1]))
    return [c for c in cols if c not in COMPUTED]


def counts_calls(names: Iterable[str]) -> bool:
    """Whether these aggregates count calls or their tokens (so they read `duplicate_of`)."""
    return any("duplicate_of" in AGGREGATES[n][1] for n in closure(names))


def needs_price(names: Iterable[str]) -> bool:
    return any(AGGREGATES[n][1] == PRICED for n in closure(names))


def lean_cte(window: list[str], names: Iterable[str], extra: Iterable[str] = (), pairs: str | None = None) -> str:
    """`src`: de-duplicated spans of the window with the columns these aggregates read.
    `extra` are more select items (e.g. an `attr_match` expression). When the aggregates count
    calls, `src` has `duplicate_of` (storage.call_pairs) from the layered LLM spans matching `pairs`
    (analytics.spans.pair_where), or NULL everywhere when `pairs` is None (none there).

    When the aggregates are only DEDUP_FREE ones (a duplicate span row cannot change them,
    e.g. the trace's start is a min), the spans are not de-duplicated: the same traces and
    values, without hashing every span of the window (the 7-day trace list's first cost)."""
    cols = "".join(f"{c}, " for c in raw_columns(names))
    more = "".join(f"{e}, " for e in extra)
    where = " AND ".join(window) or "TRUE"
    distinct = "" if set(closure(names)) <= DEDUP_FREE else "DISTINCT ON (project, trace_id, span_id) "
    spans = f"""SELECT {distinct}project, trace_id, span_id, start_time, category,
        request_model, response_model, {cols}{more}{ROOT_PREDICATE} AS is_root, {IS_TASK} AS is_task
      FROM spans_raw WHERE {where}"""
    if not counts_calls(names):
        return f"src AS ({spans})"
    if pairs is None:
        return f"src AS (SELECT *, CAST(NULL AS VARCHAR) AS duplicate_of FROM ({spans}))"
    return f"""{duplicate_ctes("lean_dup", pairs)},
    src AS (
      SELECT s.*, d.duplicate_of FROM ({spans}) s
      LEFT JOIN lean_dup d ON d.project = s.project AND d.trace_id = s.trace_id AND d.span_id = s.span_id
    )"""


SP_SRC = f"src AS (SELECT *, {IS_TASK} AS is_task FROM sp)"


def trace_cte(names: Iterable[str], name: str = "tr_all", extra_aggs: Iterable[str] = ()) -> str:
    """`<name>`: one row per (project, trace_id) of `src` with the requested aggregate and
    derived columns (labels joined as `label` when the outcome is asked for)."""
    names = list(names)
    aggs = closure(names)
    sel = "".join(f"{AGGREGATES[a][0]} AS {a}, " for a in aggs) + "".join(f"{e}, " for e in extra_aggs)
    derived = [d for d in DERIVED if d in names]
    label = "outcome" in derived
    join = (
        "LEFT JOIN latest_label l ON l.project = a.project AND l.trace_id = a.trace_id AND l.span_id = a.task_span_id"
        if label
        else ""
    )
    out = "".join(f", {DERIVED[d][0]} AS {d}" for d in derived)
    labels = f"{latest_label_cte()},\n" if label else ""
    return f"""{labels}{name}_agg AS (
      SELECT project, trace_id, {sel}count(*) AS _n FROM src GROUP BY project, trace_id
    ),
    {name} AS (SELECT a.* EXCLUDE (_n){", l.outcome AS label" if label else ""}{out} FROM {name}_agg a {join})"""


def attr_match(f: Any, p: Params) -> str:
    """The select item `attr_match` of a lean relation (analytics' attribute predicate)."""
    return f"({attr_predicate(f, p)}) AS attr_match"


def labels_table(an: Analytics) -> pa.Table:
    """Task verdicts (analytics.runner.TASK_LABELS_SQL; empty without label files, which skips the labels query)."""
    dd: DataDir = an.lake.data_dir
    root = dd.lake / "labels"
    if not root.is_dir() or not any(root.glob("project=*/date=*/hour=*/*.parquet")):
        return TASK_LABELS_SCHEMA.empty_table()
    return task_labels_table(an.labels())


def register_common(con: duckdb.DuckDBPyConnection, an: Analytics) -> None:
    con.register("task_labels", labels_table(an))


def priced_ctes(con: duckdb.DuckDBPyConnection, an: Analytics, src: SpanSource, p: Params) -> str:
    """analytics' span CTEs (`sp` with cost) over the lake on `con`, with the price table of
    the window's models registered (analytics.runner.Analytics.run, without its labels query)."""
    p0 = Params()
    pairs = fetch_arrow(con, pairs_sql(src, p0), p0.values).to_pylist()
    prices = an.prices.table((r["provider"], r["model"]) for r in pairs)
    con.register("prices", prices)
    pair = pairing_needed(con, src)
    return span_ctes(src, p, PriceBook.tier_models(prices), PriceBook.service_tier_keys(prices), pair)


def price_rows(an: Analytics, raw: pa.Table, src: SpanSource, body: Callable[[Params], str]) -> pl.DataFrame:
    """Run `WITH <span CTEs over exactly these raw span rows>, <body>` in a fresh in-memory
    DuckDB: `raw` (columns of the spans table, partition keys included) is `spans_raw` there."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("raw_rows", raw)
        con.execute("CREATE VIEW spans_raw AS SELECT * FROM raw_rows")
        con.execute("CREATE VIEW spans_raw_rest AS SELECT * FROM raw_rows")
        con.execute("CREATE VIEW spans_raw_once AS SELECT * FROM raw_rows WHERE false")
        for stmt in MACRO_DDL:
            con.execute(stmt)
        register_common(con, an)
        p = Params()
        ctes = priced_ctes(con, an, src, p)
        return pl.from_arrow(fetch_arrow(con, f"WITH RECURSIVE {ctes},\n{body(p)}", p.values))  # type: ignore[return-value]
    finally:
        con.close()


Window = tuple[datetime | None, datetime | None, str | None]


def run_on_lake(
    an: Analytics,
    sql_of: Callable[[duckdb.DuckDBPyConnection, Params], str],
    window: Window = (None, None, None),
    then: Callable[[duckdb.DuckDBPyConnection, pl.DataFrame], Any] | None = None,
) -> Any:
    """Run the SQL `sql_of(con, params)` builds on a connection over `window` (since, until,
    project) with labels registered; `then(con, frame)` may query the same connection after.
    Retried, like Lake.query, when compaction removed a file between listing and reading."""

    def attempt() -> pl.DataFrame:
        con = connect_window(an.lake, *window, derived=False)
        try:
            register_common(con, an)
            p = Params()
            sql = sql_of(con, p)
            df: pl.DataFrame = pl.from_arrow(fetch_arrow(con, sql, p.values))  # type: ignore[assignment]
            return then(con, df) if then is not None else df
        finally:
            con.close()

    return retry_vanished(attempt)
