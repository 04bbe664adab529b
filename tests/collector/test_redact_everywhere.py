"""Redaction holds for every string the collector writes (issue 14, item 4).

A secret is planted in every string and bytes field of every OTLP message type of the three
signals (resource, entity refs, scope, span, event, link, status, log record, metric, data
points of every kind, exemplars, attribute keys, attribute values of every kind, nested
arrays and maps, log bodies), as an unknown protobuf
field of every message, and in the project attributes in every shape that does not decide
the project. The requests go through every transport (HTTP protobuf, HTTP protobuf gzip,
HTTP JSON, gRPC) to a real collector, with and without an API key pinning the project; then
every file under the data directory (WAL segments byte for byte, Parquet decompressed) and
the collector's log are searched for the secret. The planting is driven by the protobuf
descriptors, so a field added to OTLP is planted (and must be redacted) without editing
this test.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanlake.collector.decode import resource_project
from spanlake.collector.redact import ID_FIELDS, PROJECT_REJECTED, deciding_project, redact_request
from spanlake.collector.redact_rules import parse_rules
from spanlake.collector.values import key_values
from spanlake.storage.keys import KeyStore, keys_path
from tests.collector.test_redact import API_KEY, CARD, EMAIL, ORDER, stored_text, wal_bytes
from tests.conftest import RunningCollector, start_collector
from tests.factories import any_value

SECRET = f"{EMAIL} {API_KEY} {CARD} {ORDER}"
FOUND = (EMAIL, API_KEY, CARD, CARD.replace(" ", ""), ORDER)
CARD_INT = int(CARD.replace(" ", ""))
RULES = """
[projects."*"]
builtin = ["email", "api_key", "card_number"]
patterns = [{ name = "order", regex = "ORD-[0-9]{6}" }]
"""
TRANSPORTS = ("http-protobuf", "http-gzip", "http-json", "grpc")
SIGNALS = ("traces", "logs", "metrics")
REQUESTS = {
    "traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, "resource_spans", "trace.v1.TraceService"),
    "logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, "resource_logs", "logs.v1.LogsService"),
    "metrics": (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
        "resource_metrics",
        "metrics.v1.MetricsService",
    ),
}
METRIC_KINDS = ("gauge", "sum", "histogram", "exponential_histogram")  # `plant` leaves a metric a summary
UNKNOWN_FIELD = 999  # no OTLP message uses it


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def unknown_field(text: str) -> bytes:
    """A length-delimited field number 999 holding `text`: unknown to every OTLP message."""
    data = text.encode()
    return _varint(UNKNOWN_FIELD << 3 | 2) + _varint(len(data)) + data


def secret(path: str) -> str:
    """The secret, tagged with where it was planted (a leak then names its field)."""
    return f"<{path}> {SECRET}"


def planted_attributes(path: str) -> list[KeyValue]:
    """One attribute of every value kind, each holding the secret (keys too)."""
    nested = AnyValue()
    nested.array_value.values.add(string_value=secret(f"{path}.array"))
    inner = nested.array_value.values.add().kvlist_value.values.add(key=secret(f"{path}.array.map.key"))
    inner.value.string_value = secret(f"{path}.array.map")
    values = {
        "string": AnyValue(string_value=secret(f"{path}.string")),
        "bytes": AnyValue(bytes_value=secret(f"{path}.bytes").encode()),
        "int": AnyValue(int_value=CARD_INT),
        "double": AnyValue(double_value=float(CARD_INT)),
        "array": nested,
    }
    kvs = [KeyValue(key=f"{kind} {secret(path + '.key')}", value=v) for kind, v in values.items()]
    kvs.append(KeyValue(key="map", value=AnyValue()))
    kvs[-1].value.kvlist_value.values.add(key=secret(f"{path}.map.key")).value.string_value = secret(f"{path}.map")
    return kvs


def plant(msg: Message, path: str) -> None:
    """Fill every string and bytes field (ids excepted) of `msg` and what it holds with the
    secret, give every repeated message field one element, and add an unknown field."""
    for fd in msg.DESCRIPTOR.fields:
        where = f"{path}.{fd.name}"
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if fd.message_type is KeyValue.DESCRIPTOR:
                getattr(msg, fd.name).extend(planted_attributes(where))
            elif fd.message_type is AnyValue.DESCRIPTOR:  # a log body
                getattr(msg, fd.name).kvlist_value.values.extend(planted_attributes(where))
            else:
                child = getattr(msg, fd.name).add() if fd.is_repeated else getattr(msg, fd.name)
                plant(child, where)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            if fd.is_repeated:
                getattr(msg, fd.name).append(secret(where))
            else:
                setattr(msg, fd.name, secret(where))
        elif fd.type == FieldDescriptor.TYPE_BYTES and fd.name not in ID_FIELDS:
            setattr(msg, fd.name, secret(where).encode())
    msg.MergeFromString(unknown_field(secret(f"{path}.unknown")))


def valid_ids_and_times(msg: Message) -> None:
    """Make what validation checks valid again: ids and times (strings are left planted)."""
    now = time.time_ns()
    for item in _messages(msg):
        names = {fd.name for fd in item.DESCRIPTOR.fields}
        if "trace_id" in names:
            item.trace_id, item.span_id = os.urandom(16), os.urandom(8)
        if "start_time_unix_nano" in names:
            item.start_time_unix_nano = now
        if "end_time_unix_nano" in names:
            item.end_time_unix_nano = now + 1000
        if "time_unix_nano" in names:
            item.time_unix_nano = now
        if "observed_time_unix_nano" in names:
            item.observed_time_unix_nano = now
        if "parent_span_id" in names:
            item.parent_span_id = b""
        if "aggregation_temporality" in names:
            item.aggregation_temporality = 1  # delta
        if "as_int" in names:
            item.as_int = 1  # a gauge or sum point (and an exemplar) needs a value


def _messages(msg: Message) -> Iterator[Message]:
    yield msg
    for fd, value in msg.ListFields():
        attributes = fd.message_type in (KeyValue.DESCRIPTOR, AnyValue.DESCRIPTOR)
        if fd.type == FieldDescriptor.TYPE_MESSAGE and not attributes:
            for child in value if fd.is_repeated else [value]:
                yield from _messages(child)


def project_attrs(shape: str) -> list[KeyValue]:
    """The project attributes of one resource. `shop`: spanlake.project decides, so only
    openinference.project.name carries the secret; `nested`: arrays and maps, which never
    decide; `card`: a project name that is itself a card number; `pinned`: plain strings,
    which a key's project overrides."""
    if shape == "shop":
        return [
            KeyValue(key="openinference.project.name", value=AnyValue(string_value=secret("oi.string"))),
            KeyValue(key="spanlake.project", value=AnyValue(string_value="shop")),
        ]
    if shape == "nested":
        array, kvlist = AnyValue(), AnyValue()
        array.array_value.values.add(string_value=secret("project.array"))
        kvlist.kvlist_value.values.add(key=secret("project.map.key")).value.string_value = secret("project.map")
        return [KeyValue(key="spanlake.project", value=array), KeyValue(key="openinference.project.name", value=kvlist)]
    if shape == "card":
        return [KeyValue(key="spanlake.project", value=AnyValue(string_value=CARD.replace(" ", "")))]
    return [
        KeyValue(key="spanlake.project", value=AnyValue(string_value=secret("pinned.project"))),
        KeyValue(key="openinference.project.name", value=AnyValue(string_value=secret("pinned.oi"))),
    ]


