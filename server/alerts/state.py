"""The alert state of one budget and how a reading moves it: `step(prev, reading, now)`, a pure
function (no clock, no I/O), so every rule below is tested on hand-made reading sequences
(tests/server/test_alert_state.py).

Statuses (`AlertState.status`):

    ok        within the thresholds, nothing open
    pending   breached, waiting for the breach to last `budget.for_` before it fires
    firing    an alert episode is open at `severity` warning or critical
    no_data   too few samples to judge (`Reading.level == "no_data"`); an episode that was
              firing stays open through it (`episode` is kept, `alerting` is True)

Rules, and why:

- **Firing.** A breach (level warning or critical) fires once it has lasted `for_` (measured
  from the first breached reading); with `for_` 0 it fires at the first one. It fires at the
  level of the reading that fires it. Each firing opens an episode with its own id
  (`<key>@<time>`), which PagerDuty uses as dedup_key so the resolve closes what the trigger
  opened.
- **Up fast, down slow.** While firing, a critical reading escalates warning → critical at
  once (the breach is already confirmed). Going down — critical → warning (de-escalation) or
  back within the thresholds (resolve) — needs the lower level to hold for
  max(`for_`, RESOLVE_EVALUATIONS consecutive readings): a figure hovering at a threshold
  does not send fire/resolve or escalate/de-escalate pairs every minute (flap suppression).
  Any reading at the higher level restarts the hold.
- **Re-notify.** While firing with the figure still breached, a reminder goes out when
  `renotify` has passed since the episode's last notification (0: never). Not during a
  resolve hold, and not during no data.
- **No data.** From ok or pending: no notification (a quiet night is not an incident). From
  firing: one notification, and the episode stays open: missing data is not a recovery (a
  service that died entirely sends nothing). When data comes back the episode continues as
  if it had never stopped: a breach keeps it firing (no new notification, re-notify resumes),
  an ok figure starts the resolve hold. A `traffic` budget with zero tasks is a breach, not no
  data (analytics.budgets.measure.classify gives it a level).
- Every notification of the episode (firing, escalation, de-escalation, no data, re-notify)
  restarts the re-notify clock.

Events (`Event.kind`) are every transition, and `notify` says whether it is sent:
pending, ok (pending or no data back to ok), firing*, escalated*, deescalated*, resolved*,
renotify*, no_data (* when an episode is open), data_back, removed (the engine's: the budget
left the file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from spanlake.analytics.budgets.measure import Reading

Status = Literal["ok", "pending", "firing", "no_data"]
Severity = Literal["warning", "critical"]
EventKind = Literal[
    "pending", "ok", "firing", "escalated", "deescalated", "resolved", "renotify", "no_data", "data_back", "removed"
]
STATUSES: tuple[Status, ...] = ("ok", "pending", "firing", "no_data")
NOTIFYING: frozenset[str] = frozenset({"firing", "escalated", "deescalated", "resolved", "renotify", "no_data"})
RESOLVE_EVALUATIONS = 2  # a lower level must hold for at least this many consecutive readings
_RANK = {"ok": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Seen:
    """What the last reading said (kept in the state for the API, CLI and dashboard)."""

    at: datetime
    level: str
    figure: float | None
    samples: int
    warning_at: float | None
    critical_at: float | None
    baseline: float | None
    reason: str

    @classmethod
    def of(cls, r: Reading) -> Seen:
        base = r.baseline.value if r.baseline is not None else None
        return cls(r.at, r.level, r.figure.value, r.figure.samples, r.warning_at, r.critical_at, base, r.reason)


@dataclass(frozen=True)
class AlertState:
    """One budget's alert state (see the module docstring for the rules)."""

    key: str
    status: Status = "ok"
    since: datetime | None = None  # when `status` began
    severity: Severity | None = None  # pending: the last breach's level; firing: the alert's
    episode: str | None = None  # the open alert episode (firing, or no data while firing)
    episode_since: datetime | None = None
    breach_since: datetime | None = None  # pending: the first breached reading
    ok_since: datetime | None = None  # open episode: first of the consecutive ok readings
    ok_count: int = 0
    lower_since: datetime | None = None  # firing critical: first of the readings below critical
    lower_count: int = 0
    last_notified: datetime | None = None  # the episode's last notification (re-notify clock)
    last: Seen | None = None

    @property
    def alerting(self) -> bool:
        """An episode is open: firing, or no data since it fired."""
        return self.episode is not None

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self)) | {"alerting": self.alerting}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertState:
        last = d.get("last")
        seen = None
        if last is not None:
            seen = Seen(**{**last, "at": _time(last["at"])})
        return cls(
            key=d["key"], status=d["status"], since=_time(d.get("since")), severity=d.get("severity"),
            episode=d.get("episode"), episode_since=_time(d.get("episode_since")),
            breach_since=_time(d.get("breach_since")), ok_since=_time(d.get("ok_since")),
            ok_count=int(d.get("ok_count", 0)), lower_since=_time(d.get("lower_since")),
            lower_count=int(d.get("lower_count", 0)), last_notified=_time(d.get("last_notified")), last=seen,
        )  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One transition of one budget. `severity` is the alert's after the event (for resolved:
    the one it had); `previous` the one before (escalated, deescalated)."""

    kind: EventKind
    key: str
    at: datetime
    from_status: Status
    to_status: Status
    notify: bool
    severity: Severity | None = None
    previous: Severity | None = None
    episode: str | None = None
    episode_since: datetime | None = None
    last: Seen | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))


def step(prev: AlertState | None, reading: Reading, now: datetime) -> tuple[AlertState, list[Event]]:
    """The state after `reading` (taken at `now`) and the events it caused; `prev` None: the
    budget was never evaluated (it starts ok)."""
    b = reading.budget
    s = prev if prev is not None else AlertState(b.key, "ok", now)
    seen = Seen.of(reading)
    level = reading.level
    s = replace(s, last=seen)
    events: list[Event] = []

    def event(kind: EventKind, new: AlertState, notify: bool, **kw: Any) -> None:
        events.append(
            Event(kind, b.key, now, s.status, new.status, notify, new.severity if kind != "resolved" else s.severity,
                  episode=new.episode or s.episode, episode_since=new.episode_since or s.episode_since,
                  last=seen, reason=reading.reason, **kw)
        )  # fmt: skip

    def held(since: datetime | None, count: int) -> bool:
        return since is not None and count >= RESOLVE_EVALUATIONS and now - since >= b.for_

    if not s.alerting:
        if level == "no_data":
            if s.status == "no_data":
                return s, []
            new = replace(s, status="no_data", since=now, severity=None, breach_since=None)
            event("no_data", new, False)
            return new, events
        if level == "ok":
            if s.status == "ok":
                return s, []
            new = replace(s, status="ok", since=now, severity=None, breach_since=None)
            event("ok", new, False)
            return new, events
        sev: Severity = level  # type: ignore[assignment]
        breach_since = s.breach_since if s.status == "pending" and s.breach_since is not None else now
        if now - breach_since >= b.for_:
            episode = f"{b.key}@{now.strftime('%Y%m%dT%H%M%SZ')}"
            new = replace(
                s, status="firing", since=now, severity=sev, episode=episode, episode_since=now,
                breach_since=None, ok_since=None, ok_count=0, lower_since=None, lower_count=0, last_notified=now,
            )  # fmt: skip
            event("firing", new, True)
            return new, events
        if s.status == "pending":
            return replace(s, severity=sev), []
        new = replace(s, status="pending", since=now, severity=sev, breach_since=breach_since)
        event("pending", new, False)
        return new, events

    # an episode is open: firing, or no data since it fired
    assert s.severity is not None
    if level == "no_data":
        if s.status == "no_data":
            return s, []
        new = replace(s, status="no_data", since=now, ok_since=None, ok_count=0, lower_since=None, lower_count=0,
                      last_notified=now)  # fmt: skip
        event("no_data", new, True)
        return new, events
    if s.status == "no_data":
        back = replace(s, status="firing", since=now)
        event("data_back", back, False)
        s = back
    if level == "ok":
        s = replace(s, ok_since=s.ok_since or now, ok_count=s.ok_count + 1)
        if s.severity == "critical":
            s = replace(s, lower_since=s.lower_since or now, lower_count=s.lower_count + 1)
        if held(s.ok_since, s.ok_count):
            new = replace(
                s, status="ok", since=now, severity=None, episode=None, episode_since=None, ok_since=None,
                ok_count=0, lower_since=None, lower_count=0, last_notified=None,
            )  # fmt: skip
            event("resolved", new, True)
            return new, events
        if s.severity == "critical" and held(s.lower_since, s.lower_count):
            new = replace(s, severity="warning", lower_since=None, lower_count=0, last_notified=now)
            event("deescalated", new, True, previous="critical")
            return new, events
        return s, events
    # breached again: any resolve hold ends
    s = replace(s, ok_since=None, ok_count=0)
    if _RANK[level] > _RANK[s.severity]:
        new = replace(s, severity="critical", lower_since=None, lower_count=0, last_notified=now)
        event("escalated", new, True, previous="warning")
        return new, events
    if _RANK[level] < _RANK[s.severity]:
        s = replace(s, lower_since=s.lower_since or now, lower_count=s.lower_count + 1)
        if held(s.lower_since, s.lower_count):
            new = replace(s, severity="warning", lower_since=None, lower_count=0, last_notified=now)
            event("deescalated", new, True, previous="critical")
            return new, events
    else:
        s = replace(s, lower_since=None, lower_count=0)
    if b.renotify > timedelta(0) and s.last_notified is not None and now - s.last_notified >= b.renotify:
        new = replace(s, last_notified=now)
        event("renotify", new, True)
        return new, events
    return s, events


def removed(prev: AlertState, now: datetime) -> Event:
    """The event of a budget that is no longer declared; it notifies (as a resolve) when an
    episode was open, so a pager incident it opened is closed."""
    return Event(
        "removed", prev.key, now, prev.status, "ok", prev.alerting, prev.severity, episode=prev.episode,
        episode_since=prev.episode_since, last=prev.last, reason="the budget is no longer declared",
    )  # fmt: skip


def _time(v: Any) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def _plain(v: Any) -> Any:
    """Dataclass dicts with times as ISO text (JSON-ready)."""
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v
