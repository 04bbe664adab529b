"""Links from an alert into the dashboard: the Traces page filtered to a budget's scope and
window and ordered by what broke it (the parameters the page reads back,
analytics.traces.links), and the page of one trace:

    {dashboard}/traces?project=..&since=<ISO>&until=<ISO>&task=..&service=..&model=..
        &provider=..&prompt_name=..&prompt_version=..&attr=k%3Dv&sort=duration|cost|start&outcome=failure
    {dashboard}/trace?project=..&trace=<id>

Only the parameters that are set are written; times are UTC, `YYYY-MM-DDTHH:MM:SSZ`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from spanlake.analytics.budgets.definition import Budget
from spanlake.analytics.budgets.measure import sort_for
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.links import link_params


def iso(t: datetime) -> str:
    """`t` in UTC as `2026-12-05T10:15:00Z` (naive times are taken as UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def budget_traces(budget: Budget, since: datetime, until: datetime) -> tuple[TraceFilters, str]:
    """The traces of the budget's scope over [since, until), and their order (the link's sort):
    slowest first for latency, most expensive for cost, failed ones (latest first) for rates
    of failure, latest first otherwise (measure.sort_for)."""
    how = sort_for(budget.metric)
    f = TraceFilters(
        since=_utc(since), until=_utc(until), project=budget.project, service=budget.service,
        model=budget.model, provider=budget.provider, prompt_name=budget.prompt_name,
        prompt_version=budget.prompt_version, task_name=budget.task, attributes=dict(budget.attributes),
        outcome=how["outcome"],
    )  # fmt: skip
    return f, str(how["sort"])


def traces_link(dashboard_url: str, budget: Budget, since: datetime, until: datetime) -> str:
    """The dashboard's Traces page showing what broke `budget` over [since, until)."""
    f, sort = budget_traces(budget, since, until)
    return f"{dashboard_url.rstrip('/')}/traces?{urlencode(link_params(f, sort))}"


def trace_link(dashboard_url: str, project: str, trace_id: str) -> str:
    """The dashboard's page of one trace."""
    return f"{dashboard_url.rstrip('/')}/trace?{urlencode([('project', project), ('trace', trace_id)])}"


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
