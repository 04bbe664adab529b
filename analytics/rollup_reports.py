"""Reports answered from hourly rollups, with the raw reports' columns.

Each function returns `(frame, source)`: `source` is `rollups` (every hour from rollup
files), `rollups+raw` (ragged edges or stale hours computed from raw spans on the fly) or
`raw` (the raw report: no hour of the window is rolled up, or the arguments need spans —
attribute filters or groupings, minute buckets, a non-default slow threshold). Counts,
sums and rates equal the raw report's; percentiles are within analytics.sketch.ALPHA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import polars as pl

from spanlake.analytics import rollup_tables, sketch
from spanlake.analytics.reports.common import QUANTILES
from spanlake.analytics.reports.compare import BY as COMPARE_BY
from spanlake.analytics.reports.compare import compare as raw_compare
from spanlake.analytics.reports.cost import unpriced
from spanlake.analytics.reports.latency import DEFAULT_SLOW_MS
from spanlake.analytics.reports.latency import DIMS as LATENCY_DIMS
from spanlake.analytics.reports.latency import _order as latency_order
from spanlake.analytics.reports.latency import latency as raw_latency
from spanlake.analytics.reports.retrieval import DEFAULT_K, retrieved_documents, with_relevance
from spanlake.analytics.reports.retrieval import DIMS as RETRIEVAL_DIMS
from spanlake.analytics.reports.retrieval import retrieval as raw_retrieval
from spanlake.analytics.reports.tasks import SORTS, task_list
from spanlake.analytics.reports.tasks import tasks as raw_tasks
from spanlake.analytics.reports.validation import DIMS as VALIDATION_DIMS
from spanlake.analytics.reports.validation import validation as raw_validation
from spanlake.analytics.reports.validation import validation_errors
from spanlake.analytics.rollup_tables import TABLES
from spanlake.analytics.rollups import apply_filters as _filter
from spanlake.analytics.rollups import can_answer, cost_auto, rows, with_bucket
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy
from spanlake.analytics.task_outcomes import OUTCOME_SOURCES, TASK_DIMS, TaskOptions

SOURCES = ("auto", "raw", "rollups")
ROLLED = ("latency", "cost", "tasks", "validation", "retrieval")  # reports `report` can read from rollups
Q_NAMES = [f"p{int(q * 100)}_ms" for q in QUANTILES]
Result = tuple[pl.DataFrame, str]


def _rows(
    an: Analytics, table: str, f: Filters, options: TaskOptions | None, bucket: str | None
) -> tuple[pl.DataFrame, str] | None:
    got = rows(an, table, f, options)
    if got is None:
        return None
    return with_bucket(_filter(got[0], f, TABLES[table]), bucket), got[1]


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)


def _agg(
    df: pl.DataFrame,
    names: list[str],
    exprs: list[pl.Expr],
    hists: Sequence[tuple[str, Sequence[float], Sequence[str]]],
) -> pl.DataFrame:
    """Aggregate rollup rows per group, with percentiles from the merged histograms."""
    if df.height == 0:
        return pl.DataFrame()
    base = df.group_by(names, maintain_order=True).agg(exprs) if names else df.select(exprs)
    for name, qs, outs in hists:
        q = sketch.quantiles(df, names, name, qs, outs)
        if names:
            base = base.join(q, on=names, how="left", nulls_equal=True)
        elif q.height:
            base = pl.concat([base, q], how="horizontal")
        else:
            base = base.with_columns([pl.lit(None, pl.Float64).alias(o) for o in outs])
    return base


def _sorted(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    return df.sort(names, nulls_last=True) if names and df.height else df


def _source(*parts: str) -> str:
    return "rollups" if all(p == "rollups" for p in parts) else "rollups+raw"


def _group(filters: Filters, keys: Sequence[str], allowed: Sequence[str], bucket: str | None) -> GroupBy | None:
    """The grouping when rollups can answer these filters and keys, else None (read raw)."""
    if not can_answer(filters, keys, bucket):
        return None
    try:
        return GroupBy.parse([k for k in keys if k], {k: k for k in allowed}, bucket)
    except ValueError:
        return None  # the raw report says why


def _nullable_sum(c: str) -> pl.Expr:
    return pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).otherwise(None)


def _task_columns() -> list[pl.Expr]:
    tasks, succ, cost = pl.col("tasks").sum(), pl.col("successful_tasks").sum(), _nullable_sum("task_cost_usd")
    return [
        tasks.alias("tasks"),
        succ.alias("successful_tasks"),
        pl.col("failed_tasks").sum().alias("failed_tasks"),
        (succ / tasks).alias("success_rate"),
        cost.alias("task_cost_usd"),
        pl.col("task_unpriced_calls").sum().alias("task_unpriced_calls"),
        (cost / tasks).alias("cost_per_task"),
        _ratio(cost, succ).alias("cost_per_successful_task"),
    ]


def latency_rolled(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    options: TaskOptions | None = None,
) -> Result | None:
    """The latency report from the `tasks` and `steps` rollups (None when they cannot answer)."""
    group = _group(filters, group_by, LATENCY_DIMS, bucket)
    if group is None or slow_ms != DEFAULT_SLOW_MS:
        return None
    with ThreadPoolExecutor(2) as pool:
        tasks = pool.submit(_rows, an, "tasks", filters, options, group.bucket)
        s = _rows(an, "steps", filters, options, group.bucket)
        t = tasks.result()
    if t is None or s is None:
        return None
    names = group.names

    def common(n: str) -> list[pl.Expr]:
        count = pl.col(n).sum()
        return [
            count.alias("count"),
            (pl.col("errors").sum() / count).alias("error_rate"),
            (pl.col("timeouts").sum() / count).alias("timeout_rate"),
            pl.col("dur_max").max().alias("max_ms"),
            (pl.col("slow").sum() / count).alias("slow_share"),
        ]

    order = ["level", *names, "count", "error_rate", "timeout_rate", *Q_NAMES, "max_ms", "slow_share"]
    frames = []
    if t[0].height:
        task = _agg(t[0], names, common("tasks"), [("dur", QUANTILES, Q_NAMES)])
        frames.append(task.with_columns(pl.lit("task").alias("level")).select(order))
    if s[0].height:
        extra = [pl.col(c).sum().alias(c) for c in ("ttft_count", "repeats", "retries")]
        hists = [("dur", QUANTILES, Q_NAMES), ("ttft", (0.5, 0.95), ("ttft_p50_ms", "ttft_p95_ms"))]
        step = _agg(s[0], ["level", *names], common("count") + extra, hists)
        frames.append(step.select([*order, "ttft_count", "ttft_p50_ms", "ttft_p95_ms", "repeats", "retries"]))
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return latency_order(df, names), _source(t[1], s[1])


def tasks_rolled(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> Result | None:
    """The tasks report from the `tasks` rollup."""
    group = _group(filters, group_by, TASK_DIMS, bucket)
    if group is None:
        return None
    t = _rows(an, "tasks", filters, options, group.bucket)
    if t is None:
        return None
    if t[0].height == 0:
        return pl.DataFrame(), t[1]
    sources = [pl.col("tasks").filter(pl.col("outcome_source") == s).sum().alias(f"from_{s}") for s in OUTCOME_SOURCES]
    exprs = [*_task_columns(), pl.col("unknown_tasks").sum().alias("unknown_tasks"), *sources]
    df = _agg(t[0], group.names, [*exprs, pl.col("llm_calls").sum()], [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))])
    cols = [*group.names, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "llm_calls"]
    return _sorted(df.select(cols), group.names), t[1]


def validation_rolled(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = ("validator",),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> Result | None:
    """The validation report from the `checks` rollup."""
    group = _group(filters, group_by, VALIDATION_DIMS, bucket)
    if group is None:
        return None
    c = _rows(an, "checks", filters, options, group.bucket)
    if c is None:
        return None
    checks, failures = pl.col("checks").sum(), pl.col("failures").sum()
    exprs = [checks.alias("checks"), failures.alias("failures"), (failures / checks).alias("failure_rate")]
    df = _agg(c[0], group.names, exprs, []) if c[0].height else pl.DataFrame()
    return _sorted(df, group.names), c[1]


def retrieval_rolled(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = ("data_source",),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
    k: int = DEFAULT_K,
) -> Result | None:
    """The retrieval report from the `retrieval` rollup; relevance at k from raw judged spans (`with_relevance`)."""
    group = _group(filters, group_by, RETRIEVAL_DIMS, bucket)
    if group is None:
        return None
    r = _rows(an, "retrieval", filters, options, group.bucket)
    if r is None:
        return None
    if r[0].height == 0:
        return pl.DataFrame(), r[1]
    queries, docs_n = pl.col("queries").sum(), pl.col("doc_count_n").sum()
    exprs = [
        queries.alias("queries"),
        pl.col("queries_without_content").sum().alias("queries_without_content"),
        _ratio(pl.col("doc_count_sum").sum().cast(pl.Float64), docs_n).alias("docs_per_query"),
        _ratio(pl.col("empty_queries").sum(), docs_n).alias("empty_rate"),
        _ratio(_nullable_sum("top1_sum"), pl.col("top1_n").sum()).alias("avg_top1_score"),
        _ratio(_nullable_sum("score_sum"), pl.col("score_n").sum()).alias("mean_score"),
    ]
    qs = (0.5, 0.95, 0.99)
    df = _agg(r[0], group.names, [*exprs, (pl.col("errors").sum() / queries).alias("error_rate")],
              [("dur", qs, ("p50_ms", "p95_ms", "p99_ms"))])  # fmt: skip
    cols = [*group.names, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "p99_ms", "error_rate"]
    return with_relevance(an, filters, group_by, _sorted(df.select(cols), group.names), bucket=bucket, k=k), r[1]


def compare_rolled(
    an: Analytics, filters: Filters, by: str, a: str, b: str, *, options: TaskOptions | None = None
) -> Result | None:
    """The compare report from the `tasks` rollup."""
    if by not in COMPARE_BY or not can_answer(filters, (), None):
        return None
    t = _rows(an, "tasks", filters, options, None)
    if t is None:
        return None
    df = t[0].filter(pl.col(by).is_in([a, b])) if t[0].height else t[0]
    tasks, succ, cost = pl.col("tasks").sum(), pl.col("successful_tasks").sum(), _nullable_sum("task_cost_usd")
    exprs = [
        tasks.alias("tasks"),
        (succ / tasks).alias("success_rate"),
        (cost / tasks).alias("cost_per_task"),
        _ratio(cost, succ).alias("cost_per_successful_task"),
        pl.col("task_unpriced_calls").sum().alias("unpriced_calls"),
    ]
    tail = [
        (pl.col("errors").sum() / tasks).alias("error_rate"),
        _ratio(pl.col("validation_failures").sum(), pl.col("validations").sum()).alias("validation_failure_rate"),
    ]
    out = _agg(df, [by], [*exprs, *tail], [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))]) if df.height else None
    names = [by, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "error_rate", "validation_failure_rate"]
    found = {r[by]: r for r in out.select(names).to_dicts()} if out is not None else {}
    rows_ = [found.get(v) or {by: v, "tasks": 0} for v in (a, b)]
    delta: dict[str, Any] = {by: "b - a"}
    for k in names[1:]:
        va, vb = rows_[0].get(k), rows_[1].get(k)
        delta[k] = vb - va if isinstance(va, int | float) and isinstance(vb, int | float) else None
    schema = {by: pl.String, "tasks": pl.Int64, **{k: pl.Float64 for k in names[2:]}, "unpriced_calls": pl.Int64}
    return pl.DataFrame([*rows_, delta], schema=schema, strict=False).select(names), t[1]


def _auto(rolled: Callable[[], Result | None], raw: Callable[[], pl.DataFrame], source: str, what: str) -> Result:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    if source != "raw":
        got = rolled()
        if got is not None:
            return got
        if source == "rollups":
            raise ValueError(
                f"{what}: rollups cannot answer (no rolled-up hour in the window, or attribute filters or "
                "groupings, minute buckets, a non-default slow threshold; for task-list also service, model, "
                "provider or prompt filters, or a limit over 100): use --source raw or auto"
            )
    return raw(), "raw"


def report(
    an: Analytics,
    name: str,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    source: str = "auto",
    options: TaskOptions | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    k: int = DEFAULT_K,
) -> Result:
    """Run a grouped report (latency, cost, tasks, validation, retrieval) from rollups where they
    can answer (source 'auto'), always from them ('rollups') or from raw spans ('raw')."""
    g = list(group_by)
    if name == "latency":
        return _auto(
            lambda: latency_rolled(an, filters, g, bucket=bucket, slow_ms=slow_ms, options=options),
            lambda: raw_latency(an, filters, g, bucket=bucket, slow_ms=slow_ms, options=options),
            source,
            name,
        )
    if name == "cost":
        g += [bucket] if bucket else []
        if source == "raw":
            from spanlake.analytics.reports.cost import cost

            return cost(an, filters, g, options=options), "raw"
        df, used = cost_auto(an, filters, g, options=options)
        if source == "rollups" and used == "raw":
            raise ValueError("cost: rollups cannot answer (attribute filters or groupings): use --source raw or auto")
        return df, used
    rolled: dict[str, tuple[Callable[[], Result | None], Callable[[], pl.DataFrame]]] = {
        "tasks": (
            lambda: tasks_rolled(an, filters, g, bucket=bucket, options=options),
            lambda: raw_tasks(an, filters, g, bucket=bucket, options=options),
        ),
        "validation": (
            lambda: validation_rolled(an, filters, g or ["validator"], bucket=bucket, options=options),
            lambda: raw_validation(an, filters, g or ["validator"], bucket=bucket, options=options),
        ),
        "retrieval": (
            lambda: retrieval_rolled(an, filters, g or ["data_source"], bucket=bucket, options=options, k=k),
            lambda: raw_retrieval(an, filters, g or ["data_source"], bucket=bucket, k=k),
        ),
    }
    if name not in rolled:
        raise ValueError(f"no rollups for report {name!r}")
    return _auto(*rolled[name], source, name)


def compare(
    an: Analytics,
    filters: Filters,
    by: str,
    a: str,
    b: str,
    *,
    source: str = "auto",
    options: TaskOptions | None = None,
) -> Result:
    """The compare report from rollups where they can answer."""
    return _auto(
        lambda: compare_rolled(an, filters, by, a, b, options=options),
        lambda: raw_compare(an, filters, by, a, b, options=options),
        source,
        "compare",
    )


OVERVIEW_SUMS = ("tasks", "successful_tasks", "failed_tasks", "task_unpriced_calls", "validations",
                 "validation_failures", "llm_calls", "tokens")  # fmt: skip


def overview_from_rollups(an: Analytics, filters: Filters, bucket: str) -> Any:
    """The dashboard overview from the `overview` rollup (None when it cannot answer)."""
    from spanlake.analytics.traces.overview import Overview

    if filters.since is None or filters.until is None or bucket == "minute" or not can_answer(filters, (), bucket):
        return None
    span = filters.until - filters.since
    previous = replace(filters, since=filters.since - span, until=filters.since)
    windows = {"current": filters, "previous": previous}
    got = {k: _rows(an, "overview", f, None, None if bucket == "hour" else bucket) for k, f in windows.items()}
    if any(v is None for v in got.values()):
        return None
    tasks = pl.col("tasks").sum()
    exprs = [
        *_task_columns(),
        _ratio(pl.col("validation_failures").sum(), pl.col("validations").sum()).alias("validation_failure_rate"),
        (pl.col("errors").sum() / tasks).alias("error_rate"),
        *(pl.col(c).sum().alias(c) for c in ("validations", "validation_failures", "llm_calls", "tokens")),
    ]
    order = ["tasks", "successful_tasks", "failed_tasks", "success_rate", "task_cost_usd", "task_unpriced_calls",
             "cost_per_task", "cost_per_successful_task", "p50_ms", "p95_ms", "error_rate", "validation_failure_rate",
             "validations", "validation_failures", "llm_calls", "tokens"]  # fmt: skip
    hist = [("dur", (0.5, 0.95), ("p50_ms", "p95_ms"))]
    totals: dict[str, dict[str, Any]] = {}
    for period, (df, _) in got.items():  # type: ignore[misc]
        if df.height and df["tasks"].sum() > 0:
            row = _agg(df, [], exprs, hist).select(order).to_dicts()[0]
            totals[period] = {"period": period, "bucket": None, "is_total": True, **row}
    cur = got["current"][0]  # type: ignore[index]
    if cur.height:
        by_bucket = cur.rename({"hour": "bucket"}) if bucket == "hour" else cur.drop("hour").rename({bucket: "bucket"})
        trend = _agg(by_bucket, ["bucket"], exprs, hist).select(["bucket", *order]).sort("bucket")
    else:
        trend = pl.DataFrame(schema={"bucket": pl.Datetime("us", "UTC")})
    empty = {"tasks": 0}
    src = _source(*(v[1] for v in got.values()))  # type: ignore[index]
    return Overview(totals.get("current", empty), totals.get("previous", empty), trend, bucket, src)


# --- list reports: the top rows of sums over hours (exact, like the sums above) ---------------

LISTED = ("unpriced", "task-list", "validation-errors", "retrieved-documents")
_DIM_FILTERS = ("service", "model", "provider", "prompt_name", "prompt_version")


def _list_rows(an: Analytics, table: str, filters: Filters, options: TaskOptions | None) -> Result | None:
    if not can_answer(filters, (), None):
        return None
    return _rows(an, table, filters, options, None)


def unpriced_rolled(an: Analytics, filters: Filters) -> Result | None:
    """reports.cost.unpriced from the `unpriced` rollup."""
    got = _list_rows(an, "unpriced", filters, None)
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


def validation_errors_rolled(an: Analytics, filters: Filters, limit: int) -> Result | None:
    """reports.validation.validation_errors from the `messages` rollup."""
    got = _list_rows(an, "messages", filters, None)
    if got is None:
        return None
    df, used = got
    names = ["validator", "pattern", "occurrences", "example", "example_trace_id"]
    if df.height == 0:
        return pl.DataFrame(schema={n: pl.Int64 if n == "occurrences" else pl.String for n in names}), used
    first = pl.col("example_trace_id").arg_min()
    out = df.group_by(["validator", "pattern"]).agg(
        pl.col("occurrences").sum(), pl.col("example").get(first), pl.col("example_trace_id").min()
    )
    out = out.sort(["occurrences", "validator", "pattern"], descending=[True, False, False], nulls_last=True)
    return out.head(limit).select(names), used


def retrieved_documents_rolled(an: Analytics, filters: Filters, limit: int) -> Result | None:
    """reports.retrieval.retrieved_documents from the `documents` rollup."""
    got = _list_rows(an, "documents", filters, None)
    if got is None:
        return None
    df, used = got
    names = ["data_source", "document_id", "retrievals"]
    if df.height == 0:
        return pl.DataFrame(schema={"data_source": pl.String, "document_id": pl.String, "retrievals": pl.Int64}), used
    out = df.group_by(["data_source", "document_id"]).agg(pl.col("retrievals").sum())
    out = out.sort(["retrievals", "data_source", "document_id"], descending=[True, False, False], nulls_last=True)
    return out.head(limit).select(names), used


def task_list_rolled(
    an: Analytics, filters: Filters, sort: str, limit: int, outcome: str | None, options: TaskOptions | None
) -> Result | None:
    """reports.tasks.task_list from the `task_top` rollup: windows without dimension filters and
    limits up to rollup_tables.TOP_N (each hour keeps that many per sort and outcome; read from
    the module when called, so a test can lower it)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if limit > rollup_tables.TOP_N or any(getattr(filters, d) is not None for d in _DIM_FILTERS):
        return None
    got = _list_rows(an, "task_top", filters, options)
    if got is None:
        return None
    df, used = got
    if outcome is not None and df.height:
        df = df.filter(pl.col("outcome") == outcome)
    if df.height:
        df = df.sort([SORTS[sort], "trace_id", "span_id"], descending=[True, False, False], nulls_last=True)
    return df.head(limit).drop("hour", strict=False), used


