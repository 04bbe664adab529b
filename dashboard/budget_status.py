"""What the Budgets page and the Overview show of budgets: each budget of a project with its
alert state, last figure, trend and alert history, and the deliveries that failed. Read from
`<data-dir>/budgets.toml` and the alert files the server writes (server.alerts.store).

Plain functions of those files (no Streamlit), so the page stays a thin layout of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import altair as alt

from spanlake.analytics.budgets.definition import FILE_NAME, Budget, BudgetError, format_duration, read
from spanlake.analytics.budgets.measure import sort_for
from spanlake.dashboard.components import NONE, fmt_cost, fmt_ms, fmt_pct
from spanlake.server.alerts.links import traces_link
from spanlake.server.alerts.state import AlertState, Seen
from spanlake.server.alerts.store import AlertStore, Delivery

MAX_SCOPE = 60  # characters of the scope in an expander's header (the caption has all of it)
TREND_HOURS = 24
# The order budgets are listed in: what needs someone first.
_RANK = {
    "firing critical": 0,
    "firing warning": 1,
    "no_data alerting": 2,
    "pending": 3,
    "no_data": 4,
    "new": 5,
    "ok": 6,
}
_LEVEL_COLORS = {"ok": "#21c354", "warning": "#ffa421", "critical": "#ff4b4b", "no_data": "#a3a8b8"}


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
        if s.status == "no_data" and s.alerting:
            return f"no data (firing {s.severity} before)"
        return s.status.replace("_", " ")

    @property
    def level(self) -> str:
        """The last reading's level (no_data when never evaluated)."""
        last = self.last
        return last.level if last is not None else "no_data"

    @property
    def last(self) -> Seen | None:
        return self.state.last if self.state is not None else None

    @property
    def firing(self) -> bool:
        return self.state is not None and self.state.status == "firing"

    @property
    def alerting(self) -> bool:
        """An alert is open: firing, or no data since it fired."""
        return self.state is not None and self.state.alerting

    @property
    def rank(self) -> int:
        s = self.state
        if s is None:
            return _RANK["new"]
        if s.status == "firing":
            return _RANK[f"firing {s.severity}"]
        if s.status == "no_data":
            return _RANK["no_data alerting" if s.alerting else "no_data"]
        return _RANK.get(s.status, _RANK["ok"])

    def traces_url(self, dashboard: str = ".") -> str:
        """The Traces page over the budget's last window, sorted by what breaks it."""
        last = self.last
        until = last.at if last is not None else datetime.now(UTC)
        return traces_link(dashboard, self.budget, until - self.budget.window, until)


@dataclass(frozen=True)
class Budgets:
    """A project's budgets (every project's when None) with their states, most urgent first;
    the budgets file's problem when it does not parse; and `unknown`, the alert states of
    budgets the file does not declare (all of them while it does not parse), so a broken
    file never hides an open alert."""

    statuses: list[BudgetStatus] = field(default_factory=list)
    error: str | None = None
    unknown: list[AlertState] = field(default_factory=list)

    @property
    def open_alerts(self) -> list[BudgetStatus]:
        return [s for s in self.statuses if s.alerting]

    @property
    def unknown_open(self) -> list[AlertState]:
        return [s for s in self.unknown if s.alerting]


def load(data_dir: str, project: str | None, default_project: str = "default") -> Budgets:
    """The budgets of `project` (every project when None) with their alert states."""
    root = Path(data_dir)
    states = {k: s for k, s in AlertStore(root / "alerts").states().items() if _of(project, k)}
    try:
        found = read(root / FILE_NAME, default_project).budgets
    except BudgetError as e:
        return Budgets([], str(e), sorted(states.values(), key=_state_rank))
    out = [BudgetStatus(b, states.get(b.key)) for b in found if project is None or b.project == project]
    out.sort(key=lambda s: (s.rank, s.budget.project, s.budget.name))
    declared = {s.budget.key for s in out}
    return Budgets(out, None, sorted((s for k, s in states.items() if k not in declared), key=_state_rank))


def _of(project: str | None, key: str) -> bool:
    return project is None or key.startswith(f"{project}/")


