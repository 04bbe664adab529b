"""Delivery of the outbox (server.alerts.store): one worker thread per destination, so a
destination that is down or hangs delays only its own notifications, never another's, the
evaluation or ingest.

Per destination, in the order they were made: the oldest pending notification is sent; when
it fails with an error a retry may mend (server.alerts.destinations.DeliveryError), it is
tried again after an exponential backoff with jitter (`DeliveryPolicy.backoff`), until
`max_attempts` or `max_age`; then it is recorded failed with its last error (visible in
`Alerts.deliveries`) and the next one goes. Errors no retry mends fail it at once. Each send
is bounded by connect and read timeouts.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from spanlake.analytics.budgets.definition import Destination
from spanlake.server.alerts.destinations import DeliveryError, Timeouts, send
from spanlake.server.alerts.store import AlertStore, Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard delivery tries. The defaults ride out about an hour of a receiver being down
    (5 s, 10 s, ... doubling to 10 min, 12 attempts); tests shorten them."""

    max_attempts: int = 12
    max_age: timedelta = timedelta(hours=6)
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 600.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    idle_poll_s: float = 5.0  # how often an idle worker looks at its folder without being woken

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_base_s <= 0 or self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("max_attempts >= 1 and 0 < backoff_base_s <= backoff_cap_s")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be longer than 0")

    def backoff(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempts`-th failed attempt: base·2^(attempts-1), capped,
        of which a random half is jitter (so retries of many senders spread out)."""
        full = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(0, attempts - 1))
        return full / 2 + (rng or random).uniform(0, full / 2)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(self.connect_timeout_s, self.read_timeout_s)


def _now() -> datetime:
    return datetime.now(UTC)


class Deliverer:
    """The delivery workers of one outbox. `destinations()` gives the declared destinations by
    name (read at each send, so a fixed URL applies to the retries still pending)."""

    def __init__(
        self,
        store: AlertStore,
        destinations: Callable[[], Mapping[str, Destination]],
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.store, self.destinations = store, destinations
        self.policy = policy or DeliveryPolicy()
        self._stop = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Start a worker for every destination with notifications pending."""
        self._stop.clear()
        self._started = True
        self.wake(self.store.pending_destinations())

    def wake(self, names: Iterable[str] = ()) -> None:
        """New notifications for `names`: start their workers or wake them."""
        if not self._started:
            return
        with self._lock:
            for name in names:
                worker = self._workers.get(name)
                if worker is None or not worker.thread.is_alive():
                    worker = self._workers[name] = _Worker(self, name)
                    worker.thread.start()
                worker.wake.set()

    def stop(self) -> None:
        """Stop the workers; a send in progress ends within its timeouts."""
        self._stop.set()
        self._started = False
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for w in workers:
            w.wake.set()
        for w in workers:
            w.thread.join(self.policy.connect_timeout_s + self.policy.read_timeout_s + 1)


class _Worker:
    """Sends one destination's notifications, oldest first."""

    def __init__(self, owner: Deliverer, name: str) -> None:
        self.owner, self.name = owner, name
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"spanlake-alerts-{name}", daemon=True)

    def _run(self) -> None:
        policy, stop = self.owner.policy, self.owner._stop
        with httpx.Client(timeout=policy.timeouts.httpx(), follow_redirects=False) as client:
            while not stop.is_set():
                try:
                    wait = self._once(client)
                except Exception:  # a disk error: keep the worker, try again later
                    log.exception("alerts: delivery to %s failed unexpectedly", self.name)
                    wait = policy.idle_poll_s
                if wait > 0:
                    self.wake.wait(wait)
                    self.wake.clear()

    def _once(self, client: httpx.Client) -> float:
        """Send the oldest due notification; the seconds to wait before looking again."""
        policy, store = self.owner.policy, self.owner.store
        d = store.next_pending(self.name)
        if d is None:
            return policy.idle_poll_s
        now = _now()
        if d.next_attempt_at is not None and d.next_attempt_at > now:
            return min(policy.idle_poll_s, (d.next_attempt_at - now).total_seconds())
        dest = self._destination()
        if dest is None:
            store.failed(d, now, f"destination {self.name!r} is no longer declared", attempted=False)
            return 0
        try:
            send(dest, d, client, policy.timeouts, now)
        except DeliveryError as e:
            self._failed_attempt(d, str(e), e.retryable, e.retry_after)
            return 0
        except Exception as e:  # a bug in rendering must not stop the destination for good
            log.exception("alerts: could not send %s to %s", d.id, self.name)
            self._failed_attempt(d, f"{type(e).__name__}: {e}", retryable=False, retry_after=None)
            return 0
        store.delivered(d, _now())
        log.info("alerts: delivered %s (%s %s) to %s", d.id, d.kind, d.key, self.name)
        return 0

    def _failed_attempt(self, d: Delivery, error: str, retryable: bool, retry_after: float | None) -> None:
        policy, store = self.owner.policy, self.owner.store
        at = _now()
        attempts = d.attempts + 1
        if not retryable:
            store.failed(d, at, error)
            log.warning("alerts: %s to %s failed: %s", d.id, self.name, error)
            return
        if attempts >= policy.max_attempts or at - d.created_at >= policy.max_age:
            store.failed(d, at, f"{error} (gave up after {attempts} attempts)")
            log.warning("alerts: %s to %s failed after %d attempts: %s", d.id, self.name, attempts, error)
            return
        delay = policy.backoff(attempts)
        if retry_after is not None:
            delay = max(delay, min(retry_after, policy.backoff_cap_s))
        store.attempted(d, at, error, at + timedelta(seconds=delay))
        log.info("alerts: %s to %s: %s; retry in %.1f s", d.id, self.name, error, delay)

    def _destination(self) -> Destination | None:
        return self.owner.destinations().get(self.name)
