"""Every budget of a set evaluated once, in one call: what `spanlake budgets check`, the API's
/budgets/check and the server's budget watch (in one query-worker call) all run. The result
is plain, picklable data: it crosses from a query worker to the server."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from spanlake.analytics.budgets.definition import Budget
from spanlake.analytics.budgets.measure import Reading, measure
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups.row_cache import RowCache
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters

log = logging.getLogger(__name__)
_CACHES: dict[str, RowCache] = {}  # data directory → its rows, kept by this process between cycles
BREACHED = ("warning", "critical")


@dataclass(frozen=True)
class Evaluation:
    """The readings of the budgets evaluated at `at`, and the budgets that could not be
    (`failures`: (budget key, why)), in the order the budgets were given."""

    at: datetime
    readings: tuple[Reading, ...]
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def breached(self) -> list[Reading]:
        return [r for r in self.readings if r.level in BREACHED]


def measure_all(an: Analytics, budgets: Sequence[Budget], at: datetime, *, cache: bool = True) -> Evaluation:
    """Each budget's reading at `at`; a budget whose figure cannot be computed is a failure,
    never a reason to skip the others. Each distinct report run (name, filters, parameters) is
    made once: budgets on several metrics of one scope and window share it.

    With `cache` (the default), windows end at the end of `at`'s minute (so they start on a
    minute too) and the reports read their rollup rows from this process's RowCache, kept
    between calls: each cycle then builds from raw spans only the lake hours that changed
    (analytics.rollups.row_cache). Without it every report runs as the CLI runs it."""
    if cache:
        at = ceil_minute(at)
        kept = _CACHES.setdefault(str(an.lake.data_dir.root), RowCache())
        kept.begin(an, at)
        an = copy.copy(an)  # the caller's Analytics keeps reading without the cache
        an.row_cache = kept
    readings: list[Reading] = []
    failures: list[tuple[str, str]] = []
    runs: dict[str, tuple[pl.DataFrame, str]] = {}

    def run(an: Analytics, name: str, f: Filters, **kw: Any) -> tuple[pl.DataFrame, str]:
        key = repr((name, f, sorted(kw.items())))
        if key not in runs:
            runs[key] = run_report(an, name, f, **kw)
        return runs[key]

    for b in budgets:
        try:
            readings.append(measure(an, b, at, run=run))
        except Exception as e:  # one budget's bad query must not hide every other budget's state
            log.warning("budget %s could not be evaluated: %s", b.key, e, exc_info=True)
            failures.append((b.key, f"{type(e).__name__}: {e}"))
    return Evaluation(at, tuple(readings), tuple(failures))


def ceil_minute(t: datetime) -> datetime:
    """`t` rounded up to a whole minute."""
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


def reading_dict(r: Reading) -> dict[str, Any]:
    """A reading as JSON-ready data (the API's and `budgets check --format json`'s shape)."""
    b = r.budget

    def figure(f: Any) -> dict[str, Any] | None:
        if f is None:
            return None
        return {"value": f.value, "samples": f.samples, "since": f.since.isoformat(), "until": f.until.isoformat()}

    return {
        "name": b.name,
        "project": b.project,
        "metric": b.metric,
        "unit": b.spec.unit,
        "level": r.level,
        "value": r.figure.value,
        "samples": r.figure.samples,
        "min_samples": b.min_samples,
        "warning_at": r.warning_at,
        "critical_at": r.critical_at,
        "window": {"since": r.figure.since.isoformat(), "until": r.figure.until.isoformat()},
        "baseline": None if b.baseline is None else {"text": b.baseline.text, **(figure(r.baseline) or {})},
        "reason": r.reason,
        "at": r.at.isoformat(),
    }