def _state_rank(s: AlertState) -> tuple[int, str]:
    return (0 if s.alerting else 1, s.key)


# --- text -----------------------------------------------------------------------------------


def fmt_value(unit: str, v: float | None) -> str:
    """A figure or threshold in its metric's unit: ms as ms or s, dollars, percent, counts."""
    if v is None:
        return NONE
    if unit == "ms":
        return fmt_ms(v)
    if unit == "usd":
        return fmt_cost(v)
    if unit == "fraction":
        return fmt_pct(v)
    if unit == "count":
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"
    return f"{v:,.3g}"


def metric_name(b: Budget) -> str:
    """`p95 latency`, `p95 latency of llm steps`, `error rate`, `TTFT p95`, ..."""
    name = "TTFT p95" if b.metric == "ttft_p95" else b.metric.replace("_", " ")
    return f"{name} of {b.step} steps" if b.step != "task" else name


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def scope_text(b: Budget) -> str:
    """What the budget watches, e.g. `task answer · model gpt-4o · tenant = acme` ('' for all)."""
    parts = [f"{k.replace('_', ' ')} {getattr(b, k)}" for k in ("task", "service", "model", "provider",
             "prompt_name", "prompt_version") if getattr(b, k)]  # fmt: skip
    parts += [f"{k} = {v}" for k, v in b.attributes.items()]
    return " · ".join(parts)


def shorten(text: str, limit: int = MAX_SCOPE) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def badge(s: BudgetStatus) -> str:
    """The state as a coloured Streamlit badge (markdown)."""
    st_ = s.state
    if st_ is None:
        return ":gray-badge[not evaluated yet]"
    if st_.status == "firing":
        color = "red" if st_.severity == "critical" else "orange"
        return f":{color}-badge[:material/notifications_active: firing · {st_.severity}]"
    if st_.status == "no_data":
        return ":red-badge[:material/cloud_off: no data · alert open]" if st_.alerting else ":gray-badge[no data]"
    if st_.status == "pending":
        return f":orange-badge[:material/hourglass_top: pending · {st_.severity}]"
    return ":green-badge[:material/check: ok]"


def header(s: BudgetStatus, with_project: bool) -> str:
    """The expander's label: name, metric, scope (shortened), window and the state's badge."""
    b = s.budget
    name = f"{b.project} / {b.name}" if with_project else b.name
    scope = scope_text(b)
    parts = [f"**{md_text(name)}**", metric_name(b), *([md_text(shorten(scope))] if scope else [])]
    return f"{badge(s)} {' · '.join(parts)} · {format_duration(b.window)}"


def describe(b: Budget, seen: Seen | None) -> str:
    """Why the budget is at its level, with figures in the metric's unit."""
    if seen is None:
        return "not evaluated yet"
    unit, worse = b.spec.unit, b.spec.worse
    if seen.level in ("warning", "critical"):
        limit = seen.critical_at if seen.level == "critical" else seen.warning_at
        word = "above" if worse == "higher" else "below"
        return f"{fmt_value(unit, seen.figure)} is {word} the {seen.level} threshold {fmt_value(unit, limit)}"
    if seen.level == "ok":
        return f"{fmt_value(unit, seen.figure)}: within the thresholds"
    return f"no data: {seen.reason}"


def relative_text(b: Budget, seen: Seen | None) -> str:
    """What a relative budget compares with, e.g. `warning 20 %, critical 50 % worse than 7d ago ($0.004)`."""
    pcts = ", ".join(f"{k} {v:g} %" for k, v in (("warning", b.warning), ("critical", b.critical)) if v is not None)
    base = fmt_value(b.spec.unit, seen.baseline if seen is not None else None)
    return f"{pcts} worse than {b.baseline.text if b.baseline else 'the baseline'} ({base})"


def link_order(b: Budget) -> str:
    """What the budget's traces link shows first (analytics.budgets.measure.sort_for)."""
    how = sort_for(b.metric)
    if how["outcome"] == "failure":
        return "the failed tasks, newest first"
    return {"duration": "slowest first", "cost": "most expensive first"}.get(str(how["sort"]), "newest first")


