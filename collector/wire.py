"""OTLP trace requests as plain Python structures, for the decoder.

`traces_from_bytes` uses the optional C accelerator (collector/_otlp.c) when it was built,
and this module's pure-Python reference otherwise, or whenever the accelerator declines an
input (it refuses non-canonical encodings rather than emulate protobuf's merge rules).
Both produce exactly the same structures; tests compare them on generated requests.

    [(resource_attrs, [(scope_name, scope_version, scope_attrs, [SpanTuple, ...]), ...]), ...]

SpanTuple fields are named by SPAN_FIELDS; events are (time_unix_nano, name, attributes,
dropped_attributes_count) and links (trace_id, span_id, trace_state, attributes,
dropped_attributes_count, flags).
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector.values import key_values

log = logging.getLogger(__name__)

try:
    from spanlake.collector import _otlp  # type: ignore[attr-defined]
except ImportError:  # not built (no compiler): the reference below does the work
    _otlp = None

ACCELERATED = _otlp is not None

SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "trace_state",
    "parent_span_id",
    "flags",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "attributes",
    "dropped_attributes_count",
    "events",
    "dropped_events_count",
    "links",
    "dropped_links_count",
    "status_message",
    "status_code",
)

Traces = list[tuple[dict[str, Any], list[tuple[str, str, dict[str, Any], list[tuple[Any, ...]]]]]]


def _span(s: Any) -> tuple[Any, ...]:
    return (
        s.trace_id,
        s.span_id,
        s.trace_state,
        s.parent_span_id,
        s.flags,
        s.name,
        s.kind,
        s.start_time_unix_nano,
        s.end_time_unix_nano,
        key_values(s.attributes),
        s.dropped_attributes_count,
        [(e.time_unix_nano, e.name, key_values(e.attributes), e.dropped_attributes_count) for e in s.events],
        s.dropped_events_count,
        [
            (k.trace_id, k.span_id, k.trace_state, key_values(k.attributes), k.dropped_attributes_count, k.flags)
            for k in s.links
        ],
        s.dropped_links_count,
        s.status.message,
        s.status.code,
    )


def traces_from_message(request: ExportTraceServiceRequest) -> Traces:
    """The reference conversion, from a parsed protobuf message."""
    return [
        (
            key_values(rs.resource.attributes),
            [
                (ss.scope.name, ss.scope.version, key_values(ss.scope.attributes), [_span(s) for s in ss.spans])
                for ss in rs.scope_spans
            ],
        )
        for rs in request.resource_spans
    ]


def traces_from_bytes(body: bytes) -> Traces:
    """Decode serialized ExportTraceServiceRequest bytes (raises protobuf's DecodeError if invalid)."""
    if _otlp is not None:
        try:
            return _otlp.decode_traces(body)
        except (_otlp.DecodeError, UnicodeDecodeError):
            pass  # the reference decides: it accepts what protobuf accepts, or raises
    return traces_from_message(ExportTraceServiceRequest.FromString(body))
