"""Hypothesis strategies for OTLP requests, hostile values included."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

NOW = time.time_ns()
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
KEYS = st.one_of(
    st.sampled_from(
        [
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.request.model",
            "gen_ai.operation.name",
            "gen_ai.response.finish_reasons",
            "gen_ai.response.time_to_first_chunk",
            "openinference.span.kind",
            "llm.token_count.prompt",
            "spanlake.task.name",
            "spanlake.task.outcome",
            "spanlake.validation.passed",
            "llm.cost.total",
            "gen_ai.input.messages",
            "session.id",
            "error.type",
        ]
    ),
    st.text(max_size=30),
)

scalar_values = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), st.text(max_size=50)),
    st.builds(lambda b: AnyValue(bool_value=b), st.booleans()),
    st.builds(lambda i: AnyValue(int_value=i), INT64),
    st.builds(lambda d: AnyValue(double_value=d), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=20)),
    st.just(AnyValue()),
)


def _extend(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    return st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(children, max_size=3)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
            st.lists(st.tuples(KEYS, children), max_size=3),
        ),
    )


any_values = st.recursive(scalar_values, _extend, max_leaves=12)
key_values = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), KEYS, any_values), max_size=8)
trace_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))
timestamps = st.one_of(st.integers(min_value=NOW - 10**12, max_value=NOW + 10**12), UINT64, st.just(0))


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(timestamps)
    span = Span(
        trace_id=draw(trace_ids),
        span_id=draw(span_ids),
        parent_span_id=draw(st.one_of(st.just(b""), span_ids)),
        name=draw(st.text(max_size=30)),
        kind=draw(st.integers(min_value=-3, max_value=9)),
        start_time_unix_nano=start,
        end_time_unix_nano=draw(
            st.one_of(st.just(start), timestamps, st.integers(min_value=start, max_value=2**64 - 1))
        ),
        attributes=draw(key_values),
        trace_state=draw(st.text(max_size=10)),
        flags=draw(st.integers(min_value=0, max_value=2**32 - 1)),
        dropped_attributes_count=draw(st.integers(min_value=0, max_value=2**32 - 1)),
    )
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        ev = span.events.add()
        ev.time_unix_nano = draw(timestamps)
        ev.name = draw(st.sampled_from(["exception", "First Token Stream Event", "x"]))
        ev.attributes.extend(draw(key_values))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        link = span.links.add()
        link.trace_id = draw(trace_ids)
        link.span_id = draw(span_ids)
        link.attributes.extend(draw(key_values))
    span.status.code = draw(st.integers(min_value=-2, max_value=5))
    span.status.message = draw(st.text(max_size=20))
    return span


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(draw(key_values))
        if draw(st.booleans()):
            rs.resource.attributes.add(key="spanlake.project", value=AnyValue(string_value=draw(st.text(max_size=70))))
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=10))
            ss.spans.extend(draw(st.lists(spans(), max_size=4)))
    return req


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(draw(key_values))
    sl = rl.scope_logs.add()
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        rec = LogRecord(
            time_unix_nano=draw(timestamps),
            observed_time_unix_nano=draw(timestamps),
            severity_number=draw(st.integers(min_value=0, max_value=24)),
            trace_id=draw(trace_ids),
            span_id=draw(span_ids),
            attributes=draw(key_values),
            event_name=draw(st.text(max_size=20)),
        )
        if draw(st.booleans()):
            rec.body.CopyFrom(draw(any_values))
        sl.log_records.append(rec)
    return req


floats = st.floats(allow_nan=True, allow_infinity=True)
counts = st.one_of(st.integers(min_value=0, max_value=20), UINT64)


@st.composite
def _point_common(draw: st.DrawFn, point: Any) -> None:
    point.time_unix_nano = draw(timestamps)
    point.start_time_unix_nano = draw(st.one_of(st.just(0), timestamps))
    point.attributes.extend(draw(key_values))
    point.flags = draw(st.integers(min_value=0, max_value=3))
    if hasattr(point, "exemplars"):
        for _ in range(draw(st.integers(min_value=0, max_value=1))):
            ex = point.exemplars.add(time_unix_nano=draw(timestamps), trace_id=draw(trace_ids), span_id=draw(span_ids))
            ex.filtered_attributes.extend(draw(key_values))
            if draw(st.booleans()):
                ex.as_double = draw(floats)


@st.composite
def metrics(draw: st.DrawFn) -> Metric:
    """A metric of any kind with 0-3 points: values, counts and buckets consistent or not."""
    m = Metric(name=draw(st.one_of(st.just("gen_ai.client.token.usage"), st.text(max_size=15))))
    m.unit = draw(st.text(max_size=5))
    kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary", None]))
    if kind is None:
        return m
    data = getattr(m, kind)
    if kind != "gauge" and kind != "summary":
        data.aggregation_temporality = draw(st.integers(min_value=0, max_value=3))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        p = data.data_points.add()
        draw(_point_common(p))
        if kind in ("gauge", "sum"):
            choice = draw(st.sampled_from(["int", "double", "none"]))
            if choice == "int":
                p.as_int = draw(INT64)
            elif choice == "double":
                p.as_double = draw(floats)
            continue
        buckets = draw(st.lists(st.integers(min_value=0, max_value=5), max_size=4))
        p.count = draw(st.one_of(st.just(sum(buckets)), counts))
        if draw(st.booleans()) or kind == "summary":
            p.sum = draw(floats)
        if kind == "summary":
            for _ in range(draw(st.integers(min_value=0, max_value=2))):
                p.quantile_values.add(quantile=draw(floats), value=draw(floats))
            continue
        if draw(st.booleans()):
            p.min, p.max = draw(floats), draw(floats)
        if kind == "histogram":
            p.bucket_counts.extend(buckets)
            p.explicit_bounds.extend(draw(st.lists(floats, min_size=max(0, len(buckets) - 1), max_size=len(buckets))))
        else:
            p.scale = draw(st.integers(min_value=-10, max_value=20))
            p.positive.offset = draw(st.integers(min_value=-(2**31), max_value=2**31 - 1))
            p.positive.bucket_counts.extend(buckets)
            p.zero_count = draw(st.integers(min_value=0, max_value=2))
            p.zero_threshold = draw(floats)
    return m


@st.composite
def metric_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend(draw(key_values))
        if draw(st.booleans()):
            rm.resource.attributes.add(key="spanlake.project", value=AnyValue(string_value=draw(st.text(max_size=70))))
        sm = rm.scope_metrics.add()
        sm.scope.name = draw(st.text(max_size=10))
        sm.metrics.extend(draw(st.lists(metrics(), max_size=3)))
    return req
