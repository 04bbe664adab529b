"""Check metric export requests data point by data point; drop what cannot be stored and say why (pure).

As for spans (collector/validate.py), a request with some bad data points is still accepted:
the good points are stored and the response carries OTLP `partial_success` with the count
(`rejected_data_points`) and the reasons of the others. A metric is kept while it has points;
one without a name or without data (no gauge, sum, histogram, exponential histogram or
summary) has all its points rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, DataPointFlags

from spanlake.collector.decode import resource_project
from spanlake.collector.validate import (
    BAD_PROJECT,
    DEFAULT_MAX_FUTURE_S,
    DEFAULT_MAX_PAST_S,
    MIN_TIME_NS,
    Verdict,
    max_time_ns,
    min_time_ns,
)
from spanlake.collector.values import key_values
from spanlake.storage.layout import valid_project

DATA_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
NO_RECORDED_VALUE = DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_UNSPECIFIED = AggregationTemporality.AGGREGATION_TEMPORALITY_UNSPECIFIED
MAX_COUNT = 2**63 - 1  # counts are uint64 on the wire, int64 in the lake
_TOO_MANY = "with a count over 2^63-1"

Problem = Callable[[Any], "str | None"]


def metric_points(metric: Any) -> tuple[str | None, Any]:
    """(kind, repeated data points) of a Metric; (None, ()) when it carries no data."""
    kind = metric.WhichOneof("data")
    return (kind, getattr(metric, kind).data_points) if kind else (None, ())


def point_count(request: ExportMetricsServiceRequest) -> int:
    """Data points in a request (what partial_success counts)."""
    return sum(
        len(metric_points(m)[1]) for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _times(p: Any, min_ns: int, max_ns: int) -> str | None:
    t = p.time_unix_nano
    if t < MIN_TIME_NS:
        return "with time unset or before 2000-01-01"
    if t < min_ns:
        return "with time too far in the past"
    if t > max_ns:
        return "with time too far in the future"
    if p.start_time_unix_nano > t:
        return "with start_time after time"
    return None


def _exemplars(p: Any) -> str | None:
    if "exemplars" not in p.DESCRIPTOR.fields_by_name:  # summaries have none
        return None
    for e in p.exemplars:
        if (e.trace_id and len(e.trace_id) != 16) or (e.span_id and len(e.span_id) != 8):
            return "with an exemplar of invalid trace_id or span_id (need 16 and 8 bytes, or empty)"
    return None


def _number(p: Any) -> str | None:
    which = p.WhichOneof("value")
    if which is None:
        return None if p.flags & NO_RECORDED_VALUE else "with no value (as_int or as_double unset)"
    if which == "as_double" and not _finite(p.as_double):
        return "with a non-finite value"
    return None


def _stats(p: Any) -> str | None:
    """sum, min and max of a histogram point: finite when set, min <= max."""
    for f in ("sum", "min", "max"):
        if p.HasField(f) and not _finite(getattr(p, f)):
            return f"with a non-finite {f}"
    if p.HasField("min") and p.HasField("max") and p.min > p.max:
        return "with min greater than max"
    return None


def _histogram(p: Any) -> str | None:
    bounds, counts = list(p.explicit_bounds), list(p.bucket_counts)
    if p.count > MAX_COUNT or any(c > MAX_COUNT for c in counts):
        return _TOO_MANY
    if not _finite(*bounds) or any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)):
        return "with explicit_bounds not finite and strictly increasing"
    if counts and len(counts) != len(bounds) + 1:
        return "with bucket_counts not one more than explicit_bounds"
    if counts and sum(counts) != p.count:
        return "with bucket_counts that do not add up to count"
    return _stats(p)


def _exponential(p: Any) -> str | None:
    if p.count > MAX_COUNT:
        return _TOO_MANY
    buckets = sum(p.positive.bucket_counts) + sum(p.negative.bucket_counts) + p.zero_count
    if buckets != p.count:
        return "with bucket counts and zero_count that do not add up to count"
    if not _finite(p.zero_threshold) or p.zero_threshold < 0:
        return "with a negative or non-finite zero_threshold"
    return _stats(p)


def _summary(p: Any) -> str | None:
    if p.count > MAX_COUNT:
        return _TOO_MANY
    if not _finite(p.sum):  # always present in a summary (no `optional`)
        return "with a non-finite sum"
    for q in p.quantile_values:
        if not (0.0 <= q.quantile <= 1.0) or not _finite(q.value):
            return "with a quantile outside [0, 1] or a non-finite quantile value"
    return None


_SHAPE: dict[str, Problem] = {
    "gauge": _number,
    "sum": _number,
    "histogram": _histogram,
    "exponential_histogram": _exponential,
    "summary": _summary,
}


def _metric_problem(metric: Any, kind: str | None) -> str | None:
    """A problem of the metric itself, which rejects all its points."""
    if not metric.name:
        return "in a metric without a name"
    temporal = kind in ("sum", "histogram", "exponential_histogram")
    if temporal and getattr(metric, kind).aggregation_temporality == _UNSPECIFIED:
        return "in a metric whose aggregation_temporality is unspecified"
    return None


def validate_metrics(
    request: ExportMetricsServiceRequest,
    project_override: str | None = None,
    now_ns: int | None = None,
    max_future_s: int = DEFAULT_MAX_FUTURE_S,
    max_past_s: int = DEFAULT_MAX_PAST_S,
) -> Verdict:
    """Remove invalid data points from `request` in place and report what was removed."""
    min_ns, max_ns = min_time_ns(now_ns, max_past_s), max_time_ns(now_ns, max_future_s)
    verdict = Verdict()
    for rm in request.resource_metrics:
        bad_project = None
        if project_override is None and not valid_project(resource_project(key_values(rm.resource.attributes))):
            bad_project = BAD_PROJECT
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind, points = metric_points(metric)
                whole = bad_project or (_metric_problem(metric, kind) if kind else None)
                if whole:
                    if points:
                        verdict.reject(whole, len(points))
                        del points[:]
                    continue
                if kind is None:
                    continue
                shape = _SHAPE[kind]
                problems = [_times(p, min_ns, max_ns) or _exemplars(p) or shape(p) for p in points]
                if any(problems):
                    keep = [p for p, why in zip(points, problems, strict=True) if why is None]
                    for why in problems:
                        if why:
                            verdict.reject(why)
                    del points[:]
                    points.extend(keep)
                verdict.accepted += len(points)
    return verdict
