"""What the receivers saw, counted for /metrics (server/metrics.py): requests and bytes per
signal and transport, requests refused (by reason), items accepted and rejected (by reason).

Plain counters updated on the event loop (one writer), read by the metrics endpoint; no
locks, no dependency: an ingest node counts without prometheus-client in its hot path.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

Transport = str  # "grpc" | "http"


def reason_label(text: str) -> str:
    """A short, stable label for a rejection reason or error class: 'with an invalid trace_id (…)'
    → 'invalid_trace_id', 'PayloadTooLarge' → 'payload_too_large'."""
    text = re.sub(r"\(.*?\)", "", text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in ("with", "an", "a", "the")]
    return "_".join(words[:6]) or "other"


@dataclass
class IngestStats:
    """Counters since the process started (Prometheus counters: a restart starts them at 0)."""

    requests: Counter[tuple[str, Transport]] = field(default_factory=Counter)
    bytes: Counter[tuple[str, Transport]] = field(default_factory=Counter)
    refused: Counter[tuple[str, Transport, str]] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def received(self, signal: str, transport: Transport, size: int) -> None:
        """A request's body arrived (before it is parsed)."""
        self.requests[signal, transport] += 1
        self.bytes[signal, transport] += size

    def refuse(self, signal: str, transport: Transport, error: Exception) -> None:
        """A whole request was refused (auth, size, malformed, backpressure, ...)."""
        self.refused[signal, transport, reason_label(type(error).__name__)] += 1

    def items(self, signal: str, accepted: int, reasons: Counter[str]) -> None:
        """Items (spans, log records) of a parsed request: how many were kept, and why others were not."""
        self.accepted[signal] += accepted
        for reason, n in reasons.items():
            self.rejected[signal, reason_label(reason)] += n
