"""What a rollup table is, and where its hourly files live.

A table is declared beside the report that reads it (analytics/reports/<name>.py); its
builder takes a window (`Filters` with since/until and at most a project) and returns one row
per (hour, keys) with additive columns — counts, sums, min/max, and log-bucket histograms
(analytics.sketch) for percentiles — computed by the same SQL as the raw report, grouped by
the hour a row belongs to. So the rows of a window are the rows of its hours, and the rollups
can store hours, rebuild the ones that change, and compute any hour they lack on the fly.

`reach`: how many lake hours before and after a row's hour its value depends on (the spans a
report reads around a task or step), so a change in lake hour h invalidates the rows of hours
h - after … h + before. `labels`: rows depend on human labels (outcomes).

Files: `<data_dir>/rollups/<table>/<YYYYMMDDTHH>.parquet`, one per table and UTC hour.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.storage.layout import DataDir

HOUR = timedelta(hours=1)
COST_DIMS = ("project", "service", "model", "provider", "prompt_name", "prompt_version")
CALL_KEYS = (*COST_DIMS, "response_model")

Builder = Callable[[Analytics, Filters, TaskOptions], pl.DataFrame]


@dataclass(frozen=True)
class Table:
    """One rollup table: its group keys and builder, and what its rows depend on."""

    name: str
    keys: tuple[str, ...]
    build: Builder
    reach: Callable[[TaskOptions], tuple[int, int]]  # (before, after) in lake hours
    labels: bool = False
    # the dimension filters its rows carry (the overview's rows have no provider or prompt name)
    filters: tuple[str, ...] = ("project", "service", "provider", "prompt_name", "prompt_version")
    # its builder also takes bucket="minute" (rows per minute: analytics.rollups.row_cache)
    minute_grain: bool = False


def hours(d: timedelta) -> int:
    """Whole hours covering `d`."""
    return math.ceil(d / HOUR)


def no_reach(options: TaskOptions) -> tuple[int, int]:
    """The reach of a table whose rows depend on their own hour only."""
    return (0, 0)


def task_reach(options: TaskOptions) -> tuple[int, int]:
    """The reach of tables of tasks: the clock skew before, the task horizon after."""
    return hours(options.skew), hours(options.horizon)


def unpacked(aggregate: str, *histograms: str) -> str:
    """`agg AS (<aggregate>) SELECT … FROM agg` with the histogram maps unpacked into lists."""
    drop = ", ".join(f"_h_{h}" for h in histograms)
    lists = ", ".join(sketch.unpack_sql(h) for h in histograms)
    return f"agg AS ({aggregate})\n SELECT * EXCLUDE ({drop}), {lists} FROM agg"


def rollup_dir(dd: DataDir) -> Path:
    """The folder of every rollup table and of `state.json`."""
    return dd.root / "rollups"


def hour_name(h: datetime) -> str:
    return h.strftime("%Y%m%dT%H")


def parse_hour(name: str) -> datetime:
    return datetime.strptime(name, "%Y%m%dT%H").replace(tzinfo=UTC)


def floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    return f if f == t else f + HOUR


def whole_hours(since: datetime, until: datetime) -> set[datetime]:
    """The UTC hours lying wholly inside [since, until)."""
    first, last = ceil_hour(since), floor_hour(until)
    return {first + i * HOUR for i in range(max(0, int((last - first) / HOUR)))}
