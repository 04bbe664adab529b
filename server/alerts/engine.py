"""The alerting engine of a data directory: it takes each evaluation's readings, moves every
budget's alert state (server.alerts.state), stores states, events and notifications durably
(server.alerts.store) and delivers the notifications (server.alerts.deliver).

    alerts = Alerts(data_dir, budgets, dashboard_url, worst)
    alerts.start()                       # delivery workers
    events = alerts.record(readings, now)  # once per evaluation (the server's budget job)
    alerts.states(); alerts.history(key); alerts.deliveries(status="failed")
    alerts.stop()

One engine per data directory: it holds `<data-dir>/alerts/engine.lock` from construction to
`stop()`; a second raises AlertsBusy. Readers in other processes (CLI, another API worker)
use `AlertStore(<data-dir>/alerts)` directly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spanlake.analytics.budgets.definition import Budget, BudgetSet, Destination
from spanlake.analytics.budgets.measure import Reading
from spanlake.server.alerts import message
from spanlake.server.alerts.deliver import Deliverer, DeliveryPolicy
from spanlake.server.alerts.destinations import wants
from spanlake.server.alerts.state import AlertState, Event, removed, step
from spanlake.server.alerts.store import AlertStore, Delivery, DeliveryStatus
from spanlake.storage.json_file import file_lock
from spanlake.storage.layout import DataDir

log = logging.getLogger(__name__)

WORST_TRACES = 5
Worst = Callable[[Budget, datetime, datetime], list[str]]


class AlertsBusy(RuntimeError):
    """Another process runs the alerts of this data directory."""


class Alerts:
    """Alert states, notifications and their delivery for the budgets `budgets()` declares.

    `worst(budget, since, until)` gives the ids of the worst traces of a window; it is called
    only when a notification is made. `dashboard_url` (None: no links) is where the messages'
    links point."""

    def __init__(
        self,
        data_dir: DataDir | str | Path,
        budgets: Callable[[], BudgetSet],
        dashboard_url: str | None,
        worst: Worst,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        root = data_dir.root if isinstance(data_dir, DataDir) else Path(data_dir)
        self.store = AlertStore(root / "alerts")
        self.budgets, self.worst = budgets, worst
        self.dashboard_url = dashboard_url if dashboard_url and dashboard_url.startswith("http") else None
        self._held = contextlib.ExitStack()
        if not self._held.enter_context(file_lock(self.store.lock_path, blocking=False)):
            self._held.close()
            raise AlertsBusy(f"another process runs the alerts of {root} (it holds {self.store.lock_path})")
        try:
            self.store.recover()
            self._states: dict[str, AlertState] = self.store.states()
        except BaseException:
            self._held.close()
            raise
        self._known: dict[str, Budget] = {}  # the budgets of the last evaluation (for removals)
        self._destinations: dict[str, Destination] = {}
        self._lock = threading.Lock()
        self.deliverer = Deliverer(self.store, self.destinations, policy)

    def start(self) -> None:
        """Start delivering (what a previous run left pending first)."""
        self.destinations()
        self.deliverer.start()

    def stop(self) -> None:
        """Stop delivering and let go of the data directory's alerts."""
        self.deliverer.stop()
        self._held.close()

    def destinations(self) -> Mapping[str, Destination]:
        """The declared destinations by name (the last good ones when the file cannot be read)."""
        try:
            self._destinations = {d.name: d for d in self.budgets().destinations}
        except Exception as e:
            log.warning("alerts: keeping the previous destinations: %s", e)
        return self._destinations

    def record(self, readings: list[Reading], now: datetime | None = None) -> list[Event]:
        """Apply one evaluation: step every reading's budget, note budgets no longer declared,
        store it all (notifications first, then the states: server.alerts.store) and wake the
        delivery. Returns the events, notifying or not."""
        now = now or datetime.now(UTC)
        with self._lock:
            try:
                declared: BudgetSet | None = self.budgets()
            except Exception as e:  # an invalid file: no removals, the last good destinations
                log.warning("alerts: budgets unreadable, not checking for removed ones: %s", e)
                declared = None
            destinations = self.destinations()
            batch = self.store.next_batch()
            states = dict(self._states)
            events: list[Event] = []
            deliveries: list[Delivery] = []
            for r in readings:
                new, happened = step(states.get(r.budget.key), r, now)
                states[r.budget.key] = new
                for e in happened:
                    events.append(e)
                    if e.notify:
                        deliveries += self._notifications(e, r.budget, r, destinations, batch, len(deliveries))
            if declared is not None:
                keys = {b.key for b in declared.budgets} | {r.budget.key for r in readings}
                for key in sorted(set(states) - keys):
                    e = removed(states.pop(key), now)
                    events.append(e)
                    gone = self._known.get(key)
                    if e.notify and gone is not None:
                        deliveries += self._notifications(e, gone, None, destinations, batch, len(deliveries))
                    elif e.notify:
                        log.warning("alerts: %s was removed while firing; its destinations are unknown", key)
                self._known = {b.key: b for b in declared.budgets}
            if not readings and not events:
                return []
            self.store.commit(states, events, deliveries)
            self._states = states
            self.store.append_readings([_reading_row(r) for r in readings])
        self.deliverer.wake({d.destination for d in deliveries})
        return events

    def states(self) -> dict[str, AlertState]:
        """Every budget's alert state, by key (project/name)."""
        return dict(self._states)

    def history(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The last `limit` events of budget `key` (None: of all), newest first."""
        return self.store.history(key, limit)

    def deliveries(
        self,
        status: DeliveryStatus | None = None,
        destination: str | None = None,
        key: str | None = None,
        limit: int = 200,
    ) -> list[Delivery]:
        """Notifications and their delivery: pending (oldest first), delivered, failed (newest first)."""
        return self.store.deliveries(status, destination, key, limit)

    def _notifications(
        self,
        event: Event,
        budget: Budget,
        reading: Reading | None,
        destinations: Mapping[str, Destination],
        batch: int,
        first: int,
    ) -> list[Delivery]:
        names = [n for n in budget.destinations if n not in destinations or wants(destinations[n].type, event.kind)]
        if not names:
            return []
        msg = message.build(event, budget, reading, self.dashboard_url, self._worst(budget, reading, event))
        made = datetime.now(UTC)  # the clock of delivery (max_age), whatever time the evaluation was for
        return [
            Delivery(f"msg_{uuid.uuid4().hex}", name, budget.key, event.kind, batch, first + i, made, msg)
            for i, name in enumerate(names)
        ]

    def _worst(self, budget: Budget, reading: Reading | None, event: Event) -> list[str]:
        if reading is None or event.kind == "no_data":
            return []
        try:
            return [str(t) for t in self.worst(budget, reading.figure.since, reading.figure.until)][:WORST_TRACES]
        except Exception:  # the message goes out without them
            log.exception("alerts: could not find the worst traces of %s", budget.key)
            return []


def _reading_row(r: Reading) -> dict[str, Any]:
    """One line of readings.jsonl: what the trend on the Budgets page draws."""
    return {
        "at": r.at.isoformat(),
        "key": r.budget.key,
        "level": r.level,
        "figure": r.figure.value,
        "samples": r.figure.samples,
        "warning_at": r.warning_at,
        "critical_at": r.critical_at,
    }
