"""Reading rollup rows: up-to-date hours from the files, the rest computed from raw spans, and
the sums, ratios and merged-histogram percentiles that turn rows back into a report.

A report's rollup reader (declared with the report, analytics/reports/<name>.py) calls `read`
for the tables it needs and aggregates the rows with `agg` / `sum_rows`; it returns
`(frame, source)`, `source` being `rollups` (every hour from rollup files) or `rollups+raw`
(ragged edges or stale hours computed from raw spans on the fly), or None when rollups cannot
answer (then the raw report runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.rollups.state import fresh_hours
from spanlake.analytics.rollups.tables import HOUR, Table, floor_hour, hour_name, rollup_dir
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy
from spanlake.analytics.task_outcomes import TaskOptions

Result = tuple[pl.DataFrame, str]
NULLABLE = ("cost_usd", "reported_cost_usd", "task_cost_usd", "top1_sum", "score_sum")


def rows(an: Analytics, table: Table, filters: Filters, options: TaskOptions | None = None) -> Result | None:
    """The rows of `table` for the window of `filters` (its project only; the caller applies
    the other filters): up-to-date hours from the rollup files, the rest (ragged edges,
    stale hours) computed from raw spans. None when no hour can come from rollups, or when
    `filters` names a task and the table's rows do not carry task names."""
    options = options or TaskOptions()
    since, until = filters.since, filters.until
    if since is None or until is None or since >= until or not carries_task_name(table, filters):
        return None
    cache = an.row_cache
    if cache is not None and cache.answers(table, filters):
        return cache.rows(an, table, filters, options)  # the budget watch: rows kept in memory
    fresh = fresh_hours(an, table, since, until, options)
    if not fresh:
        return None
    root = rollup_dir(an.lake.data_dir) / table.name
    files = [p for p in (root / f"{hour_name(h)}.parquet" for h in sorted(fresh)) if p.exists()]
    frames = []
    if files:
        lf = pl.scan_parquet(files)
        if filters.project is not None:
            lf = lf.filter(pl.col("project") == filters.project)
        frames.append(lf.collect())
    pieces = gaps(since, until, fresh)
    window = Filters(project=filters.project)
    if pieces:
        # Edges are small queries with single-threaded stretches (planning, footers): side by side.
        with ThreadPoolExecutor(len(pieces)) as pool:
            frames += pool.map(lambda r: table.build(an, replace(window, since=r[0], until=r[1]), options), pieces)
    frames = [f for f in frames if f.height] or frames[:1]
    df = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return df, "rollups+raw" if pieces else "rollups"


def read(
    an: Analytics, table: Table, f: Filters, options: TaskOptions | None = None, bucket: str | None = None
) -> Result | None:
    """`rows` with the dimension filters of `f` applied and the time `bucket` column added."""
    got = rows(an, table, f, options)
    if got is None:
        return None
    return with_bucket(apply_filters(got[0], f, table), bucket), got[1]


def read_listed(an: Analytics, table: Table, f: Filters, options: TaskOptions | None = None) -> Result | None:
    """`read` for a list report (not grouped): None when rollups cannot answer its filters."""
    if not can_answer(f, (), None):
        return None
    return read(an, table, f, options)


def gaps(since: datetime, until: datetime, fresh: set[datetime]) -> list[tuple[datetime, datetime]]:
    """The parts of [since, until) not covered by the `fresh` hours, as ranges."""
    out: list[tuple[datetime, datetime]] = []
    t = since
    while t < until:
        h = floor_hour(t)
        end = min(h + HOUR, until)
        if not (h in fresh and t == h and end == h + HOUR):
            if out and out[-1][1] == t:
                out[-1] = (out[-1][0], end)
            else:
                out.append((t, end))
        t = end
    return out


def carries_task_name(table: Table, f: Filters) -> bool:
    """Whether rows of `table` can answer `f`'s task name filter (none, or the table is keyed by task name)."""
    return f.task_name is None or "task_name" in table.keys


def apply_filters(df: pl.DataFrame, f: Filters, table: Table) -> pl.DataFrame:
    """The dimension filters of `f` that `table` takes on its rows (a model matches `model` or
    `response_model`), and the task name where the table is keyed by it (`carries_task_name`)."""
    if df.height == 0:
        return df
    cols = set(df.columns)
    for name in ("project", "service", "provider", "prompt_name", "prompt_version"):
        value = getattr(f, name)
        if value is not None and name in table.filters:
            df = df.filter(pl.col(name) == value)
    if f.task_name is not None and "task_name" in table.keys:
        df = df.filter(pl.col("task_name") == f.task_name)
    if f.model is not None:
        cond = pl.col("model") == f.model
        if "response_model" in cols:
            cond = cond | (pl.col("response_model") == f.model)
        df = df.filter(cond)
    return df


def can_answer(filters: Filters, group_by: Sequence[str], bucket: str | None) -> bool:
    """Whether a report with these arguments can be read from rollups (no attributes, no minute buckets)."""
    keys = [k for k in group_by if k]
    if any(k.strip().startswith("attr:") for k in keys) or filters.attributes:
        return False
    return bucket != "minute" and "minute" not in keys


def group(filters: Filters, keys: Sequence[str], allowed: Sequence[str], bucket: str | None) -> GroupBy | None:
    """The grouping when rollups can answer these filters and keys, else None (read raw)."""
    if not can_answer(filters, keys, bucket):
        return None
    try:
        return GroupBy.parse([k for k in keys if k], {k: k for k in allowed}, bucket)
    except ValueError:
        return None  # the raw report says why


def with_bucket(df: pl.DataFrame, bucket: str | None) -> pl.DataFrame:
    """Add the time bucket column (`hour`, `day`, `week`, `month`) from the rows' hour."""
    if not bucket or bucket == "hour" or df.height == 0:
        return df
    every = {"day": "1d", "week": "1w", "month": "1mo"}[bucket]
    return df.with_columns(pl.col("hour").dt.truncate(every).alias(bucket))


def sum_rows(df: pl.DataFrame, group: GroupBy, metrics: Sequence[str]) -> pl.DataFrame:
    """Sum `metrics` of rollup rows per group (a NULL-only sum stays NULL, as in SQL)."""
    if df.height == 0:
        return pl.DataFrame()
    df = with_bucket(df, group.bucket)
    sums = [nullable_sum(m).alias(m) if m in NULLABLE else pl.col(m).sum().alias(m) for m in metrics]
    return df.group_by(group.names, maintain_order=True).agg(sums) if group.names else df.select(sums)


def nullable_sum(c: str) -> pl.Expr:
    """SQL's sum: NULL when every value is NULL (an all-unpriced group has no cost, not 0)."""
    return pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).otherwise(None)


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, NULL when den is not positive."""
    return pl.when(den > 0).then(num / den).otherwise(None)


def agg(
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


def sort_groups(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Rows sorted by their group keys (NULL last)."""
    return df.sort(names, nulls_last=True) if names and df.height else df


def source_of(*parts: str) -> str:
    """`rollups` when every part came from rollup files alone, else `rollups+raw`."""
    return "rollups" if all(p == "rollups" for p in parts) else "rollups+raw"
