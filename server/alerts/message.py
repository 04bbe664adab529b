"""The content of one alert notification, the same for every destination: it is the body of the
generic webhook (docs/alerts.md documents it), and Slack, Teams, PagerDuty and e-mail render
it (server.alerts.destinations). Built once, when the event happens, and stored in the outbox,
so every retry sends the same thing.

    {"type": "budget.firing", "timestamp": "2026-12-05T10:15:00Z", "data": {...}}

(`type` and `timestamp` as the Standard Webhooks payload structure recommends.)
"""

from __future__ import annotations

from typing import Any

from spanlake.analytics.budgets.definition import SCOPE_KEYS, Budget, format_duration
from spanlake.analytics.budgets.measure import Reading
from spanlake.server.alerts.links import iso, trace_link, traces_link
from spanlake.server.alerts.state import Event

TITLES = {
    "firing": "FIRING",
    "escalated": "ESCALATED",
    "deescalated": "DE-ESCALATED",
    "resolved": "RESOLVED",
    "renotify": "STILL FIRING",
    "no_data": "NO DATA",
    "removed": "RESOLVED",
}


def build(
    event: Event,
    budget: Budget,
    reading: Reading | None,
    dashboard_url: str | None,
    worst: list[str],
) -> dict[str, Any]:
    """The notification of `event` of `budget` (its reading, when there is one: a budget that
    was removed has none), with links into the dashboard when `dashboard_url` is set and the
    ids of the worst traces of the window."""
    seen = event.last
    spec = budget.spec
    if reading is not None:
        since, until = reading.figure.since, reading.figure.until
    else:
        until = seen.at if seen is not None else event.at
        since = until - budget.window
    level = event.severity
    warning_at = seen.warning_at if seen is not None else None
    critical_at = seen.critical_at if seen is not None else None
    if budget.baseline is None:  # absolute: the thresholds are known even without a figure
        warning_at = budget.warning if warning_at is None else warning_at
        critical_at = budget.critical if critical_at is None else critical_at
    crossed = {"warning": warning_at, "critical": critical_at}.get(level or "")
    baseline = None
    if budget.baseline is not None:
        b_since = b_until = None
        if reading is not None and reading.baseline is not None:
            b_since, b_until = iso(reading.baseline.since), iso(reading.baseline.until)
        baseline = {
            "text": budget.baseline.text,
            "since": b_since,
            "until": b_until,
            "figure": seen.baseline if seen is not None else None,
        }
    links: dict[str, Any] = {"traces": None}
    worst_traces = [{"trace_id": t, "url": None} for t in worst]
    if dashboard_url:
        links["traces"] = traces_link(dashboard_url, budget, since, until)
        worst_traces = [{"trace_id": t, "url": trace_link(dashboard_url, budget.project, t)} for t in worst]
    data = {
        "event": event.kind,
        "summary": summary(event, budget, crossed),
        "alert_id": event.episode,
        "state": event.to_status,
        "severity": level,
        "previous_severity": event.previous,
        "at": iso(event.at),
        "firing_since": iso(event.episode_since) if event.episode_since else None,
        "budget": {
            "key": budget.key,
            "project": budget.project,
            "name": budget.name,
            "metric": budget.metric,
            "metric_summary": spec.summary,
            "unit": spec.unit,
            "worse": spec.worse,
            "step": budget.step,
            "scope": {k: getattr(budget, k) for k in SCOPE_KEYS if getattr(budget, k) is not None}
            | ({"attributes": dict(budget.attributes)} if budget.attributes else {}),
            "window": format_duration(budget.window),
            "warning": budget.warning,
            "critical": budget.critical,
            "relative": budget.baseline is not None,
            "for": format_duration(budget.for_),
            "description": budget.description,
        },
        "figure": seen.figure if seen is not None else None,
        "samples": seen.samples if seen is not None else None,
        "level": seen.level if seen is not None else None,
        "threshold": {"crossed": level, "value": crossed, "warning": warning_at, "critical": critical_at},
        "window": {"since": iso(since), "until": iso(until)},
        "baseline": baseline,
        "reason": event.reason,
        "links": links,
        "worst_traces": worst_traces,
    }
    return {"type": f"budget.{event.kind}", "timestamp": iso(event.at), "data": data}


def summary(event: Event, budget: Budget, crossed: float | None) -> str:
    """One line: what happened to which budget, the figure and the threshold."""
    title = TITLES.get(event.kind, event.kind.upper())
    if event.kind in ("firing", "renotify", "no_data") and event.severity:
        title += f" {event.severity}"
    elif event.kind in ("escalated", "deescalated"):
        title += f" to {event.severity}"
    seen = event.last
    unit = budget.spec.unit
    what = f"{budget.metric}{'' if budget.step == 'task' else f' ({budget.step})'}"
    window = format_duration(budget.window)
    if event.kind == "removed":
        tail = "the budget is no longer declared"
    elif seen is None or seen.figure is None or seen.level == "no_data":
        tail = f"no data over {window} ({event.reason})"
    else:
        tail = f"{what} {fmt(seen.figure, unit)} over {window}"
        if crossed is not None:
            word = "above" if budget.spec.worse == "higher" else "below"
            if event.kind == "resolved":
                tail += f", back within the {event.severity} threshold {fmt(crossed, unit)}"
            else:
                tail += f", {word} the {event.severity} threshold {fmt(crossed, unit)}"
        if budget.baseline is not None and seen.baseline is not None:
            tail += f" (baseline {budget.baseline.text}: {fmt(seen.baseline, unit)})"
    return f"[{title}] {budget.key}: {tail}"


def fmt(value: float | None, unit: str) -> str:
    """A figure in its unit, for people: 3400 ms, $0.0031, 84.5 %, 12."""
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "usd":
        return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "fraction":
        return f"{value * 100:.1f} %"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.3g}"
