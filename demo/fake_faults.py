"""The run-time failure injection of the fake servers (spanlake.demo.fake_openai, "Failure
injection at run time"): the outage on now (429, 503 or hang; for N requests, T seconds, or until
restored), the delay of every chat request, and the request counters, shared thread-safely by a
FakeOpenAI and its app.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

OUTAGES = ("429", "503", "hang")


@dataclass
class Faults:
    """The run-time switches and counters a FakeOpenAI shares with its app (thread-safe)."""

    kind: str | None = None  # one of OUTAGES while an outage is on
    remaining: int | None = None  # requests the outage still takes (None: no count)
    until: float | None = None  # time.monotonic() the outage ends (None: no deadline)
    retry_after_s: float | None = None
    delay_s: float = 0.0
    stopping: bool = False
    release: threading.Event = field(default_factory=threading.Event, repr=False)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, kind: str, requests: int | None, seconds: float | None, retry_after_s: float | None) -> None:
        if kind not in OUTAGES:
            raise ValueError(f"outage kind must be one of {', '.join(OUTAGES)}, not {kind!r}")
        with self.lock:
            self.release.set()  # requests hung by an earlier outage are let go
            self.release = threading.Event()
            self.kind, self.remaining, self.retry_after_s = kind, requests, retry_after_s
            self.until = None if seconds is None else time.monotonic() + seconds

    def stop(self) -> None:
        with self.lock:
            self.kind = self.remaining = self.until = None
            self.release.set()

    def take(self) -> tuple[str, threading.Event, float | None] | None:
        """The outage this request gets, if any (counted against `requests`): its kind, the
        event that releases a hung request, and its deadline."""
        with self.lock:
            if self.kind is None or (self.until is not None and time.monotonic() >= self.until):
                self.kind = None
                return None
            taken = (self.kind, self.release, self.until)
            if self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.kind = None
            return taken

    def enter(self) -> None:
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
