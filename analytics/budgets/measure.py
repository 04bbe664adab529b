"""A budget's figure over its window (and its baseline's), read from the same report the CLI,
the API and the dashboard show, through `run_report`: hourly rollups for the whole hours and
raw spans for the ragged edges. So the figure of a budget equals the report's figure for the
same filters and window (tests/analytics/test_budgets_measure.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import polars as pl

from spanlake.analytics.budgets.definition import Budget
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions

Level = Literal["ok", "warning", "critical", "no_data"]
_LATENCY_COLUMN = {
    "p50_latency": "p50_ms",
    "p95_latency": "p95_ms",
    "p99_latency": "p99_ms",
    "error_rate": "error_rate",
    "timeout_rate": "timeout_rate",
    "slow_share": "slow_share",
}


@dataclass(frozen=True)
class Figure:
    """A metric over one window: its value (None: nothing to compute it from) and samples."""

    value: float | None
    samples: int
    since: datetime
    until: datetime


@dataclass(frozen=True)
class Reading:
    """One evaluation of a budget at `at`: its figure, the baseline's (relative budgets), the
    threshold each level compares with, and the level it is at."""

    budget: Budget
    at: datetime
    figure: Figure
    baseline: Figure | None
    level: Level
    warning_at: float | None  # the absolute value the figure is compared with (after the baseline)
    critical_at: float | None
    reason: str  # one line: why this level


RunReport = Callable[..., tuple[pl.DataFrame, str]]


def measure(
    an: Analytics, budget: Budget, at: datetime, options: TaskOptions | None = None, run: RunReport = run_report
) -> Reading:
    """Evaluate `budget` over [at - window, at), and its baseline when relative."""
    options = options or TaskOptions()
    since = at - budget.window
    figure = figure_of(an, budget, since, at, options, run)
    base = None
    if budget.baseline is not None:
        if budget.baseline.kind == "ago":
            shift = budget.baseline.length
            base = figure_of(an, budget, since - shift, at - shift, options, run)
        else:
            base = figure_of(an, budget, since - budget.baseline.length, since, options, run)
    return classify(budget, at, figure, base)


def evaluate_all(
    an: Analytics, budgets: Sequence[Budget], at: datetime, options: TaskOptions | None = None
) -> list[Reading]:
    """Every budget at `at`, each distinct report (name, filters, parameters) run once: budgets
    on several metrics of one scope and window share the report they are read from."""
    cache: dict[str, tuple[pl.DataFrame, str]] = {}

    def run(an: Analytics, name: str, f: Filters, **kw: object) -> tuple[pl.DataFrame, str]:
        key = repr((name, f, sorted(kw.items())))
        if key not in cache:
            cache[key] = run_report(an, name, f, **kw)  # type: ignore[arg-type]
        return cache[key]

    return [measure(an, b, at, options, run) for b in budgets]


def figure_of(
    an: Analytics, budget: Budget, since: datetime, until: datetime, options: TaskOptions, run: RunReport = run_report
) -> Figure:
    """The budget's metric over [since, until) with its scope's filters."""
    value, samples = _compute(an, budget, budget.filters(since, until), options, run)
    return Figure(value, samples, since, until)


def classify(budget: Budget, at: datetime, figure: Figure, base: Figure | None) -> Reading:
    """The level of `figure` against the budget's thresholds (relative ones scaled by `base`)."""
    spec = budget.spec
    warning, critical = budget.warning, budget.critical

    def reading(level: Level, reason: str, w: float | None = None, c: float | None = None) -> Reading:
        return Reading(budget, at, figure, base, level, w, c, reason)

    if budget.metric == "traffic" and figure.value is not None:
        pass  # traffic counts its own samples: zero tasks is a figure (0), not missing data
    elif figure.value is None or figure.samples < budget.min_samples:
        return reading("no_data", f"{figure.samples} sample(s) of {spec.samples}, fewer than {budget.min_samples}")
    if budget.baseline is not None:
        if base is None or base.value is None or base.samples < budget.min_samples:
            return reading("no_data", f"baseline ({budget.baseline.text}) has too few samples")
        sign = 1 if spec.worse == "higher" else -1
        warning = None if warning is None else base.value * (1 + sign * warning / 100)
        critical = None if critical is None else base.value * (1 + sign * critical / 100)
    assert figure.value is not None
    v = figure.value

    def breached(limit: float | None) -> bool:
        if limit is None:
            return False
        return v > limit if spec.worse == "higher" else v < limit

    word = "above" if spec.worse == "higher" else "below"
    if breached(critical):
        return reading("critical", f"{v:g} is {word} the critical threshold {critical:g}", warning, critical)
    if breached(warning):
        return reading("warning", f"{v:g} is {word} the warning threshold {warning:g}", warning, critical)
    return reading("ok", "within the thresholds", warning, critical)


def _compute(an: Analytics, b: Budget, f: Filters, options: TaskOptions, run: RunReport) -> tuple[float | None, int]:
    m = b.metric
    if m in _LATENCY_COLUMN or m in ("ttft_p95", "retry_rate"):
        params = {"slow_ms": b.slow_ms} if b.slow_ms is not None else {}
        df, _ = run(an, "latency", f, options=options, **params)
        level = "llm" if m in ("ttft_p95", "retry_rate") else b.step
        row = _row(df.filter(pl.col("level") == level)) if df.height else None
        if row is None:
            return None, 0
        if m == "ttft_p95":
            return row.get("ttft_p95_ms"), int(row.get("ttft_count") or 0)
        count = int(row.get("count") or 0)
        if m == "retry_rate":
            return (row.get("retries") or 0) / count if count else None, count
        return row.get(_LATENCY_COLUMN[m]), count
    if m in ("success_rate", "cost_per_task", "cost_per_successful_task", "traffic"):
        df, _ = run(an, "tasks", f, options=options)
        row = _row(df)
        tasks = int(row.get("tasks") or 0) if row else 0
        if m == "traffic":
            return float(tasks), tasks
        return (row.get(m) if row else None), tasks
    if m in ("spend", "unpriced_calls"):
        df, _ = run(an, "cost", f, options=options)
        row = _row(df)
        calls = int(row.get("calls") or 0) if row else 0
        if m == "unpriced_calls":
            return float(row.get("unpriced_calls") or 0) if row else 0.0, calls
        if row is None or calls == 0:
            return 0.0, calls  # nothing called: nothing spent
        return (None if row.get("cost_usd") is None else float(row["cost_usd"])), calls
    if m == "validation_failure_rate":
        df, _ = run(an, "validation", f, options=options)
        checks = int(df["checks"].sum()) if df.height else 0
        failures = int(df["failures"].sum()) if df.height else 0
        return (failures / checks if checks else None), checks
    if m in ("negative_feedback_share", "mean_feedback_score"):
        df, _ = run(an, "feedback", f, options=options)
        row = _row(df)
        if row is None:
            return None, 0
        if m == "negative_feedback_share":
            return row.get("negative_share"), int(row.get("traces_with_feedback") or 0)
        return row.get("mean_score"), int(row.get("scores") or 0)
    raise ValueError(f"no figure for metric {m!r}")


def _row(df: pl.DataFrame) -> dict | None:
    """The single row of an ungrouped report (None when it has none)."""
    if df.height == 0:
        return None
    if df.height > 1:
        raise ValueError(f"expected one row, the report gave {df.height}")
    return df.row(0, named=True)


def window_of(budget: Budget, at: datetime) -> tuple[datetime, datetime]:
    """[since, until) of the budget's window ending at `at`."""
    return at - budget.window, at
