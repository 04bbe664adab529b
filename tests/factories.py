"""Builders for OTLP requests and spans used across tests."""

from __future__ import annotations

import os
import time
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=kvs(v)))
    raise TypeError(type(v))


def kvs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in d.items()]


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def make_span(
    name: str = "span",
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent_span_id: bytes = b"",
    start_ns: int | None = None,
    duration_ns: int = 1_000_000,
    attributes: dict[str, Any] | None = None,
    kind: int = Span.SPAN_KIND_INTERNAL,
    status_code: int = 0,
    **fields: Any,
) -> Span:
    start = time.time_ns() if start_ns is None else start_ns
    span = Span(
        trace_id=trace_id or new_trace_id(),
        span_id=span_id or new_span_id(),
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=kvs(attributes or {}),
        **fields,
    )
    span.status.code = status_code
    return span


def make_request(
    spans: list[Span], resource: dict[str, Any] | None = None, scope: str = "tests"
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs(resource if resource is not None else {"service.name": "test-service"}))
    ss = rs.scope_spans.add()
    ss.scope.name = scope
    ss.spans.extend(spans)
    return req


def make_logs_request(records: list[Any], resource: dict[str, Any] | None = None) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(kvs(resource if resource is not None else {"service.name": "test-service"}))
    sl = rl.scope_logs.add()
    sl.scope.name = "tests"
    sl.log_records.extend(records)
    return req


def make_sum(
    name: str,
    points: list[tuple[int, int, float | int, dict[str, Any]]],
    cumulative: bool = True,
    monotonic: bool = True,
    unit: str = "",
) -> Metric:
    """A Sum metric; each point is (start_ns, time_ns, value, attributes), ints sent as as_int."""
    m = Metric(name=name, unit=unit)
    m.sum.aggregation_temporality = 2 if cumulative else 1
    m.sum.is_monotonic = monotonic
    for start, t, value, attrs in points:
        p = m.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=t, attributes=kvs(attrs))
        if isinstance(value, int):
            p.as_int = value
        else:
            p.as_double = value
    return m


def make_metrics_request(
    metrics: list[Metric], resource: dict[str, Any] | None = None, scope: str = "tests"
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(kvs(resource if resource is not None else {"service.name": "test-service"}))
    sm = rm.scope_metrics.add()
    sm.scope.name = scope
    sm.metrics.extend(metrics)
    return req
