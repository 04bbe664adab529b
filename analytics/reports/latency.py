"""Latency: tasks end to end and each step category — count, percentiles, errors, timeouts, retries, TTFT."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.reports.common import (
    DEFAULT_SLOW_MS,
    Q_NAMES,
    QUANTILES,
    TIMEOUT_PREDICATE,
    keys_select,
    latency_metrics,
    unpack_quantiles,
)
from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.reports.task_rollup import TASKS
from spanlake.analytics.rollups.read import agg, group, read, source_of
from spanlake.analytics.rollups.tables import CALL_KEYS, Table, hours, unpacked
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import (
    RAW_FILTER_COLUMNS,
    SPAN_DIMS,
    STEP_CATEGORIES,
    Filters,
    GroupBy,
    Params,
    SpanSource,
    dim_predicates,
    quote_ident,
    select_list,
)
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, earlier_tasks, named_member_cte, task_ctes

DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version", "name")
# A step repeats (or retries) the attempt of the same name under the same parent just before
# it, when that attempt started at most this long before it.
RETRY_LOOKBACK = timedelta(hours=1)


def steps_source(filters: Filters, group: GroupBy | None = None) -> SpanSource:
    """Step spans of the window and RETRY_LOOKBACK before it (for the attempt before each);
    dimension and attribute filters apply after attempts are matched (`steps_ctes`)."""
    return SpanSource(
        filters,
        group or GroupBy(),
        span_level_filters=False,
        widen_before=RETRY_LOOKBACK,
        categories=STEP_CATEGORIES,
        priced=False,
        outside_window_traces_only=True,
    )


def steps_ctes(
    filters: Filters, p: Params, keys: Sequence[tuple[str, str]], spans: str = "sp", keep_also: str | None = None
) -> str:
    """CTEs `steps` (the window's step spans matching the filters) and `step_repeats` (`repeats`
    and `retries` per hash `g` of the group `keys`, for `step_groups`), over `sp` (or the
    relation named `spans`) read like `steps_source`; `keep_also` is one more condition a step
    must meet (e.g. being inside a task of a name).

    The attempt before each step is found in one sort by a 128-bit hash of (project, trace,
    parent, name) (two independent 64-bit hashes, the odds of a clash below those of two random
    trace ids meeting), then start time and span id: a window partitioned by those four strings
    and carrying every measured column cost 2-3x more at 8M steps. Filters apply after the
    attempts are matched, so the attempt before may be of another model or prompt. A span that
    repeats the span of its call that counts (`duplicate_of`) is neither a step nor an attempt;
    a span whose parent is that duplicate and that it repeats is an attempt under the duplicate's parent
    (an app's retry calls the instrumented method again: the duplicates are the siblings).
    """
    preds = ["duplicate_of IS NULL", *dim_predicates(filters, p, RAW_FILTER_COLUMNS)]
    if filters.since is not None:
        preds.append(f"start_time >= {p.add(filters.since)}")
    if filters.attributes:
        preds.append("attr_match")
    if keep_also is not None:
        preds.append(keep_also)
    keep = " AND ".join(preds) or "TRUE"
    lookback = p.add(int(RETRY_LOOKBACK / timedelta(microseconds=1)))
    return f"""steps AS (SELECT * FROM {spans} WHERE {keep}),
    attempts AS (
      SELECT {_key_hash([e for e, _ in keys])} AS g, {keep} AS keep, start_time, span_id,
        status_code = 'ERROR' AS failed,
        hash(project, trace_id, parent_span_id, name) AS a1,
        hash(concat_ws(chr(31), project, trace_id, parent_span_id, coalesce(name, chr(30)))) AS a2
      FROM (
        SELECT s.* EXCLUDE (parent_span_id), coalesce(w.parent_span_id, s.parent_span_id) AS parent_span_id
        FROM {spans} s LEFT JOIN sl_dup w ON w.project = s.project AND w.trace_id = s.trace_id
          AND w.span_id = s.parent_span_id AND w.duplicate_of = s.span_id
      ) WHERE parent_span_id IS NOT NULL AND duplicate_of IS NULL
    ),
    step_repeats AS (
      SELECT g, count(*) FILTER (WHERE is_repeat) AS repeats,
        count(*) FILTER (WHERE is_repeat AND prev_failed) AS retries
      FROM (
        SELECT g, keep, lag(failed) OVER w AS prev_failed,
          lag(a1) OVER w = a1 AND lag(a2) OVER w = a2
            AND epoch_us(start_time) - epoch_us(lag(start_time) OVER w) <= {lookback} AS is_repeat
        FROM attempts WINDOW w AS (ORDER BY a1, a2, start_time, span_id)
      ) WHERE keep GROUP BY g
    )"""


def step_groups(keys: Sequence[tuple[str, str]], metrics: str) -> str:
    """`SELECT <keys>, <metrics>, repeats, retries FROM steps GROUP BY <keys>` (needs `steps_ctes`
    with the same keys). Two groups whose keys share a hash would share their counts, so that
    (never seen) raises an error instead."""
    g = _key_hash([quote_ident(name) for _, name in keys])
    return f"""SELECT m.* EXCLUDE (_g, _n),
        CASE WHEN m._n > 1 THEN error('two step groups share a key hash; group by fewer keys')
             ELSE coalesce(r.repeats, 0) END AS repeats,
        coalesce(r.retries, 0) AS retries
      FROM (
        SELECT *, {g} AS _g, count(*) OVER (PARTITION BY {g}) AS _n
        FROM (SELECT {select_list(list(keys))}{metrics} FROM steps GROUP BY ALL)
      ) m LEFT JOIN step_repeats r ON r.g = m._g"""


def _key_hash(exprs: Sequence[str]) -> str:
    return f"hash({', '.join(exprs)})" if exprs else "0::UBIGINT"


def latency(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """One row per level ('task', then each step category) and group.

    Tasks are measured end to end (the task span's duration). Steps are spans of the
    categories in STEP_CATEGORIES. `slow_share` is the share of rows over `slow_ms`.
    `repeats` counts steps whose name ran under the same parent at most RETRY_LOOKBACK before
    (agent loops repeat legitimately); `retries` counts the repeats whose attempt just before
    failed (ERROR), whatever that attempt's model or prompt.
    `ttft_*` describe time to first token of streamed calls (spans that recorded it).
    With a task name, steps are those whose innermost task has that name (analytics.task_outcomes).
    """
    options = options or TaskOptions()
    named = filters.task_name is not None
    # With a task name, the tasks a step can be in start up to `horizon` before the window.
    task_reach = options.skew + (options.horizon if named else timedelta(0))
    task_group = GroupBy.parse(group_by, {k: TASK_DIMS[k] for k in DIMS}, bucket)
    span_group = GroupBy.parse(group_by, {k: SPAN_DIMS[k] for k in DIMS}, bucket)

    task_keys = keys_select(task_group, {k: TASK_DIMS[k] for k in DIMS})
    step_keys = [("category", "level"), *span_group.select({k: SPAN_DIMS[k] for k in DIMS})]

    def body(p: Params) -> str:
        # One read of the spans for both parts (at 10M spans a second read, its de-duplication
        # and a second connection cost more than a second of the ~9 s); each part narrows the
        # union back to what its own source reads.
        task_from, step_from = ["TRUE"], [f"category IN ({', '.join(p.add(c) for c in STEP_CATEGORIES)})"]
        if filters.since is not None:
            task_from.append(f"start_time >= {p.add(filters.since - task_reach)}")
            step_from.append(f"start_time >= {p.add(filters.since - RETRY_LOOKBACK)}")
        if filters.until is not None:
            step_from.append(f"start_time < {p.add(filters.until)}")
        metrics = f"""{latency_metrics(p, slow_ms)},
          count(time_to_first_token_ms) AS ttft_count,
          quantile_cont(time_to_first_token_ms, 0.5) AS ttft_p50_ms,
          quantile_cont(time_to_first_token_ms, 0.95) AS ttft_p95_ms"""
        tasks_of, steps_of, in_task = "tasks", "step_sp", None
        named_ctes = ""
        if named:
            since = f"start_time >= {p.add(filters.since)}" if filters.since is not None else "TRUE"
            tasks_of, steps_of, in_task = f"(SELECT * FROM tasks WHERE {since})", "named_step_sp", "in_task"
            named_ctes = f"""{named_member_cte(filters, p)},
            named_step_sp AS (
              SELECT s.*, m.span_id IS NOT NULL AS in_task FROM step_sp s LEFT JOIN named_member m
                ON m.project = s.project AND m.trace_id = s.trace_id AND m.span_id = s.span_id
            ),"""
        return f"""task_sp AS (SELECT * FROM sp WHERE {" AND ".join(task_from)}),
        step_sp AS (SELECT * FROM sp WHERE {" AND ".join(step_from)}),
        {task_ctes(earlier_tasks(filters, options) if named else filters, task_group, options, p, spans="task_sp")},
        {named_ctes}
        {steps_ctes(filters, p, step_keys, spans=steps_of, keep_also=in_task)},
        task_rows_out AS (
          SELECT 'task' AS level, {task_keys}{latency_metrics(p, slow_ms)} FROM {tasks_of} GROUP BY ALL
        ),
        step_rows_out AS ({step_groups(step_keys, metrics)})
        SELECT * FROM task_rows_out UNION ALL BY NAME SELECT * FROM step_rows_out"""

    src = SpanSource(
        filters,
        span_group,
        span_level_filters=False,
        widen_before=max(task_reach, RETRY_LOOKBACK),
        widen_after=options.horizon,
        priced=False,
        outside_window_traces_only=True,
    )  # the union of task_source's and steps_source's spans
    return _order(unpack_quantiles(an.run(src, body)), span_group.names)


def _order(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if df.height == 0:
        return df
    rank = {name: i for i, name in enumerate(("task", *STEP_CATEGORIES))}
    df = df.with_columns(pl.col("level").replace_strict(rank, default=99).alias("_rank"))
    return df.sort(["_rank", *keys], nulls_last=True).drop("_rank")


# --- from hourly rollups ---------------------------------------------------------------------

STEP_KEYS = ("level", *CALL_KEYS, "name")


def build_steps(an: Analytics, f: Filters, options: TaskOptions, bucket: str = "hour") -> pl.DataFrame:
    """Step latency per category (`level`): counts, errors, timeouts, slow, repeats, retries, durations, TTFT."""
    dims = {**{k: SPAN_DIMS[k] for k in STEP_KEYS if k != "level"}, "level": "category"}
    group = GroupBy(STEP_KEYS, (), bucket)

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
        return f"{steps_ctes(f, p, keys)},\n{unpacked(step_groups(keys, metrics), 'dur', 'ttft')}"

    df = an.run(steps_source(f, group), body)
    # the column order of the files written before step_groups, so old and new hours scan as one
    head = [c for c in df.columns if c not in ("repeats", "retries")]
    at = head.index("slow") + 1
    return df.select([*head[:at], "repeats", "retries", *head[at:]])


STEPS = Table("steps", STEP_KEYS, build_steps, lambda o: (hours(RETRY_LOOKBACK), 0), minute_grain=True)


def latency_rolled(an: Analytics, q: Request) -> Result | None:
    """The latency report from the `tasks` and `steps` rollups (None when they cannot answer)."""
    g = group(q.filters, q.group_by, DIMS, q.bucket)
    if g is None or q.params["slow_ms"] != DEFAULT_SLOW_MS:
        return None
    with ThreadPoolExecutor(2) as pool:
        tasks = pool.submit(read, an, TASKS, q.filters, q.options, g.bucket)
        s = read(an, STEPS, q.filters, q.options, g.bucket)
        t = tasks.result()
    if t is None or s is None:
        return None
    names = g.names

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
        task = agg(t[0], names, common("tasks"), [("dur", QUANTILES, Q_NAMES)])
        frames.append(task.with_columns(pl.lit("task").alias("level")).select(order))
    if s[0].height:
        extra = [pl.col(c).sum().alias(c) for c in ("ttft_count", "repeats", "retries")]
        hists = [("dur", QUANTILES, Q_NAMES), ("ttft", (0.5, 0.95), ("ttft_p50_ms", "ttft_p95_ms"))]
        step = agg(s[0], ["level", *names], common("count") + extra, hists)
        frames.append(step.select([*order, "ttft_count", "ttft_p50_ms", "ttft_p95_ms", "repeats", "retries"]))
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    return _order(df, names), source_of(t[1], s[1])


REPORT = Report(
    "latency",
    10,
    "p50/p90/p95/p99/max of tasks end to end and of each step category; errors, timeouts, retries, TTFT",
    raw=lambda an, q: latency(
        an, q.filters, q.group_by, bucket=q.bucket, slow_ms=q.params["slow_ms"], options=q.options
    ),
    rollup=latency_rolled,
    dimensions=("service", "model", "prompt_version", "name"),
    params=(Param("slow_ms", float, DEFAULT_SLOW_MS, ge=0, le=1e9),),
    tables=(TASKS, STEPS),
    chart="p95_ms",
)