def planted_request(signal: str, shapes: tuple[str, ...]) -> Message:
    """A request with one fully planted resource entry per project shape (for metrics: a metric
    of each kind, since a metric holds one kind of data)."""
    request_type, _, entries_field, _ = REQUESTS[signal]
    request = request_type()
    entries = getattr(request, entries_field)
    for shape in shapes:
        entry = entries.add()
        plant(entry, f"{signal}.{shape}")
        entry.resource.attributes.extend(project_attrs(shape))
        if signal == "metrics":
            for kind in METRIC_KINDS:
                metric = entry.scope_metrics[0].metrics.add()
                plant(metric, f"{signal}.{shape}.{kind}")
                plant(getattr(metric, kind), f"{signal}.{shape}.{kind}")  # the data is now of this kind
    valid_ids_and_times(request)
    return request


def _hex_ids(doc: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON writes base64."""
    if isinstance(doc, list):
        return [_hex_ids(x) for x in doc]
    if not isinstance(doc, dict):
        return doc
    out = {}
    for k, v in doc.items():
        if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
            out[k] = base64.b64decode(v).hex()
        else:
            out[k] = _hex_ids(v)
    out["unknownField"] = secret("json.unknown")  # OTLP/JSON ignores unknown keys
    return out


def send(c: RunningCollector, transport: str, signal: str, request: Message, token: str | None) -> Message:
    """Export `request` over `transport`; the parsed export response (HTTP 200 or gRPC OK)."""
    _, response_type, _, service = REQUESTS[signal]
    if transport == "grpc":
        with grpc.insecure_channel(c.grpc) as channel:
            call = channel.unary_unary(f"/opentelemetry.proto.collector.{service}/Export")
            md = (("authorization", f"Bearer {token}"),) if token else None
            return response_type.FromString(call(request.SerializeToString(), metadata=md, timeout=30))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if transport == "http-json":
        body = json.dumps(_hex_ids(json_format.MessageToDict(request))).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = request.SerializeToString()
        headers["Content-Type"] = "application/x-protobuf"
        if transport == "http-gzip":
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    r = httpx.post(f"{c.http}/v1/{signal}", content=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    if transport == "http-json":
        return json_format.Parse(r.content, response_type())
    return response_type.FromString(r.content)


def leaks(text: str) -> list[str]:
    """The planted fields whose secret is still readable in `text` (empty: none)."""
    found = [s for s in FOUND if s in text]
    if not found:
        return []
    tags = sorted(set(re.findall(r"<([^<>]{1,200})> (?!\[)", text)))
    return [f"{s!r} found; fields not redacted: {tags}" for s in found]


@pytest.fixture
def collector_with_rules(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[RunningCollector, str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "redaction.toml").write_text(RULES)
    token = ""
    auth = request.param
    if auth == "on":
        _, token = KeyStore(keys_path(data_dir)).create("shop", "write")
    running, stop = start_collector(data_dir, auth=auth, segment_max_age_s=60.0)  # segments stay until flush()
    try:
        yield running, token
    finally:
        stop()


@pytest.mark.parametrize("collector_with_rules", ["off", "on"], indirect=True, ids=["resource-project", "key-project"])
def test_a_secret_planted_in_every_field_is_stored_nowhere(
    collector_with_rules: tuple[RunningCollector, str], caplog: pytest.LogCaptureFixture
) -> None:
    c, token = collector_with_rules
    caplog.set_level(logging.INFO)
    shapes = ("pinned",) if token else ("shop", "nested", "card")
    for transport in TRANSPORTS:
        for signal in SIGNALS:
            request = planted_request(signal, shapes)
            response = send(c, transport, signal, request, token or None)
            rejected = response.partial_success
            if token:
                assert not rejected.error_message, (transport, signal, rejected)
            else:  # the resource whose project name is a card number: refused, with the reason
                count = {"traces": "rejected_spans", "logs": "rejected_log_records"}.get(signal, "rejected_data_points")
                expected_count = 1 + len(METRIC_KINDS) if signal == "metrics" else 1
                assert getattr(rejected, count) == expected_count, (transport, signal, rejected)
                assert PROJECT_REJECTED in rejected.error_message

    wal = wal_bytes(c.data_dir).decode("utf-8", "replace")
    assert "[REDACTED:email]" in wal and "[REDACTED:order]" in wal
    assert leaks(wal) == []
    c.flush()
    assert leaks(stored_text(c.data_dir)) == []
    assert leaks(caplog.text) == []

    per_request = 1 if token else 2
    spans = c.query("SELECT project, name, attributes, resource_attributes FROM spans ORDER BY project")
    logs = c.query("SELECT project, severity_text, event_name, body FROM logs")
    assert len(spans) == len(logs) == per_request * len(TRANSPORTS)
    points = c.query("SELECT kind, metric_name, description, unit, attributes FROM metrics")
    assert len(points) == per_request * len(TRANSPORTS) * (1 + len(METRIC_KINDS))
    assert {p["kind"] for p in points} == {*METRIC_KINDS, "summary"}
    for row in points:
        for column in ("metric_name", "description", "unit"):
            assert row[column].endswith("[REDACTED:email] [REDACTED:api_key] [REDACTED:card_number] [REDACTED:order]")
        assert '"[REDACTED:card_number]"' in row["attributes"]
    expected = ["shop"] * len(TRANSPORTS) if token else ["default"] * len(TRANSPORTS) + ["shop"] * len(TRANSPORTS)
    assert [r["project"] for r in spans] == expected
    for row in spans:
        assert row["name"].endswith("> [REDACTED:email] [REDACTED:api_key] [REDACTED:card_number] [REDACTED:order]")
        assert '"[REDACTED:card_number]"' in row["attributes"]  # the int and the double
    for row in logs:
        for column in ("severity_text", "event_name"):
            assert row[column].endswith("[REDACTED:email] [REDACTED:api_key] [REDACTED:card_number] [REDACTED:order]")
    shop = next(r for r in spans if r["project"] == "shop")
    if not token:  # the attribute that decides the project is kept; with a key, it decides nothing
        assert '"spanlake.project":"shop"' in shop["resource_attributes"]


def test_error_messages_are_redacted(tmp_path: Path) -> None:
    """A 400 quoting the request (an OTLP/JSON value that does not parse) quotes it redacted."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "redaction.toml").write_text(RULES)
    c, stop = start_collector(data_dir)
    try:
        bad = [
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"droppedAttributesCount": SECRET}]}]}]},
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": SECRET}]}]}]},
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "x" * 29 + " " + API_KEY}]}]}]},  # cut short
            {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": SECRET}]}]}]},
        ]
        for doc in bad:
            r = httpx.post(f"{c.http}/v1/traces", json=doc, timeout=10)
            assert r.status_code == 400, r.text
            assert leaks(r.text) == [], r.text
            assert "[REDACTED:" in r.text and API_KEY[:9] not in r.text, r.text
    finally:
        stop()


