"""Links from an alert into the dashboard: the Traces page filtered to a budget's scope and
window and sorted by what broke it, and one trace. The dashboard honours exactly these query
parameters (dashboard/app_pages/traces.py, trace.py):

    {dashboard}/traces?project=..&since=<ISO>&until=<ISO>&task=..&service=..&model=..
        &provider=..&prompt_name=..&prompt_version=..&attr=k%3Dv&sort=duration|cost&outcome=failure
    {dashboard}/trace?project=..&trace=<id>

Only the parameters that are set are written; times are UTC, `YYYY-MM-DDTHH:MM:SSZ`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from spanlake.analytics.budgets.definition import SCOPE_KEYS, Budget

Sort = Literal["duration", "cost"]
Outcome = Literal["failure"]

_BY_DURATION = {"p50_latency", "p95_latency", "p99_latency", "ttft_p95", "slow_share", "retry_rate"}
_BY_COST = {"cost_per_successful_task", "cost_per_task", "spend", "unpriced_calls"}
_FAILED = {"success_rate", "error_rate", "timeout_rate", "validation_failure_rate"}


def iso(t: datetime) -> str:
    """`t` in UTC as `2026-12-05T10:15:00Z` (naive times are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def order_for(metric: str) -> tuple[Sort | None, Outcome | None]:
    """How the Traces page is sorted and filtered to show what breaks a budget on `metric`:
    slowest first for latency, most expensive first for cost, failed tasks for the rates of
    failure (no order for traffic and feedback)."""
    if metric in _BY_DURATION:
        return "duration", None
    if metric in _BY_COST:
        return "cost", None
    if metric in _FAILED:
        return None, "failure"
    return None, None


def traces_link(
    dashboard_url: str,
    budget: Budget,
    since: datetime,
    until: datetime,
    sort: Sort | None = None,
    outcome: Outcome | None = None,
) -> str:
    """The dashboard's Traces page showing the budget's scope over [since, until)."""
    params: list[tuple[str, str]] = [("project", budget.project), ("since", iso(since)), ("until", iso(until))]
    for key in SCOPE_KEYS:
        value = getattr(budget, key)
        if value is not None:
            params.append((key, value))
    params += [("attr", f"{k}={v}") for k, v in sorted(budget.attributes.items())]
    if sort is not None:
        params.append(("sort", sort))
    if outcome is not None:
        params.append(("outcome", outcome))
    return f"{dashboard_url.rstrip('/')}/traces?{urlencode(params)}"


def trace_link(dashboard_url: str, project: str, trace_id: str) -> str:
    """The dashboard's page of one trace."""
    return f"{dashboard_url.rstrip('/')}/trace?{urlencode([('project', project), ('trace', trace_id)])}"
