"""Trace lists and sessions: one row per trace, with its outcome, latency, tokens, cost and
judge summary (its current judge labels' verdicts counted: "1 fail · 2 pass").

A page is found in two steps, so the first page stays fast on a big lake:
1. filter, sort and page the traces of the window computing only what the filters and the
   sort need, over a lean de-duplicated span relation (no price join unless a cost filter
   or sort asks for it) — see relation.py;
2. build the full rows of the page's traces alone: their raw spans (no content) priced by
   the analytics span relation in memory.

Every value is a bound parameter; sort columns come from an allow-list (filters.SORTS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from spanlake.analytics.labels import JUDGE_LABELS_SCHEMA, has_label_files, judge_labels
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, Params, SpanSource, pair_where, pairing_needed, window_predicates
from spanlake.analytics.traces.filters import HORIZON, SKEW, SORTS, Page, TraceFilters, parse_judge
from spanlake.analytics.traces.relation import (
    SP_SRC,
    Window,
    attr_match,
    counts_calls,
    lean_cte,
    needs_price,
    price_rows,
    priced_ctes,
    run_on_lake,
    trace_cte,
)
from spanlake.storage.call_pairs import PAIR_LOOKAHEAD
from spanlake.storage.datasets import members
from spanlake.storage.reader import fetch_arrow

EXTRA_COLUMNS = ("session_id", "user_id")
LIST_NAMES = ("start_time", "root_name", "task_name", "service_name", "outcome", "duration_ms", "span_count",
              "llm_calls", "models", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "unpriced_calls",
              "has_error", "validation_failures", "session_id", "user_id", "prompt_version", "outcome_reason",
              "is_complete")  # fmt: skip
LIST_COLUMNS = (
    "start_time, project, trace_id, coalesce(task_name, root_name) AS name, service_name, outcome, duration_ms, "
    "span_count, llm_calls, models, input_tokens, output_tokens, total_tokens, cost_usd, unpriced_calls, "
    "has_error, validation_failures, session_id, user_id, prompt_version, outcome_reason, is_complete"
)
MATCHED = ("model", "provider", "prompt_name")  # filters any span of the trace may satisfy
JUDGE_MATCH = "EXISTS (SELECT 1 FROM judge_match j WHERE j.project = tr_all.project AND j.trace_id = tr_all.trace_id)"
DATASET_MATCH = "trace_id IN (SELECT trace_id FROM dataset_match)"
SESSION_NAMES = ("start_time", "session_id", "user_id", "outcome", "has_error", "total_tokens", "cost_usd",
                 "duration_ms")  # fmt: skip


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
    for col, preds in (("start_time", span_preds), ("time", log_preds)):
        if f.since is not None:
            since = f.since - SKEW
            preds += [f"date >= {p.add(since.date())}", f"{col} >= {p.add(since)}"]
        if f.until is not None:
            until = f.until + HORIZON
            preds += [f"date <= {p.add(until.date())}", f"{col} < {p.add(until)}"]
        if f.project is not None:
            preds.append(f"project = {p.add(f.project)}")
    return f"""hits AS (
      SELECT trace_id FROM spans_raw WHERE {" AND ".join(span_preds)}
      UNION SELECT trace_id FROM logs_raw WHERE trace_id IS NOT NULL AND {" AND ".join(log_preds)}
    ),"""


def _predicates(f: TraceFilters, p: Params) -> tuple[list[str], list[str]]:
    """(trace-level predicates, the names they read)."""
    preds, names = [], ["start_time"]
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
            names.append(col)
    for col, lo, hi in (("duration_ms", f.min_ms, f.max_ms), ("cost_usd", f.min_cost, f.max_cost)):
        if lo is not None:
            preds.append(f"{col} >= {p.add(float(lo))}")
        if hi is not None:
            preds.append(f"{col} <= {p.add(float(hi))}")
        if lo is not None or hi is not None:
            names.append(col)
    for name in MATCHED:
        if getattr(f, name) is not None:
            preds.append(f"{name}_match")
    if f.attributes:
        preds.append("attr_match")
    if f.text:
        preds.append("trace_id IN (SELECT trace_id FROM hits)")
    if f.judge is not None:
        preds.append(JUDGE_MATCH)
    if f.dataset is not None:
        preds.append(DATASET_MATCH)
    return preds, names


def judged_traces(an: Analytics, f: TraceFilters) -> pa.Table:
    """(project, trace_id) of the traces with a current judge label matching `f.judge`, among
    labels set from the window's start (less the clock skew) on."""
    assert f.judge is not None
    name, verdict = parse_judge(f.judge)
    since = f.since - SKEW if f.since is not None else None
    labels = judge_labels(an.lake, f.project, since, evaluator=name)
    matching = labels.filter(pc.equal(labels["verdict"], verdict)).select(["project", "trace_id"])
    return matching.group_by(["project", "trace_id"]).aggregate([])