def list_report(
    an: Analytics,
    name: str,
    filters: Filters,
    *,
    source: str = "auto",
    limit: int = 20,
    sort: str = "duration",
    outcome: str | None = None,
    options: TaskOptions | None = None,
) -> Result:
    """Run a list report (unpriced, task-list, validation-errors, retrieved-documents) from rollups
    where they can answer (source 'auto'), always from them ('rollups') or from raw spans ('raw')."""
    listed: dict[str, tuple[Callable[[], Result | None], Callable[[], pl.DataFrame]]] = {
        "unpriced": (lambda: unpriced_rolled(an, filters), lambda: unpriced(an, filters)),
        "task-list": (
            lambda: task_list_rolled(an, filters, sort, limit, outcome, options),
            lambda: task_list(an, filters, sort=sort, limit=limit, outcome=outcome, options=options),
        ),
        "validation-errors": (
            lambda: validation_errors_rolled(an, filters, limit),
            lambda: validation_errors(an, filters, limit=limit),
        ),
        "retrieved-documents": (
            lambda: retrieved_documents_rolled(an, filters, limit),
            lambda: retrieved_documents(an, filters, limit=limit),
        ),
    }
    if name not in listed:
        raise ValueError(f"no rollups for report {name!r}")
    return _auto(*listed[name], source, name)
