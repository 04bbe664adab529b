"""Property tests over the decoders: whatever arrives, the collector either refuses it with
InvalidRequest or stores every item it accepted. A request that passes validation but then
fails to decode would be an acknowledged span lost in the flusher, so that is the property.
"""

from __future__ import annotations

import base64
import copy
import time

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spanlake.collector.decode import decode_logs, decode_spans
from spanlake.collector.errors import InvalidRequest
from spanlake.collector.ingest import LOGS, TRACES, parse_request
from spanlake.collector.validate import validate_logs, validate_traces
from spanlake.storage.schema import LOGS as LOGS_TABLE
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import columns_to_table
from tests.collector.strategies import log_requests, trace_requests
from tests.factories import make_request, make_span

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def store_all(request, verdict) -> int:
    """Decode a validated request and build the Arrow tables the writer would write."""
    rows = 0
    for cols in decode_spans(request, time.time_ns()).values():
        rows += columns_to_table(SPANS, cols).num_rows
    assert rows == verdict.accepted
    return rows


@SETTINGS
@given(trace_requests())
def test_every_accepted_span_decodes_and_converts(request) -> None:
    parsed = parse_request(request.SerializeToString(), "protobuf", TRACES)
    verdict = validate_traces(parsed)
    store_all(parsed, verdict)
    assert verdict.accepted + verdict.rejected == sum(
        len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans
    )
    if verdict.rejected:
        assert verdict.message.startswith(f"rejected {verdict.rejected} of")


@SETTINGS
@given(log_requests())
def test_every_accepted_log_record_decodes_and_converts(request) -> None:
    parsed = parse_request(request.SerializeToString(), "protobuf", LOGS)
    verdict = validate_logs(parsed)
    rows = sum(columns_to_table(LOGS_TABLE, c).num_rows for c in decode_logs(parsed, time.time_ns()).values())
    assert rows == verdict.accepted


def to_otlp_json(message) -> bytes:
    """Proto3 JSON with OTLP's hex ids (what a real OTLP/JSON exporter sends)."""
    doc = json_format.MessageToDict(message)

    def fix(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    obj[k] = base64.b64decode(v).hex()
                else:
                    fix(v)
        elif isinstance(obj, list):
            for v in obj:
                fix(v)

    fix(doc)
    return orjson.dumps(doc)


@SETTINGS
@given(trace_requests())
def test_json_and_protobuf_decode_to_the_same_request(request) -> None:
    from_json = parse_request(to_otlp_json(request), "json", TRACES)
    # Compare canonical dicts: NaN attribute values would make message equality fail.
    assert json_format.MessageToDict(from_json) == json_format.MessageToDict(request)


@SETTINGS
@given(st.binary(max_size=2000))
@example(b"\x0a\x05\x0a\x03\x0a\x01")  # truncated nested message
def test_random_bytes_are_refused_or_harmless(body: bytes) -> None:
    for spec, validate, decode in ((TRACES, validate_traces, decode_spans), (LOGS, validate_logs, decode_logs)):
        try:
            parsed = parse_request(body, "protobuf", spec)
        except InvalidRequest:
            continue
        validate(parsed)
        decode(parsed, time.time_ns())


@SETTINGS
@given(st.binary(max_size=500), st.sampled_from(["json", "protobuf"]))
def test_garbage_json_is_refused_cleanly(body: bytes, encoding: str) -> None:
    try:
        parse_request(body, encoding, TRACES)
    except InvalidRequest as e:
        assert e.message


@SETTINGS
@given(st.data())
def test_mutated_valid_requests_never_break_decoding(data: st.DataObject) -> None:
    body = bytearray(make_request([make_span("a", attributes={"k": "v", "n": 3}), make_span("b")]).SerializeToString())
    for _ in range(data.draw(st.integers(min_value=1, max_value=5))):
        i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        body[i] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    try:
        parsed = parse_request(bytes(body[:cut]), "protobuf", TRACES)
    except InvalidRequest:
        return
    store_all(parsed, validate_traces(parsed))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, encoded by hand (as a hostile client could)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_request(depth: int) -> bytes:
    """A trace request whose one span has an attribute nested `depth` kvlists deep."""
    value = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        key_value = _field(1, b"k") + _field(2, value)  # KeyValue{key, value}
        value = _field(6, _field(1, key_value))  # AnyValue.kvlist_value{values}
    span = make_span("deep").SerializeToString() + _field(9, _field(1, b"nested") + _field(2, value))
    return _field(1, _field(2, _field(2, span)))  # request.resource_spans.scope_spans.spans


@pytest.mark.parametrize("depth", [5, 20, 200])
def test_deeply_nested_attribute_values(depth: int) -> None:
    try:
        parsed = parse_request(deep_request(depth), "protobuf", TRACES)
    except InvalidRequest as e:
        assert depth > 20, "a moderately nested value must be accepted"
        assert "not a valid OTLP protobuf" in e.message  # past protobuf's recursion limit
        return
    verdict = validate_traces(copy.deepcopy(parsed))
    assert store_all(parsed, verdict) == 1
