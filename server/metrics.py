"""GET /metrics: the server's own health in the Prometheus text format (prometheus-client).

Every family is read at scrape time from the parts the role runs (a custom collector: no
instrumentation in the ingest path beyond plain counters, collector/stats.py); a part the role
does not run exports nothing. Counters start at 0 when the process starts, as Prometheus
expects (its `rate()` handles the reset).

The families and their labels are listed in docs/metrics.md.

Plus the process's own CPU, memory and open files (prometheus-client's ProcessCollector).
Authentication as the API: off on loopback, else a key of any scope (`Authorization: Bearer`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, float]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric([str(k) for k in (key if isinstance(key, tuple) else (key,))], value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class ServerMetrics(Collector):
    """The metrics of one `server.app.Server` (read lazily: parts start after the HTTP app)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)

    def collect(self) -> Iterator[Metric]:
        for part in (self._ingest, self._wal, self._upkeep, self._rollups, self._background):
            try:
                yield from part()
            except Exception:  # a scrape never fails because one part could not be read
                log.exception("metrics: cannot read %s", part.__name__)

    def _ingest(self) -> Iterator[Metric]:
        c = self.server.collector
        if c is None:
            return
        s = c.ingestor.stats
        yield _counter("spanlake_received_requests", "OTLP requests whose body arrived.", ["signal", "transport"],
                       dict(s.requests))  # fmt: skip
        yield _counter("spanlake_received_bytes", "Bytes of OTLP request bodies, as sent.", ["signal", "transport"],
                       dict(s.bytes))  # fmt: skip
        yield _counter("spanlake_refused_requests", "Whole OTLP requests refused.", ["signal", "transport", "reason"],
                       dict(s.refused))  # fmt: skip
        yield _counter("spanlake_accepted_items", "Spans and log records made durable.", ["signal"], dict(s.accepted))
        yield _counter("spanlake_rejected_items", "Items dropped from accepted requests.", ["signal", "reason"],
                       dict(s.rejected))  # fmt: skip

    def _wal(self) -> Iterator[Metric]:
        c = self.server.collector
        if c is None:
            return
        wal, flusher = c.wal, c.flusher
        yield _gauge("spanlake_wal_backlog_bytes", "Closed WAL segments not yet flushed, bytes.", wal.backlog_bytes)
        yield _gauge("spanlake_wal_pending_bytes", "WAL appends queued or being written, bytes.", wal._pending_bytes)
        oldest = wal.oldest_unflushed_ns()
        age = max(0.0, time.time() - oldest / 1e9) if oldest is not None else 0.0
        yield _gauge("spanlake_wal_oldest_unflushed_age_seconds", "Age of the oldest record not yet in the lake.", age)
        flushed = {"ok": flusher.segments_flushed, "failed": flusher.segments_failed}
        yield _counter("spanlake_flushed_segments", "WAL segments published or quarantined.", ["outcome"], flushed)
        summary = SummaryMetricFamily("spanlake_flush_duration_seconds", "Time to publish one WAL segment.")
        summary.add_metric([], count_value=flusher.segments_flushed, sum_value=flusher.flush_seconds)
        yield summary
        yield _counter("spanlake_parquet_files_written", "Parquet files the flusher published.", [],
                       {(): flusher.files_written})  # fmt: skip

    def _upkeep(self) -> Iterator[Metric]:
        upkeep = self.server.upkeep
        if upkeep is None:
            return
        runs = {("compaction", k): v for k, v in upkeep.compactions.items()}
        runs |= {("retention", k): v for k, v in upkeep.retentions.items()}
        yield _counter("spanlake_compaction_runs", "Compaction and retention runs.", ["job", "outcome"], runs)

    def _rollups(self) -> Iterator[Metric]:
        r = self.server.rollups
        if r is None:
            return
        runs = {"ok": r.runs, "failed": r.failures}
        yield _counter("spanlake_rollup_runs", "Rollup job runs.", ["outcome"], runs)
        since = r.last_success if r.last_success is not None else r.started_at
        yield _gauge("spanlake_rollup_lag_seconds", "Seconds since the last successful rollup run.",
                     max(0.0, time.time() - since))  # fmt: skip

    def _background(self) -> Iterator[Metric]:
        queries = self.server.queries
        if queries is not None:
            yield _gauge("spanlake_query_workers_busy", "API queries running or waiting.", queries.admitted)
        alerts = self.server.alerts
        if alerts is not None:
            n = outbox_pending(alerts.store.outbox / "pending")
            yield _gauge("spanlake_alert_notifications_pending", "Alert notifications waiting for delivery.", n)
        evaluation = self.server.evaluation_watch
        if evaluation is not None:
            status = evaluation.status()
            yield _gauge("spanlake_evaluation_backlog", "Complete traces waiting for the online evaluation rules.",
                         status.get("backlog", 0))  # fmt: skip
            yield _gauge("spanlake_evaluation_retries", "Evaluations waiting to be tried again (judge down, ...).",
                         status.get("retry", 0))  # fmt: skip


def outbox_pending(folder: Path) -> int:
    """Files under `folder`'s per-destination folders (pending notifications)."""
    return sum(1 for d in folder.iterdir() if d.is_dir() for _ in d.iterdir()) if folder.is_dir() else 0
