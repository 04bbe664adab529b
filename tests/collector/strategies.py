"""Hypothesis strategies for OTLP requests, hostile values included."""

from __future__ import annotations

import time

from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
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