def matching_ctes(
    con: duckdb.DuckDBPyConnection, an: Analytics, f: TraceFilters, names: tuple[str, ...], p: Params
) -> str:
    """CTEs ending in `tr`: the traces matching `f`, with `names` (plus what filters read)."""
    preds, filter_names = _predicates(f, p)
    if f.judge is not None:
        con.register("judge_match", judged_traces(an, f))
    if f.dataset is not None:
        assert f.project is not None  # TraceFilters checks it
        ids = members(an.lake, f.project, f.dataset)["trace_id"].unique().to_list()
        con.register("dataset_match", pa.table({"trace_id": pa.array(ids, pa.string())}))
    wanted = (*names, *filter_names)
    extra_aggs = []
    if f.model is not None:
        m = p.add(f.model)
        extra_aggs.append(f"bool_or(request_model = {m} OR response_model = {m}) AS model_match")
    for name in ("provider", "prompt_name"):
        if getattr(f, name) is not None:
            extra_aggs.append(f"bool_or({name} = {p.add(getattr(f, name))}) AS {name}_match")
    if f.attributes:
        extra_aggs.append("bool_or(attr_match) AS attr_match")
    if needs_price(wanted):
        spans = f"{priced_ctes(con, an, span_source(f), p)},\n{SP_SRC}"
    else:
        extra = [attr_match(f.window(), p)] if f.attributes else []
        extra += [name for name in ("provider", "prompt_name") if getattr(f, name) is not None]
        src = span_source(f)
        pairs = pair_where(src, p) if counts_calls(wanted) and pairing_needed(con, src) else None
        spans = lean_cte(window_predicates(src, p), wanted, extra, pairs)
    hits = _hits_cte(f, p) if f.text else ""
    where = " AND ".join(preds) or "TRUE"
    return f"""{spans},
    {hits}{trace_cte(wanted, extra_aggs=extra_aggs)},
    tr AS (SELECT * FROM tr_all WHERE {where})"""


@dataclass(frozen=True)
class TracePage:
    """One page of a trace list: the rows (LIST_COLUMNS) and how many traces match in all."""

    rows: pl.DataFrame
    total: int
    page: Page

    @property
    def has_next(self) -> bool:
        return self.page.offset + self.rows.height < self.total


def list_traces(an: Analytics, f: TraceFilters, page: Page | None = None) -> TracePage:
    """The traces matching `f`, sorted and paged."""
    page = page or Page()

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        return f"""WITH {matching_ctes(con, an, f, (SORTS[page.sort],), p)}
        SELECT project, trace_id, start_time, count(*) OVER () AS total_count FROM tr
        ORDER BY {page.order_by} LIMIT {p.add(page.limit)} OFFSET {p.add(page.offset)}"""

    keys, rows = run_on_lake(an, sql, window(f), lambda con, keys: (keys, trace_rows(an, f, keys, con)))
    total = int(keys["total_count"][0]) if keys.height else (count_traces(an, f) if page.offset else 0)
    return TracePage(rows, total, page)


def window(f: TraceFilters) -> Window:
    """The partitions a trace list reads: the window widened by SKEW and HORIZON (and the
    call pairing's reach at both ends)."""
    return (
        f.since - SKEW - PAIR_LOOKAHEAD if f.since is not None else None,
        f.until + HORIZON + PAIR_LOOKAHEAD if f.until is not None else None,
        f.project,
    )


def trace_rows(
    an: Analytics, f: TraceFilters, keys: pl.DataFrame, con: duckdb.DuckDBPyConnection | None = None
) -> pl.DataFrame:
    """Full rows (LIST_COLUMNS) of these traces (project, trace_id, start_time), in their order."""
    if not keys.height:
        names = [c.split(" AS ")[-1].strip() for c in LIST_COLUMNS.split(", ")]
        return pl.DataFrame(schema={c: pl.Null for c in (*names, "judge")})
    lo: datetime = keys["start_time"].min()  # type: ignore[assignment]
    params: dict[str, Any] = {"ids": keys["trace_id"].to_list(), "projects": keys["project"].unique().to_list()}
    params |= {"d0": lo.date(), "t0": lo}
    preds = ["date >= $d0", "start_time >= $t0", "project IN (SELECT unnest($projects))"]
    if f.until is not None:
        params |= {"d1": (f.until + HORIZON).date(), "t1": f.until + HORIZON}
        preds += ["date <= $d1", "start_time < $t1"]
    sql = (
        "SELECT * EXCLUDE (content, events, links) FROM spans_raw "
        f"WHERE {' AND '.join(preds)} AND trace_id IN (SELECT unnest($ids))"
    )
    raw = fetch_arrow(con, sql, params) if con is not None else an.lake.query(sql, params)
    src = SpanSource(Filters(), span_level_filters=False, extra_columns=EXTRA_COLUMNS)
    rows = price_rows(an, raw, src, lambda p: f"{SP_SRC},\n{trace_cte(LIST_NAMES)}\nSELECT {LIST_COLUMNS} FROM tr_all")
    order = keys.select("project", "trace_id").with_row_index("_i")
    rows = rows.join(order, on=["project", "trace_id"]).sort("_i").drop("_i")
    return rows.join(judge_summaries(an, keys, lo - SKEW), on=["project", "trace_id"], how="left")


