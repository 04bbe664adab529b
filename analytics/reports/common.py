"""Shared pieces of the report SQL: the latency metric list and group-by helpers."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from spanlake.analytics.query import GroupBy, Params, select_list

TIMEOUT_PREDICATE = (
    "(lower(coalesce(error_type, '')) SIMILAR TO '.*(timeout|timed.?out|deadline).*'"
    " OR lower(coalesce(status_message, '')) SIMILAR TO '.*(timeout|timed.?out|deadline).*')"
)


def latency_metrics(p: Params, slow_ms: float, duration: str = "duration_ms") -> str:
    """count, error/timeout rate, p50/p90/p95/p99/max and slow-path share (linear-interpolated percentiles)."""
    slow = p.add(float(slow_ms))
    qs = "".join(f"quantile_cont({duration}, {q}) AS p{int(q * 100)}_ms, " for q in (0.5, 0.9, 0.95, 0.99))
    return (
        "count(*) AS count, "
        "avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate, "
        f"avg(CASE WHEN {TIMEOUT_PREDICATE} THEN 1.0 ELSE 0.0 END) AS timeout_rate, "
        f"{qs}max({duration}) AS max_ms, "
        f"avg(CASE WHEN {duration} > {slow} THEN 1.0 ELSE 0.0 END) AS slow_share"
    )


def keys_select(group: GroupBy, dims: Mapping[str, str], time_col: str = "start_time") -> str:
    """The group-key part of a SELECT (use with GROUP BY ALL)."""
    return select_list(group.select(dims, time_col))


def join_on_keys(left: pl.DataFrame, right: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Full outer join on group keys (NULL keys equal), or a horizontal concat without keys."""
    if not keys:
        if left.height == 0:
            return right
        if right.height == 0:
            return left
        return pl.concat([left, right], how="horizontal")
    return left.join(right, on=keys, how="full", coalesce=True, nulls_equal=True)
