"""Shared pieces of the report SQL: the latency metric list and group-by helpers."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from spanlake.analytics.rollups.tables import CALL_KEYS
from spanlake.analytics.spans import SPAN_DIMS, GroupBy, Params, select_list

# The NULL check first spares the regex on the (many) spans without an error type or message.
TIMEOUT_PREDICATE = (
    "((error_type IS NOT NULL OR status_message IS NOT NULL)"
    " AND (lower(coalesce(error_type, '')) SIMILAR TO '.*(timeout|timed.?out|deadline).*'"
    " OR lower(coalesce(status_message, '')) SIMILAR TO '.*(timeout|timed.?out|deadline).*'))"
)


QUANTILES = (0.5, 0.9, 0.95, 0.99)
Q_NAMES = [f"p{int(q * 100)}_ms" for q in QUANTILES]
DEFAULT_SLOW_MS = 5000.0  # latency: the slow-path threshold (rollups count tasks and steps over it)


def latency_metrics(p: Params, slow_ms: float, duration: str = "duration_ms") -> str:
    """count, error/timeout rate, percentiles (as one list `_q`, see `unpack_quantiles`), max, slow share.

    Percentiles are linear-interpolated (quantile_cont), computed in one pass per group.
    """
    slow = p.add(float(slow_ms))
    return (
        "count(*) AS count, "
        "avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate, "
        f"avg(CASE WHEN {TIMEOUT_PREDICATE} THEN 1.0 ELSE 0.0 END) AS timeout_rate, "
        f"quantile_cont({duration}, {list(QUANTILES)}) AS _q, max({duration}) AS max_ms, "
        f"avg(CASE WHEN {duration} > {slow} THEN 1.0 ELSE 0.0 END) AS slow_share"
    )


def unpack_quantiles(df: pl.DataFrame) -> pl.DataFrame:
    """Replace the `_q` list column with p50_ms, p90_ms, p95_ms, p99_ms in its place."""
    if "_q" not in df.columns:
        return df
    names = Q_NAMES
    cols = [pl.col("_q").list.get(i, null_on_oob=True).cast(pl.Float64).alias(n) for i, n in enumerate(names)]
    order: list[str] = []
    for c in df.columns:
        order += names if c == "_q" else [c]
    return df.with_columns(cols).select(order)


def keys_select(group: GroupBy, dims: Mapping[str, str], time_col: str = "start_time") -> str:
    """The group-key part of a SELECT (use with GROUP BY ALL)."""
    return select_list(group.select(dims, time_col))


def join_on_keys(left: pl.DataFrame, right: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Full outer join on group keys (NULL keys equal), or a horizontal concat without keys.

    A side without rows may also be without columns (rollup sums of nothing): the other side
    is then the answer as it is."""
    for empty, other in ((left, right), (right, left)):
        if empty.height == 0 and not set(keys) <= set(empty.columns):
            return other
    if not keys:
        if left.height == 0:
            return right
        if right.height == 0:
            return left
        return pl.concat([left, right], how="horizontal")
    return left.join(right, on=keys, how="full", coalesce=True, nulls_equal=True)


def span_keys(*first: str) -> dict[str, str]:
    """Group-by name -> column of the span relation, for rollup keys `first` + CALL_KEYS."""
    return {**{k: k for k in first}, **{k: SPAN_DIMS[k] for k in CALL_KEYS}}