def test_redaction_of_one_request_is_complete_without_a_collector() -> None:
    """The same planted request, redacted in place: no string or bytes field anywhere in the
    serialized result (unknown fields included) still holds a secret."""
    rules = parse_rules(RULES)
    for signal in SIGNALS:
        request = planted_request(signal, ("shop", "nested"))
        assert any(s.encode() in request.SerializeToString() for s in FOUND)
        result = redact_request(request, signal, rules, None, "default")
        assert result.changed > 0 and result.rejected == 0
        assert leaks(request.SerializeToString().decode("utf-8", "replace")) == []
        assert leaks(repr(json_format.MessageToDict(request))) == []


PROJECT_VALUES = st.one_of(
    st.sampled_from(["shop", "", "4111111111111111", "support"]),
    st.integers(-(2**63), 2**63 - 1),
    st.lists(st.sampled_from(["shop", "x"]), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from(["shop", "y"]), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["spanlake.project", "openinference.project.name", "service.name"]), PROJECT_VALUES),
        max_size=5,
    )
)
def test_the_kept_project_attribute_is_the_one_that_decides(attrs: list[tuple[str, Any]]) -> None:
    """Redaction keeps exactly the attribute the lake takes the project from (repeated keys,
    non-strings and empty strings included), so it never rewrites the project a span lands in."""
    kvs = [KeyValue(key=k, value=any_value(v)) for k, v in attrs]
    deciding = deciding_project(kvs)
    expected = resource_project(key_values(kvs), "default-project")
    assert (deciding.value.string_value if deciding is not None else "default-project") == expected


def test_ids_times_and_short_numbers_are_left_alone() -> None:
    request = ExportTraceServiceRequest()
    entry = request.resource_spans.add()
    span = entry.scope_spans.add().spans.add(trace_id=b"4111111111111111", span_id=b"a@b.com!", name="x")
    span.start_time_unix_nano, span.end_time_unix_nano = 4111111111111111111, 4111111111111111112
    span.attributes.add(key="n").value.int_value = 411111111111  # 12 digits
    span.attributes.add(key="d").value.double_value = 0.4111111111111111
    before = request.SerializeToString()
    result = redact_request(request, "traces", parse_rules(RULES), None, "default")
    assert (result.changed, result.rejected, request.SerializeToString()) == (0, 0, before)