def when(t: Any) -> str:
    """A time (datetime or ISO text) as `2025-06-02 10:15 UTC`; anything else as it is."""
    if t is None:
        return ""
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return t
    if not isinstance(t, datetime):
        return str(t)
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def md_text(text: str) -> str:
    """Text for markdown (a label, a caption), shown as written."""
    return "".join("\\" + c if c in "\\`*_[]<>|:$~" else c for c in text)


# --- history and deliveries -----------------------------------------------------------------


def history(data_dir: str, key: str, limit: int = 50) -> list[dict[str, Any]]:
    """The budget's last alert events, newest first."""
    return AlertStore(Path(data_dir) / "alerts").history(key, limit)


def history_rows(b: Budget, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alert history as the page's table: when, event, severity, notified, figure, why."""
    out = []
    for e in events:
        last = e.get("last") or {}
        figure = last.get("figure") if isinstance(last, dict) else None
        figure = figure if isinstance(figure, int | float) and not isinstance(figure, bool) else None
        seen = _seen(last)
        out.append({
            "when": when(e.get("at")),
            "event": str(e.get("kind", "")).replace("_", " "),
            "severity": e.get("severity") or "",
            "notified": bool(e.get("notify")),
            "figure": fmt_value(b.spec.unit, figure),
            "why": describe(b, seen) if seen is not None else e.get("reason", ""),
        })  # fmt: skip
    return out


def _seen(d: Any) -> Seen | None:
    try:
        return Seen(**{**d, "at": datetime.fromisoformat(d["at"])}) if isinstance(d, dict) and d else None
    except (TypeError, KeyError, ValueError):
        return None


def failed_deliveries(data_dir: str, limit: int = 50) -> list[Delivery]:
    """Notifications that could not be delivered (newest first)."""
    return AlertStore(Path(data_dir) / "alerts").deliveries("failed", limit=limit)


def pending_deliveries(data_dir: str, limit: int = 50) -> list[Delivery]:
    """Notifications still waiting for (another) attempt."""
    return AlertStore(Path(data_dir) / "alerts").deliveries("pending", limit=limit)


def of_project(project: str | None) -> Callable[[Delivery], bool]:
    """Whether a delivery is of a budget of `project` (every project when None)."""
    return lambda d: _of(project, d.key)


def undelivered(data_dir: str, project: str | None, limit: int = 50) -> list[dict[str, Any]]:
    """The notifications of `project`'s budgets that failed (newest first) or still wait
    for an attempt, as the page's table."""
    mine = of_project(project)
    rows = []
    for status, found in (
        ("failed", failed_deliveries(data_dir, limit)),
        ("pending", pending_deliveries(data_dir, limit)),
    ):
        for d in (d for d in found if mine(d)):
            rows.append({
                "status": "failed" if status == "failed" else "retrying",
                "budget": d.key if project is None else d.key.split("/", 1)[1],
                "event": d.kind,
                "destination": d.destination,
                "last attempt": when(d.last_attempt_at),
                "attempts": d.attempts,
                "last error": d.last_error or "",
            })  # fmt: skip
    return rows


# --- trend ----------------------------------------------------------------------------------


def trend(data_dir: str, key: str, hours: float = TREND_HOURS) -> list[dict[str, Any]]:
    """The budget's evaluations of the last `hours`, oldest first."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    return [r for r in AlertStore(Path(data_dir) / "alerts").readings(key, since) if _is_reading(r)]


def _is_reading(r: dict[str, Any]) -> bool:
    """A line of readings.jsonl the chart can draw (a hand-edited or torn one is left out)."""
    try:
        datetime.fromisoformat(r["at"])
    except (KeyError, TypeError, ValueError):
        return False
    figure = r.get("figure")
    return figure is None or (isinstance(figure, int | float) and not isinstance(figure, bool))


_AXIS_FORMAT = {"ms": ",.0f", "usd": "$,.4~f", "fraction": ".0%", "count": ",.0f", "score": ",.2f"}
_UNIT_TITLE = {"ms": "ms", "usd": "USD", "fraction": "", "count": "", "score": ""}


def thresholds_of(b: Budget, rows: list[dict[str, Any]]) -> dict[str, float]:
    """The thresholds the trend draws: the last evaluation's that had them (a relative budget's
    move with its baseline), else the budget's own when they are absolute."""
    for r in reversed(rows):
        found = {k: float(r[f"{k}_at"]) for k in ("warning", "critical") if r.get(f"{k}_at") is not None}
        if found:
            return found
    if b.baseline is not None:
        return {}
    return {k: v for k, v in (("warning", b.warning), ("critical", b.critical)) if v is not None}