def judge_summaries(an: Analytics, keys: pl.DataFrame, since: datetime) -> pl.DataFrame:
    """(project, trace_id, judge) of these traces: their current judge verdicts counted, fails
    first ("1 fail · 2 pass"); traces no judge gave a verdict are left out."""
    empty = pl.DataFrame(schema={"project": pl.String, "trace_id": pl.String, "judge": pl.String})
    if not keys.height or not has_label_files(an.lake):
        return empty
    table = judge_labels(an.lake, None, since, keys["trace_id"].to_list())
    labels: pl.DataFrame = pl.from_arrow(table if table.num_rows else JUDGE_LABELS_SCHEMA.empty_table())  # type: ignore[assignment]
    counts = (
        labels.filter(pl.col("verdict").is_in(["fail", "pass"]))
        .group_by("project", "trace_id")
        .agg((pl.col("verdict") == "fail").sum().alias("fails"), (pl.col("verdict") == "pass").sum().alias("passes"))
    )
    if not counts.height:
        return empty
    fail = pl.when(pl.col("fails") > 0).then(pl.format("{} fail", "fails"))
    passed = pl.when(pl.col("passes") > 0).then(pl.format("{} pass", "passes"))
    summary = pl.concat_str([fail, passed], separator=" · ", ignore_nulls=True)
    return counts.select("project", "trace_id", summary.alias("judge"))


def count_traces(an: Analytics, f: TraceFilters) -> int:
    """How many traces match `f`."""
    df = run_on_lake(
        an, lambda con, p: f"WITH {matching_ctes(con, an, f, (), p)}\nSELECT count(*) AS n FROM tr", window(f)
    )
    return int(df["n"][0])


def list_sessions(an: Analytics, f: TraceFilters, limit: int = 100) -> pl.DataFrame:
    """Sessions (traces grouped by session or conversation id) with a trace in the window,
    most recently active first."""

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        return f"""WITH {matching_ctes(con, an, f, SESSION_NAMES, p)}
        SELECT session_id, any_value(project) AS project, any_value(user_id) AS user_id,
          count(*) AS traces, min(start_time) AS first_start, max(start_time) AS last_start,
          count(*) FILTER (WHERE outcome = 'failure') AS failures, count(*) FILTER (WHERE has_error) AS errors,
          sum(total_tokens)::BIGINT AS total_tokens, sum(cost_usd) AS cost_usd, sum(duration_ms) AS total_ms
        FROM tr WHERE session_id IS NOT NULL GROUP BY session_id
        ORDER BY last_start DESC, session_id LIMIT {p.add(int(limit))}"""

    return run_on_lake(an, sql, window(f))


def session_traces(an: Analytics, f: TraceFilters, session_id: str, limit: int = 200) -> pl.DataFrame:
    """The traces of one session in the window, in the order they started."""
    page = Page(sort="start_time", descending=False, limit=min(limit, 500))
    return list_traces(an, f.with_(session_id=session_id), page).rows


def facets(an: Analytics, f: TraceFilters) -> dict[str, list[str]]:
    """Values seen in the window, for filter pickers: services, models, task names, prompt versions,
    providers and prompt names."""

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        where = " AND ".join(window_predicates(span_source(f), p)) or "TRUE"
        return f"""SELECT
          list_sort(list(DISTINCT service_name) FILTER (WHERE service_name IS NOT NULL)) AS services,
          list_sort(list(DISTINCT request_model) FILTER (WHERE request_model IS NOT NULL)) AS models,
          list_sort(list(DISTINCT task_name) FILTER (WHERE task_name IS NOT NULL)) AS task_names,
          list_sort(list(DISTINCT prompt_version) FILTER (WHERE prompt_version IS NOT NULL)) AS prompt_versions,
          list_sort(list(DISTINCT provider) FILTER (WHERE provider IS NOT NULL)) AS providers,
          list_sort(list(DISTINCT prompt_name) FILTER (WHERE prompt_name IS NOT NULL)) AS prompt_names
        FROM spans_raw WHERE {where}"""

    row = run_on_lake(an, sql, window(f)).to_dicts()[0]
    return {k: v or [] for k, v in row.items()}
