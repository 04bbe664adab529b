"""Rollup rows kept in memory between evaluations of many windows (the budget watch: every
minute, a hundred budgets over windows that move by a minute).

A report's rollup reader asks `read.rows` for the rows of its window. Without this cache those
are the up-to-date hours' files plus the ragged edges computed from raw spans on each call;
with it (set as `Analytics.row_cache` while budgets are evaluated, analytics.budgets.evaluate):

- the hourly files are read once and kept while their file does not change;
- the edges come from rows per *minute* (the tables' own builders with bucket='minute', so the
  same SQL), built once per lake hour and kept until the lake changes in a way that can change
  that hour's rows (the same test as the rollups' freshness: the hour's span files, the
  hours sharing a trace with it, labels for the task tables, prices);
- so each window's rows are slices of memory. Windows must start and end on a minute.

Sums, counts and rates are the same as from raw spans. Percentiles come from the merged
log-bucket sketches of those rows (analytics.sketch: within 1 % of the exact value), as the
reports' rollup path gives them; a window with no whole hour is answered from minute rows
here, where the report alone would read raw spans.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from spanlake.analytics.rollups.state import (
    changed_since,
    fresh_hours,
    label_signatures,
    price_fingerprint,
    source_signatures,
)
from spanlake.analytics.rollups.tables import HOUR, Table, floor_hour, hour_name, rollup_dir, whole_hours
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions

MINUTE = timedelta(minutes=1)
KEEP = timedelta(days=32)  # minute rows of hours older than this (from the cycle's time) are dropped
Result = tuple[pl.DataFrame, str]


@dataclass
class _Built:
    """Minute rows of one (table, project, hour), and the lake they were built from."""

    rows: pl.DataFrame
    signatures: dict[datetime, str]
    labels: dict[str, str]
    prices: str


@dataclass
class _Cycle:
    """What one evaluation cycle reads once: the lake's signatures, prices, fresh hours."""

    at: datetime
    signatures: dict[datetime, str] = field(default_factory=dict)
    labels: dict[str, str] | None = None
    prices: dict[str, str] = field(default_factory=dict)
    fresh: dict[tuple[str, str], set[datetime]] = field(default_factory=dict)
    answered: dict[tuple[str, str | None, datetime, datetime, str], Result] = field(default_factory=dict)


def aligned(t: datetime) -> bool:
    return t.second == 0 and t.microsecond == 0


class RowCache:
    """Rows of the minute-grain tables for windows on whole minutes; `begin(an, at)` before each
    evaluation cycle (it reads the lake's signatures once), then `rows` as `read.rows` does."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._files: dict[str, tuple[int, pl.DataFrame]] = {}  # rollup file → (mtime_ns, rows)
        self._minutes: dict[tuple[str, str | None, datetime], _Built] = {}
        self._cycle: _Cycle | None = None
        self.builds = 0  # minute-row builds from raw spans (for tests and benchmarks)

    def begin(self, an: Analytics, at: datetime) -> None:
        """Start a cycle at `at`: the lake as it is now decides what is still valid."""
        with self._lock:
            self._cycle = _Cycle(at, source_signatures(an.lake.data_dir))
            for key in [k for k in self._minutes if k[2] < floor_hour(at) - KEEP]:
                del self._minutes[key]

    def answers(self, table: Table, filters: Filters) -> bool:
        """Whether `rows` answers this table and window (else `read.rows` does as usual)."""
        since, until = filters.since, filters.until
        return (
            self._cycle is not None
            and table.minute_grain
            and since is not None
            and until is not None
            and since < until
            and aligned(since)
            and aligned(until)
        )

    def rows(self, an: Analytics, table: Table, filters: Filters, options: TaskOptions) -> Result:
        """The rows of `table` for [since, until) of `filters`, its project only: fresh hours
        from their files, the rest from minute rows (source 'rollups+raw' when any)."""
        assert filters.since is not None and filters.until is not None
        with self._lock:
            cycle = self._cycle
            assert cycle is not None, "begin() first"
            since, until = filters.since, filters.until
            key = (table.name, filters.project, since, until, repr(options))
            if key not in cycle.answered:  # budgets of one window share its rows (frames are immutable)
                cycle.answered[key] = self._rows(an, cycle, table, filters, options)
            return cycle.answered[key]

    def _rows(self, an: Analytics, cycle: _Cycle, table: Table, filters: Filters, options: TaskOptions) -> Result:
        since, until = filters.since, filters.until
        assert since is not None and until is not None
        fresh = self._fresh(an, cycle, table, options) & whole_hours(since, until)
        frames = [self._file_rows(an, table, h, filters.project) for h in sorted(fresh)]
        edges = False
        t = since
        while t < until:
            h = floor_hour(t)
            end = min(h + HOUR, until)
            if h not in fresh:
                edges = True
                minutes = self._minute_rows(an, cycle, table, filters.project, h, options)
                if minutes.height:
                    frames.append(_slice(minutes, t, end))
            t = end
        frames = [f for f in frames if f.height] or frames[:1]
        df = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
        return df, "rollups+raw" if edges else "rollups"

    # --- parts ---------------------------------------------------------------------------

    def _fresh(self, an: Analytics, cycle: _Cycle, table: Table, options: TaskOptions) -> set[datetime]:
        key = (table.name, repr(options))
        if key not in cycle.fresh:
            # one look over the whole span a budget can reach (windows and baselines of 31 days)
            until = floor_hour(cycle.at) + HOUR
            cycle.fresh[key] = fresh_hours(an, table, until - 2 * KEEP, until, options, cycle.signatures)
        return cycle.fresh[key]

    def _file_rows(self, an: Analytics, table: Table, h: datetime, project: str | None) -> pl.DataFrame:
        path = rollup_dir(an.lake.data_dir) / table.name / f"{hour_name(h)}.parquet"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return pl.DataFrame()
        key = f"{path}\0{project}"
        got = self._files.get(key)
        if got is None or got[0] != mtime:
            df = pl.read_parquet(path)
            got = (mtime, df.filter(pl.col("project") == project) if project is not None and df.height else df)
            self._files[key] = got
        return got[1]

    def _minute_rows(
        self, an: Analytics, cycle: _Cycle, table: Table, project: str | None, h: datetime, options: TaskOptions
    ) -> pl.DataFrame:
        key = (table.name, project, h)
        prices = cycle.prices.get(repr(options))
        if prices is None:
            prices = cycle.prices[repr(options)] = price_fingerprint(an, options)
        if table.labels and cycle.labels is None:
            cycle.labels = label_signatures(an.lake.data_dir)
        labels = cycle.labels if table.labels and cycle.labels is not None else {}
        built = self._minutes.get(key)
        if built is not None and (
            built.prices != prices
            or built.labels != labels
            or h in changed_since(an, table, options, built.signatures, cycle.signatures, {h})
        ):
            built = None
        if built is None:
            window = Filters(project=project, since=h, until=h + HOUR)
            rows = table.build(an, window, options, bucket="minute")  # type: ignore[call-arg]
            self.builds += 1
            built = _Built(rows, cycle.signatures, labels, prices)
            self._minutes[key] = built
        return built.rows


def _slice(minutes: pl.DataFrame, since: datetime, until: datetime) -> pl.DataFrame:
    """Minute rows in [since, until) as rows of their hour (the shape of the hourly rows)."""
    part = minutes.filter((pl.col("minute") >= since) & (pl.col("minute") < until))
    return part.with_columns(pl.col("minute").dt.truncate("1h").alias("minute")).rename({"minute": "hour"})
