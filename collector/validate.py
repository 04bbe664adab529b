"""Check export requests span by span; drop what cannot be stored and say why (pure).

A request with some bad spans is still accepted: the good spans are stored and the
response carries OTLP `partial_success` with the count and reasons of the rejected ones.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector.decode import resource_project
from spanlake.collector.values import key_values
from spanlake.storage.layout import valid_project

MIN_TIME_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z: earlier start times are treated as unset
# The accepted time window, relative to the collector's clock (`spanlake up --max-future-seconds`,
# `--max-past-seconds`). Past: 0 accepts anything since MIN_TIME_NS. Whatever the window, the
# number of files a write makes is bounded (storage.late).
DEFAULT_MAX_FUTURE_S = 24 * 3600
DEFAULT_MAX_PAST_S = 0

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


@dataclass
class Verdict:
    """How many items a request had, how many were rejected, and why."""

    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected += n
        self.reasons[reason] += n

    @property
    def message(self) -> str:
        if not self.rejected:
            return ""
        parts = [f"{n} {reason}" for reason, n in self.reasons.most_common()]
        return f"rejected {self.rejected} of {self.accepted + self.rejected}: " + "; ".join(parts)


def _span_problem(span: Any, min_ns: int, max_ns: int) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return "with an invalid trace_id (need 16 bytes, not all zero)"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return "with an invalid span_id (need 8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "with an invalid parent_span_id (need 8 bytes or empty)"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start < MIN_TIME_NS:
        return "with start_time unset or before 2000-01-01"
    if start < min_ns:
        return "with start_time too far in the past"
    if start > max_ns:
        return "with start_time too far in the future"
    if end < start:
        return "with end_time before start_time"
    if end > max_ns:
        return "with end_time too far in the future"
    return None


BAD_PROJECT = "with an invalid project name (letters, digits, '_', '.', '-'; at most 64)"


def _validate(
    resources: Any,
    scopes_of: Callable[[Any], Any],
    items_of: Callable[[Any], Any],
    problem: Callable[[Any, int], str | None],
    project_override: str | None,
    max_ns: int,
) -> Verdict:
    """Drop the items (spans or log records) that `problem` names, in place, and count them."""
    verdict = Verdict()
    for resource_entry in resources:
        bad_project = None
        if project_override is None:
            project = resource_project(key_values(resource_entry.resource.attributes))
            if not valid_project(project):
                bad_project = BAD_PROJECT
        for scope_entry in scopes_of(resource_entry):
            items = items_of(scope_entry)
            if bad_project:
                verdict.reject(bad_project, len(items))
                del items[:]
                continue
            problems = [problem(item, max_ns) for item in items]
            if any(problems):
                keep = [item for item, p in zip(items, problems, strict=True) if p is None]
                for p in problems:
                    if p:
                        verdict.reject(p)
                del items[:]
                items.extend(keep)
            verdict.accepted += len(items)
    return verdict


def max_time_ns(now_ns: int | None, max_future_s: int) -> int:
    """The latest time accepted: now plus the future window."""
    return (time.time_ns() if now_ns is None else now_ns) + max_future_s * 10**9


def min_time_ns(now_ns: int | None, max_past_s: int) -> int:
    """The earliest time accepted: now minus the past window (MIN_TIME_NS when unbounded)."""
    if max_past_s <= 0:
        return MIN_TIME_NS
    return max(MIN_TIME_NS, (time.time_ns() if now_ns is None else now_ns) - max_past_s * 10**9)


def validate_traces(
    request: ExportTraceServiceRequest,
    project_override: str | None = None,
    now_ns: int | None = None,
    max_future_s: int = DEFAULT_MAX_FUTURE_S,
    max_past_s: int = DEFAULT_MAX_PAST_S,
) -> Verdict:
    """Remove invalid spans from `request` in place and report what was removed."""
    min_ns = min_time_ns(now_ns, max_past_s)
    return _validate(
        request.resource_spans,
        lambda rs: rs.scope_spans,
        lambda ss: ss.spans,
        lambda span, max_ns: _span_problem(span, min_ns, max_ns),
        project_override,
        max_time_ns(now_ns, max_future_s),
    )


def _log_problem(rec: Any, min_ns: int, max_ns: int) -> str | None:
    if rec.trace_id and len(rec.trace_id) != 16:
        return "with an invalid trace_id (need 16 bytes or empty)"
    if rec.span_id and len(rec.span_id) != 8:
        return "with an invalid span_id (need 8 bytes or empty)"
    if rec.time_unix_nano > max_ns or rec.observed_time_unix_nano > max_ns:
        return "with a time too far in the future"
    if min_ns > MIN_TIME_NS and 0 < (rec.time_unix_nano or rec.observed_time_unix_nano) < min_ns:
        return "with a time too far in the past"
    return None


def validate_logs(
    request: ExportLogsServiceRequest,
    project_override: str | None = None,
    now_ns: int | None = None,
    max_future_s: int = DEFAULT_MAX_FUTURE_S,
    max_past_s: int = DEFAULT_MAX_PAST_S,
) -> Verdict:
    """Remove invalid log records from `request` in place and report what was removed."""
    min_ns = min_time_ns(now_ns, max_past_s)
    return _validate(
        request.resource_logs,
        lambda rl: rl.scope_logs,
        lambda sl: sl.log_records,
        lambda rec, max_ns: _log_problem(rec, min_ns, max_ns),
        project_override,
        max_time_ns(now_ns, max_future_s),
    )
