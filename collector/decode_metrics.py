"""Decode OTLP metric export requests into `metrics` rows, one per data point (pure).

Pure Python (metrics are low volume; the spans' C fast path is not involved). A point's
`point_id` hashes the point as sent together with its metric's identity (name, kind,
temporality, unit), its scope and its resource, so a re-sent request yields the same ids
and the `metrics` view counts each point once.
"""

from __future__ import annotations

import hashlib
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from spanlake.collector.decode import Batch, partition_of, resource_project
from spanlake.collector.validate_metrics import metric_points
from spanlake.collector.values import key_values, to_json, to_json_or_none
from spanlake.sdk import attributes as A
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.schema import METRICS

TEMPORALITY = {
    AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA: "delta",
    AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE: "cumulative",
}


def _opt(point: Any, name: str) -> float | None:
    """An optional field's value, None when unset (a summary's `sum` is always set)."""
    if point.DESCRIPTOR.fields_by_name[name].has_presence and not point.HasField(name):
        return None
    return getattr(point, name)


def _exemplars(point: Any) -> str | None:
    out = []
    for e in point.exemplars:
        which = e.WhichOneof("value")
        out.append(
            {
                "time_unix_nano": e.time_unix_nano,
                "value": getattr(e, which) if which else None,
                "trace_id": e.trace_id.hex() or None,
                "span_id": e.span_id.hex() or None,
                "attributes": key_values(e.filtered_attributes),
            }
        )
    return to_json_or_none(out)


def _values(kind: str, p: Any) -> dict[str, Any]:
    """The kind-specific columns of one point."""
    if kind in ("gauge", "sum"):
        which = p.WhichOneof("value")
        return {"value": float(getattr(p, which)) if which else None}
    out: dict[str, Any] = {"count": p.count, "sum": _opt(p, "sum")}
    if kind == "summary":
        out["quantiles"] = to_json([{"quantile": q.quantile, "value": q.value} for q in p.quantile_values])
        return out
    out |= {"min": _opt(p, "min"), "max": _opt(p, "max")}
    if kind == "histogram":
        out |= {"bucket_counts": list(p.bucket_counts), "explicit_bounds": list(p.explicit_bounds)}
    else:
        side = lambda b: {"offset": b.offset, "bucket_counts": list(b.bucket_counts)}  # noqa: E731
        out["exponential"] = to_json(
            {
                "scale": p.scale,
                "zero_count": p.zero_count,
                "zero_threshold": p.zero_threshold,
                "positive": side(p.positive),
                "negative": side(p.negative),
            }
        )
    return out


def decode_metrics(
    request: ExportMetricsServiceRequest | bytes,
    ingested_at_ns: int,
    project: str | None = None,
    default_project: str = DEFAULT_PROJECT,
) -> Batch:
    """Turn a metrics export request (message or serialized bytes) into `metrics` columns by partition.

    `project` (set by an API key) overrides the resource's own project attribute."""
    if isinstance(request, bytes):
        request = ExportMetricsServiceRequest.FromString(request)
    out: Batch = {}
    ingested_us = ingested_at_ns // 1000
    for rm in request.resource_metrics:
        resource_attrs = key_values(rm.resource.attributes)
        point_project = project or resource_project(resource_attrs, default_project)
        resource_json = to_json(resource_attrs)
        service = resource_attrs.get(A.SERVICE_NAME)
        for sm in rm.scope_metrics:
            scope = (sm.scope.name or None, sm.scope.version or None, to_json_or_none(key_values(sm.scope.attributes)))
            for metric in sm.metrics:
                kind, points = metric_points(metric)
                if kind is None:
                    continue
                data = getattr(metric, kind)
                temporality = TEMPORALITY.get(getattr(data, "aggregation_temporality", 0))
                monotonic = data.is_monotonic if kind == "sum" else None
                identity = "\x00".join((resource_json, *(x or "" for x in scope[:2]), metric.name, kind))
                identity += f"\x00{temporality}\x00{metric.unit}"
                common = {
                    "metric_name": metric.name,
                    "description": metric.description or None,
                    "unit": metric.unit or None,
                    "kind": kind,
                    "temporality": temporality,
                    "monotonic": monotonic,
                    "service_name": service if isinstance(service, str) else None,
                    "scope_name": scope[0],
                    "scope_version": scope[1],
                    "scope_attributes": scope[2],
                    "resource_attributes": resource_json,
                    "metric_metadata": to_json_or_none(key_values(metric.metadata)),
                    "ingested_at": ingested_us,
                }
                for p in points:
                    digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16)
                    digest.update(p.SerializeToString(deterministic=True))
                    start = p.start_time_unix_nano
                    row = {
                        **common,
                        "point_id": digest.hexdigest(),
                        "start_time": start // 1000 if start else None,
                        "time": p.time_unix_nano // 1000,
                        "start_time_unix_nano": start,
                        "time_unix_nano": p.time_unix_nano,
                        "flags": p.flags or None,
                        "exemplars": _exemplars(p) if kind != "summary" else None,
                        "attributes": to_json(key_values(p.attributes)),
                        **_values(kind, p),
                    }
                    key = partition_of(point_project, p.time_unix_nano)
                    cols = out.get(key)
                    if cols is None:
                        cols = out[key] = {n: [] for n in METRICS.names}
                    for name, values in cols.items():
                        values.append(row.get(name))
    return out
