"""Check export requests span by span; drop what cannot be stored and say why (pure).

A request with some bad spans is still accepted: the good spans are stored and the
response carries OTLP `partial_success` with the count and reasons of the rejected ones.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector.decode import resource_project
from spanlake.collector.values import key_values
from spanlake.storage.layout import valid_project

MIN_TIME_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z: earlier start times are treated as unset
DEFAULT_MAX_FUTURE_S = 24 * 3600

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
    if start < min_ns:
        return "with start_time unset or before 2000-01-01"
    if start > max_ns:
        return "with start_time too far in the future"
    if end < start:
        return "with end_time before start_time"
    if end > max_ns:
        return "with end_time too far in the future"
    return None


def validate_traces(
    request: ExportTraceServiceRequest,
    project_override: str | None = None,
    now_ns: int | None = None,
    max_future_s: int = DEFAULT_MAX_FUTURE_S,
) -> Verdict:
    """Remove invalid spans from `request` in place and report what was removed."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    max_ns = now_ns + max_future_s * 10**9
    verdict = Verdict()
    for rs in request.resource_spans:
        bad_project = None
        if project_override is None:
            project = resource_project(key_values(rs.resource.attributes))
            if not valid_project(project):
                bad_project = "with an invalid project name (letters, digits, '_', '.', '-'; at most 64)"
        for ss in rs.scope_spans:
            if bad_project:
                verdict.reject(bad_project, len(ss.spans))
                del ss.spans[:]
                continue
            problems = [_span_problem(s, MIN_TIME_NS, max_ns) for s in ss.spans]
            if any(problems):
                keep = [s for s, p in zip(ss.spans, problems, strict=True) if p is None]
                for p in problems:
                    if p:
                        verdict.reject(p)
                del ss.spans[:]
                ss.spans.extend(keep)
            verdict.accepted += len(ss.spans)
    return verdict


def _log_problem(rec: Any, max_ns: int) -> str | None:
    if rec.trace_id and len(rec.trace_id) != 16:
        return "with an invalid trace_id (need 16 bytes or empty)"
    if rec.span_id and len(rec.span_id) != 8:
        return "with an invalid span_id (need 8 bytes or empty)"
    if rec.time_unix_nano > max_ns or rec.observed_time_unix_nano > max_ns:
        return "with a time too far in the future"
    return None


def validate_logs(
    request: ExportLogsServiceRequest,
    project_override: str | None = None,
    now_ns: int | None = None,
    max_future_s: int = DEFAULT_MAX_FUTURE_S,
) -> Verdict:
    """Remove invalid log records from `request` in place and report what was removed."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    max_ns = now_ns + max_future_s * 10**9
    verdict = Verdict()
    for rl in request.resource_logs:
        bad_project = None
        if project_override is None:
            project = resource_project(key_values(rl.resource.attributes))
            if not valid_project(project):
                bad_project = "with an invalid project name (letters, digits, '_', '.', '-'; at most 64)"
        for sl in rl.scope_logs:
            if bad_project:
                verdict.reject(bad_project, len(sl.log_records))
                del sl.log_records[:]
                continue
            problems = [_log_problem(r, max_ns) for r in sl.log_records]
            if any(problems):
                keep = [r for r, p in zip(sl.log_records, problems, strict=True) if p is None]
                for p in problems:
                    if p:
                        verdict.reject(p)
                del sl.log_records[:]
                sl.log_records.extend(keep)
            verdict.accepted += len(sl.log_records)
    return verdict
