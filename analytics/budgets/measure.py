"""A budget's figure over its window (and its baseline's), read from the same report the CLI,
the API and the dashboard show, through `run_report`: hourly rollups for the whole hours and
raw spans for the ragged edges. So the figure of a budget equals the report's figure for the
same filters and window (tests/analytics/test_budgets_measure.py).

Figures: the latency metrics read the `latency` report's row of the step (`task`, `llm`,
`retrieval`, `tool`); ttft_p95 and retry_rate its `llm` row (retries / LLM calls);
success_rate, cost_per_task, cost_per_successful_task and traffic the `tasks` report; spend
and unpriced_calls the call columns of `cost`; validation_failure_rate the `validation`
report summed over validators; the feedback metrics the `feedback` report; judge_pass_rate the
`judge` report (every evaluator's current labels; samples: pass and fail verdicts). A figure is None
when there is nothing to compute it from (no tasks, no successful task for the cost per
successful task, only unpriced calls for spend): the budget is then at no-data, as it is when
fewer than `min_samples` samples were seen — except for additive metrics (traffic, spend,
unpriced calls), where an empty window is a figure, 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import polars as pl

from spanlake.analytics.budgets.definition import Budget
from spanlake.analytics.budgets.metrics import METRICS
from spanlake.analytics.reports.common import TIMEOUT_PREDICATE
from spanlake.analytics.reports.feedback import disliked_traces
from spanlake.analytics.reports.judge import judge_failed_traces
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import BILLABLE_CATEGORIES, Filters, Params, SpanSource
from spanlake.analytics.task_outcomes import TaskOptions, task_scope_ctes, task_scoped

Level = Literal["ok", "warning", "critical", "no_data"]
_LATENCY_COLUMN = {
    "p50_latency": "p50_ms",
    "p95_latency": "p95_ms",
    "p99_latency": "p99_ms",
    "error_rate": "error_rate",
    "timeout_rate": "timeout_rate",
    "slow_share": "slow_share",
}
# Why a figure can be missing although there were samples.
_UNDEFINED = {
    "cost_per_successful_task": ": no successful task",
    "cost_per_task": ": no priced call in the tasks",
    "spend": ": every call unpriced",
}


@dataclass(frozen=True)
class Figure:
    """A metric over one window: its value (None: nothing to compute it from) and samples.
    `scale`: the value is the window's sum times this (a "previous 7d" baseline of an additive
    metric is its average per budget window); `source`: raw, rollups or rollups+raw."""

    value: float | None
    samples: int
    since: datetime
    until: datetime
    scale: float = 1.0
    source: str = "raw"


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


RunReport = Callable[..., tuple[pl.DataFrame, str]]  # run_report, or a memo of it (evaluate.measure_all)


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
            if budget.spec.additive:  # a sum over 7 days against one window's: its average per window
                base = per_window(base, budget.window / budget.baseline.length)
    return classify(budget, at, figure, base)


def figure_of(
    an: Analytics, budget: Budget, since: datetime, until: datetime, options: TaskOptions, run: RunReport = run_report
) -> Figure:
    """The budget's metric over [since, until) with its scope's filters."""
    value, samples, source = _compute(an, budget, budget.filters(since, until), options, run)
    return Figure(value, samples, since, until, source=source)


def per_window(f: Figure, scale: float) -> Figure:
    """An additive figure scaled to another window length (`scale` = window / f's length)."""
    return replace(f, value=None if f.value is None else f.value * scale, scale=f.scale * scale)


def classify(budget: Budget, at: datetime, figure: Figure, base: Figure | None) -> Reading:
    """The level of `figure` against the budget's thresholds (relative ones scaled by `base`)."""
    spec = budget.spec
    warning, critical = budget.warning, budget.critical

    def reading(level: Level, reason: str, w: float | None = None, c: float | None = None) -> Reading:
        return Reading(budget, at, figure, base, level, w, c, reason)

    if figure.samples < budget.min_samples and not (spec.additive and figure.value is not None):
        return reading("no_data", f"{figure.samples} {spec.samples}, fewer than {budget.min_samples}")
    if figure.value is None:
        return reading("no_data", f"no figure from {figure.samples} {spec.samples}{_UNDEFINED.get(spec.name, '')}")
    if budget.baseline is not None:
        if base is None or base.value is None or base.samples < max(budget.min_samples, 1):
            n = 0 if base is None else base.samples
            return reading("no_data", f"baseline ({budget.baseline.text}): {n} {spec.samples}, too few to compare")
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


Computed = tuple[float | None, int, str]  # (value, samples, source)


def _compute(an: Analytics, b: Budget, f: Filters, options: TaskOptions, run: RunReport) -> Computed:
    m = b.metric
    if m in _LATENCY_COLUMN or m in ("ttft_p95", "retry_rate"):
        params = {"slow_ms": b.slow_ms} if b.slow_ms is not None else {}
        df, source = run(an, "latency", f, options=options, **params)
        level = "llm" if m in ("ttft_p95", "retry_rate") else b.step
        row = _row(df.filter(pl.col("level") == level)) if df.height else None
        if row is None:
            return None, 0, source
        if m == "ttft_p95":
            return _float(row.get("ttft_p95_ms")), int(row.get("ttft_count") or 0), source
        count = int(row.get("count") or 0)
        if m == "retry_rate":
            return (int(row.get("retries") or 0) / count if count else None), count, source
        return _float(row.get(_LATENCY_COLUMN[m])), count, source
    if m in ("success_rate", "cost_per_task", "cost_per_successful_task", "traffic"):
        df, source = run(an, "tasks", f, options=options)
        row = _row(df)
        tasks = int(row.get("tasks") or 0) if row else 0
        if m == "traffic":
            return float(tasks), tasks, source
        return (_float(row.get(m)) if row and tasks else None), tasks, source
    if m in ("spend", "unpriced_calls"):
        df, source = run(an, "cost", f, options=options)
        row = _row(df)
        calls = int(row.get("calls") or 0) if row else 0
        if m == "unpriced_calls":
            return float(row.get("unpriced_calls") or 0) if row else 0.0, calls, source
        if row is None or calls == 0:
            return 0.0, calls, source  # nothing called: nothing spent
        return _float(row.get("cost_usd")), calls, source  # None: every call unpriced
    if m == "validation_failure_rate":
        df, source = run(an, "validation", f, options=options)
        checks = int(df["checks"].sum()) if df.height else 0
        failures = int(df["failures"].sum()) if df.height else 0
        return (failures / checks if checks else None), checks, source
    if m in ("negative_feedback_share", "mean_feedback_score"):
        df, source = run(an, "feedback", f, options=options)
        row = _row(df)
        if row is None:
            return None, 0, source
        if m == "negative_feedback_share":
            return _float(row.get("negative_share")), int(row.get("traces_with_value") or 0), source
        return _float(row.get("mean_score")), int(row.get("scores") or 0), source
    if m == "judge_pass_rate":
        df, source = run(an, "judge", f, options=options)
        row = _row(df)
        verdicts = int(row.get("passed") or 0) + int(row.get("failed") or 0) if row else 0
        return (_float(row.get("pass_rate")) if row and verdicts else None), verdicts, source
    raise ValueError(f"no figure for metric {m!r}")


def _float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def _row(df: pl.DataFrame) -> dict | None:
    """The single row of an ungrouped report (None when it has none)."""
    if df.height == 0:
        return None
    if df.height > 1:
        raise ValueError(f"expected one row, the report gave {df.height}")
    return df.row(0, named=True)


# --- the traces that broke a budget ------------------------------------------------------------

_LATENCY = ("p50_latency", "p95_latency", "p99_latency", "slow_share", "ttft_p95")
_COST = ("cost_per_successful_task", "cost_per_task", "spend", "unpriced_calls")
_FAILURE = ("success_rate", "error_rate", "timeout_rate", "validation_failure_rate", "negative_feedback_share",
            "mean_feedback_score", "retry_rate")  # fmt: skip
# The Traces page's sort (analytics.traces.filters.SORTS) of each task-list sort.
_TRACE_SORT = {"duration": "duration_ms", "cost": "cost_usd", "start": "start_time"}
MAX_WORST = 1000  # the task-list's largest limit


def sort_for(metric: str) -> dict[str, str | None]:
    """How the dashboard's Traces page shows what broke a budget on `metric`: `sort` (the
    task-list's: duration, cost or start), `trace_sort` (the Traces page's column), always
    descending, and `outcome` ('failure' or None). Slowest first for latency, most expensive
    for cost, failed tasks (latest first) for success, errors, timeouts, checks and feedback;
    latest first for traffic and retries."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    sort, outcome = "start", None
    if metric in _LATENCY:
        sort = "duration"
    elif metric in _COST:
        sort = "cost"
    elif metric in _FAILURE and metric != "retry_rate":
        outcome = "failure"
    return {"sort": sort, "trace_sort": _TRACE_SORT[sort], "outcome": outcome}


def worst_traces(
    an: Analytics, budget: Budget, since: datetime, until: datetime, n: int = 5, options: TaskOptions | None = None
) -> list[str]:
    """Up to `n` ids of the traces that broke `budget` over [since, until), worst first.

    Tasks (the task-list report, with the budget's filters): slowest for task latency and slow
    share, most expensive for cost per task, per successful task and spend, failed ones (latest
    first) for success, error and timeout rates of tasks and for validation failures. Steps of
    a category (latency, errors, timeouts of `step`): the traces of the slowest, or of the latest
    failed or timed-out, steps; TTFT: the slowest first tokens; retries: the latest failed LLM
    calls; unpriced calls: the latest unpriced calls. Feedback: the traces voted down (latest
    first), or the lowest scored. Judge pass rate: the traces a judge failed (latest judged first).
    Traffic: none (there is no trace to show for its absence).
    """
    options = options or TaskOptions()
    m, f, step = budget.metric, budget.filters(since, until), budget.step
    if m == "traffic" or n <= 0:
        return []
    n = min(n, MAX_WORST)
    if m in ("negative_feedback_share", "mean_feedback_score"):
        by = "down" if m == "negative_feedback_share" else "score"
        return disliked_traces(an, f, by, limit=n, options=options)
    if m == "judge_pass_rate":
        return judge_failed_traces(an, f, limit=n, options=options)
    if m == "ttft_p95":
        return _span_traces(an, f, n, options, ("llm",), "time_to_first_token_ms IS NOT NULL", "time_to_first_token_ms")
    if m == "retry_rate":
        return _span_traces(an, f, n, options, ("llm",), "status_code = 'ERROR'", "start_time")
    if m == "unpriced_calls":
        return _span_traces(an, f, n, options, BILLABLE_CATEGORIES, "unpriced", "start_time", priced=True)
    if step != "task" and m in ("p50_latency", "p95_latency", "p99_latency", "slow_share"):
        return _span_traces(an, f, n, options, (step,), "TRUE", "duration_ms")
    if step != "task" and m in ("error_rate", "timeout_rate"):
        failed = "status_code = 'ERROR'" if m == "error_rate" else TIMEOUT_PREDICATE
        return _span_traces(an, f, n, options, (step,), failed, "start_time")
    plan = sort_for(m)  # failed tasks for errors and timeouts too: they fail unless the app says otherwise
    df, _ = run_report(an, "task-list", f, options=options, sort=plan["sort"], limit=n, outcome=plan["outcome"])
    return df["trace_id"].to_list() if df.height else []


def _span_traces(
    an: Analytics,
    f: Filters,
    n: int,
    options: TaskOptions,
    categories: tuple[str, ...],
    where: str,
    worst: str,
    *,
    priced: bool = False,
) -> list[str]:
    """Trace ids of spans of `categories` meeting `where`, by their largest `worst` (SQL from
    this module only), each trace once; inside the budget's task when it names one."""
    src = SpanSource(f, categories=categories, priced=priced)

    def body(p: Params) -> str:
        ctes, spans = task_scope_ctes(src, options, p)
        return f"""{ctes}
        SELECT trace_id, max({worst}) AS worst FROM {spans} WHERE {where}
        GROUP BY trace_id ORDER BY worst DESC NULLS LAST, trace_id LIMIT {p.add(int(n))}"""

    df = an.run(task_scoped(src, options), body)
    return df["trace_id"].to_list() if df.height else []
