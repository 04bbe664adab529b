"""What the Budgets page and the Overview show of budgets: each budget of a project with its
alert state, last figure, trend and alert history, and the deliveries that failed. Read from
`<data-dir>/budgets.toml` and the alert files the server writes (server.alerts.store)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import altair as alt

from spanlake.analytics.budgets.definition import FILE_NAME, Budget, BudgetError, read
from spanlake.server.alerts.links import trace_link, traces_link
from spanlake.server.alerts.state import AlertState
from spanlake.server.alerts.store import AlertStore, Delivery

LEVEL_ICON = {"ok": "🟢", "warning": "🟠", "critical": "🔴", "no_data": "⚪"}


@dataclass(frozen=True)
class BudgetStatus:
    """One budget as the page shows it."""

    budget: Budget
    state: AlertState | None

    @property
    def status(self) -> str:
        """firing (warning|critical), pending, no data, ok or not evaluated yet."""
        s = self.state
        if s is None:
            return "not evaluated yet"
        if s.status == "firing":
            return f"firing ({s.severity})"
        return s.status.replace("_", " ")

    @property
    def level(self) -> str:
        return self.state.last.level if self.state is not None and self.state.last is not None else "no_data"

    @property
    def firing(self) -> bool:
        return self.state is not None and self.state.status == "firing"

    def traces_url(self, dashboard: str = ".") -> str:
        """The Traces page over the budget's last window, sorted by what breaks it."""
        at = self.state.last.at if self.state is not None and self.state.last is not None else None
        until = at or datetime.now().astimezone()
        return traces_link(dashboard, self.budget, until - self.budget.window, until)


def load(data_dir: str, project: str | None, default_project: str = "default") -> tuple[list[BudgetStatus], str | None]:
    """The project's budgets (every project's when None) with their states, and the budgets
    file's error if it does not parse (then no budgets)."""
    root = Path(data_dir)
    try:
        found = read(root / FILE_NAME, default_project)
    except BudgetError as e:
        return [], str(e)
    states = AlertStore(root / "alerts").states()
    out = [BudgetStatus(b, states.get(b.key)) for b in found.budgets if project is None or b.project == project]
    rank = {"firing": 0, "pending": 1, "no_data": 2}
    out.sort(key=lambda s: (rank.get(s.state.status if s.state else "", 3), s.budget.project, s.budget.name))
    return out, None


def history(data_dir: str, key: str, limit: int = 50) -> list[dict[str, Any]]:
    """The budget's last alert events, newest first."""
    return AlertStore(Path(data_dir) / "alerts").history(key, limit)


def failed_deliveries(data_dir: str, limit: int = 50) -> list[Delivery]:
    """Notifications that could not be delivered (newest first)."""
    return AlertStore(Path(data_dir) / "alerts").deliveries("failed", limit=limit)


def pending_deliveries(data_dir: str, limit: int = 50) -> list[Delivery]:
    """Notifications still waiting for (another) attempt."""
    return AlertStore(Path(data_dir) / "alerts").deliveries("pending", limit=limit)


def of_project(project: str | None) -> Callable[[Delivery], bool]:
    """Whether a delivery is of a budget of `project` (every project when None)."""
    return lambda d: project is None or d.key.startswith(f"{project}/")


def trend(data_dir: str, key: str, hours: float = 24) -> list[dict[str, Any]]:
    """The budget's evaluations of the last `hours`, oldest first."""
    since = datetime.now().astimezone() - timedelta(hours=hours)
    return AlertStore(Path(data_dir) / "alerts").readings(key, since)


def trend_chart(rows: list[dict[str, Any]], title: str) -> alt.Chart:
    """The figure over time, with the warning and critical thresholds drawn as dashed lines."""
    values = [{"at": r["at"], "figure": r.get("figure"), "level": r.get("level")} for r in rows]
    line = (
        alt.Chart(alt.Data(values=values), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("at:T", title=None),
            y=alt.Y("figure:Q", title=None),
            tooltip=[alt.Tooltip("at:T"), alt.Tooltip("figure:Q", format=",.4g"), alt.Tooltip("level:N")],
        )
    )
    layers: list[alt.Chart] = [line]
    last = rows[-1] if rows else {}
    for name, color in (("warning_at", "orange"), ("critical_at", "red")):
        if last.get(name) is not None:
            rule = alt.Chart(alt.Data(values=[{"y": last[name], "what": name.removesuffix("_at")}]))
            layers.append(rule.mark_rule(color=color, strokeDash=[6, 4]).encode(y="y:Q", tooltip=["what:N", "y:Q"]))
    return alt.layer(*layers).properties(height=200)


def trace_url(project: str, trace_id: str) -> str:
    return trace_link(".", project, trace_id)