def time_format(rows: list[dict[str, Any]]) -> str:
    """The time axis' format for the span the rows cover: seconds within minutes, dates past a day."""
    try:
        first, last = datetime.fromisoformat(rows[0]["at"]), datetime.fromisoformat(rows[-1]["at"])
    except (IndexError, KeyError, TypeError, ValueError):
        return "%H:%M"
    span = last - first
    return "%H:%M:%S" if span < timedelta(minutes=15) else "%b %d %H:%M" if span > timedelta(days=1) else "%H:%M"


def trend_chart(rows: list[dict[str, Any]], b: Budget, title: str) -> alt.LayerChart:
    """The figure over time (points coloured by level; times in UTC), with the warning and
    critical thresholds drawn as dashed, labelled rules."""
    fmt = _AXIS_FORMAT.get(b.spec.unit, ",.3~g")
    values = [
        {"at": r["at"], "when": when(r["at"]), "figure": r.get("figure"),
         "shown": fmt_value(b.spec.unit, r.get("figure")), "level": str(r.get("level", "")).replace("_", " ")}
        for r in rows
    ]  # fmt: skip
    x = alt.X("at:T", title=None, scale=alt.Scale(type="utc"),
              axis=alt.Axis(format=time_format(rows), labelOverlap=True, tickCount=8))  # fmt: skip
    y = alt.Y("figure:Q", title=_UNIT_TITLE.get(b.spec.unit) or None, axis=alt.Axis(format=fmt, tickCount=5),
              scale=alt.Scale(zero=True))  # fmt: skip
    base = alt.Chart(alt.Data(values=values))
    line = base.mark_line(color="#6c8ebf").encode(x=x, y=y)
    level_scale = alt.Scale(domain=[k.replace("_", " ") for k in _LEVEL_COLORS], range=list(_LEVEL_COLORS.values()))
    points = base.mark_point(filled=True, size=60 if len(rows) <= 60 else 15).encode(
        x=x,
        y=y,
        color=alt.Color("level:N", scale=level_scale, legend=None),
        tooltip=[alt.Tooltip("when:N", title="evaluated"), alt.Tooltip("shown:N", title="figure"), "level:N"],
    )
    layers: list[Any] = [line, points]
    thresholds = thresholds_of(b, rows)
    for what, value in thresholds.items():
        color = _LEVEL_COLORS[what]
        rule = alt.Chart(alt.Data(values=[{"y": value, "what": what, "shown": fmt_value(b.spec.unit, value)}]))
        tip = [alt.Tooltip("what:N", title="threshold"), alt.Tooltip("shown:N", title="at")]
        layers.append(rule.mark_rule(color=color, strokeDash=[6, 4], strokeWidth=1.5).encode(y="y:Q", tooltip=tip))
        # right of the plot, clear of the line; the lower of two labels a little lower, the upper higher
        below = len(thresholds) > 1 and value < max(thresholds.values())
        above = len(thresholds) > 1 and not below
        label = rule.mark_text(align="left", baseline="middle", dx=4, dy=5 if below else -5 if above else 0,
                               color=color, fontSize=11)  # fmt: skip
        layers.append(label.encode(x=alt.value({"expr": "width"}), y="y:Q", text="what:N"))
    chart = alt.layer(*layers).resolve_scale(y="shared")
    return chart.properties(height=200, title=alt.TitleParams(title, anchor="start", fontSize=13, fontWeight="normal"))
