"""The C accelerator and the pure-Python reference decode requests to identical structures."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spanlake.collector import wire
from tests.collector.strategies import trace_requests
from tests.factories import make_request, make_span

pytestmark = pytest.mark.skipif(not wire.ACCELERATED, reason="C accelerator not built (no compiler)")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(body: bytes) -> None:
    """Both paths accept with identical output, or both refuse."""
    try:
        ref = wire.traces_from_message(wire.ExportTraceServiceRequest.FromString(body))
    except DecodeError:
        ref = None
    try:
        fast = wire._otlp.decode_traces(body)
    except (wire._otlp.DecodeError, UnicodeDecodeError):
        fast = None  # declined: traces_from_bytes falls back to the reference
    if fast is not None:
        assert ref is not None, "accelerator accepted what protobuf refuses"
        assert repr(fast) == repr(ref)  # repr: NaN-safe, type-exact comparison
    assert repr(wire.traces_from_bytes(body)) == repr(ref) if ref is not None else True


@SETTINGS
@given(trace_requests())
def test_generated_requests_decode_identically(request) -> None:
    body = request.SerializeToString()
    assert repr(wire._otlp.decode_traces(body)) == repr(wire.traces_from_message(request))


@SETTINGS
@given(st.data())
@example(st.just(None))  # placeholder replaced below
def test_mutated_requests_agree_or_are_declined(data) -> None:
    body = bytearray(
        make_request(
            [make_span("a", attributes={"k": "v", "n": 3, "l": [1.5, "x"]}), make_span("b")]
        ).SerializeToString()
    )
    if data is not None and hasattr(data, "draw"):
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
            body[i] = data.draw(st.integers(min_value=0, max_value=255))
        body = body[: data.draw(st.integers(min_value=0, max_value=len(body)))]
    assert_same(bytes(body))


@SETTINGS
@given(st.binary(max_size=400))
@example(b"\x80\x80\x80\x80\x10\x00")  # field number 2**29: past protobuf's maximum
def test_random_bytes_agree_or_are_declined(body: bytes) -> None:
    assert_same(body)


def test_non_canonical_merge_is_left_to_the_reference() -> None:
    # Two `resource` fields in one ResourceSpans: protobuf merges them; the accelerator declines.
    req = make_request([make_span("m")], resource={"a": 1})
    rs = req.resource_spans[0]
    extra = type(rs.resource)()
    extra.attributes.add(key="b").value.int_value = 2
    body = req.SerializeToString()
    resource_spans = (
        rs.SerializeToString() + b"\x0a" + bytes([len(extra.SerializeToString())]) + extra.SerializeToString()
    )
    doubled = b"\x0a" + _varint(len(resource_spans)) + resource_spans
    assert body != doubled
    with pytest.raises(wire._otlp.DecodeError):
        wire._otlp.decode_traces(doubled)
    ((resource_attrs, _),) = wire.traces_from_bytes(doubled)
    assert resource_attrs == {"a": 1, "b": 2}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_string_cache_churn_and_collisions_decode_identically() -> None:
    """Keys and short values go through a bounded cache of strings: thousands of distinct ones
    (colliding slots), repeats, non-ASCII and over-long ones all still decode exactly."""
    spans = []
    for i in range(300):
        attrs = {f"k{i * 37 + j}": f"v{(i * 37 + j) % 500}" for j in range(37)}
        attrs |= {"same.key": "same value", "é.key": "é", "long." + "x" * 60: "y" * 49, "": "", "n": i}
        spans.append(make_span(f"s{i}", attributes=attrs))
    body = make_request(spans).SerializeToString()
    for _ in range(2):  # the second pass hits the cache filled by the first
        assert_same(body)
        assert repr(wire._otlp.decode_traces(body)) == repr(
            wire.traces_from_message(wire.ExportTraceServiceRequest.FromString(body))
        )
