"""Hostile and malformed input against the live collector: a precise refusal each time, the
server keeps serving, and what was accepted before stays intact."""

from __future__ import annotations

import gzip
import json
import time

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanlake.collector.grpc_receiver import METRICS_SERVICE, TRACE_SERVICE
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_metrics_request, make_request, make_span, make_sum

PROTOBUF = "application/x-protobuf"


def http_error(r: httpx.Response) -> str:
    """The google.rpc.Status message of an OTLP/HTTP failure, in either encoding."""
    if r.headers["content-type"] == "application/json":
        body = r.json()
        assert set(body) <= {"code", "message", "details"}
        return body["message"]
    return status_pb2.Status.FromString(r.content).message


def grpc_export(collector: RunningCollector, body: bytes, service: str = TRACE_SERVICE) -> bytes:
    with grpc.insecure_channel(collector.grpc) as channel:
        call = channel.unary_unary(f"/{service}/Export")  # raw bytes in and out
        return call(body, timeout=10)


@pytest.fixture
def seeded(collector: RunningCollector) -> RunningCollector:
    """A collector holding 3 accepted spans, checked again after each bad request."""
    req = make_request([make_span(f"kept-{i}") for i in range(3)])
    r = httpx.post(f"{collector.http}/v1/traces", content=req.SerializeToString(), headers={"Content-Type": PROTOBUF})
    assert r.status_code == 200
    return collector


def assert_still_serving(collector: RunningCollector) -> None:
    assert httpx.get(f"{collector.http}/health").json() == {"status": "ok"}
    ok = grpc_export(collector, make_request([]).SerializeToString())
    assert ExportTraceServiceResponse.FromString(ok) == ExportTraceServiceResponse()
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM spans WHERE name LIKE 'kept-%'") == [{"n": 3}]


SPAN = make_request([make_span("x")]).SerializeToString()
POINT = make_metrics_request([make_sum("m", [(0, time.time_ns(), 1, {})])]).SerializeToString()
BAD_EXEMPLAR = {"exemplars": [{"traceId": "zz"}]}
BAD_METRIC_JSON = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"sum": {"dataPoints": [BAD_EXEMPLAR]}}]}]}]}
# (path, valid body, top-level JSON key) per signal: the same refusals on every OTLP endpoint.
SIGNALS = {"traces": ("/v1/traces", SPAN, "resourceSpans"), "metrics": ("/v1/metrics", POINT, "resourceMetrics")}


def cases(signal: str) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    """(path, name, body, headers, status, message fragment) of the bad requests for one signal."""
    path, body, top = SIGNALS[signal]
    json_type = {"Content-Type": "application/json"}
    out = [
        ("random bytes", b"\xff\xfe\xfd\x00\x01garbage", {"Content-Type": PROTOBUF}, 400, "not a valid OTLP protobuf"),
        ("truncated protobuf", body[: len(body) // 2], {"Content-Type": PROTOBUF}, 400, "not a valid OTLP protobuf"),
        ("invalid json", f'{{"{top}": ['.encode(), json_type, 400, "not valid JSON"),
        ("json not an object", b"[1, 2]", json_type, 400, "must be a JSON object"),
        ("json wrong type", f'{{"{top}": 5}}'.encode(), json_type, 400, "must be an array"),
        ("invalid utf-8 in json", b'{"a": "\xff\xfe"}', json_type, 400, "not valid JSON"),
        ("missing content type", body, {}, 415, "unsupported Content-Type 'none'"),
        ("wrong content type", body, {"Content-Type": "text/plain"}, 415, "unsupported Content-Type 'text/plain'"),
        (
            "bad gzip",
            b"\x1f\x8bnot really",
            {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "not valid gzip",
        ),
        (
            "truncated gzip",
            gzip.compress(body)[:-10],
            {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "gzip",
        ),
        ("unknown encoding", body, {"Content-Type": PROTOBUF, "Content-Encoding": "zstd"}, 415, "Content-Encoding"),
    ]
    if signal == "traces":
        spans = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}
        out.append(("json bad hex id", json.dumps(spans).encode(), json_type, 400, "is not valid hex"))
    else:
        out.append(("json bad exemplar id", json.dumps(BAD_METRIC_JSON).encode(), json_type, 400, "is not valid hex"))
    return [(path, *c) for c in out]


CASES = [c for signal in SIGNALS for c in cases(signal)]


@pytest.mark.parametrize(
    ("path", "name", "body", "headers", "status", "fragment"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_http_bad_input(
    seeded: RunningCollector, path: str, name: str, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    r = httpx.post(f"{seeded.http}{path}", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert fragment in http_error(r)
    assert_still_serving(seeded)


def test_invalid_utf8_in_protobuf_string(seeded: RunningCollector) -> None:
    body = make_request([make_span("NAME")]).SerializeToString().replace(b"NAME", b"\xff\xfe\xfd\xfc")
    r = httpx.post(f"{seeded.http}/v1/traces", content=body, headers={"Content-Type": PROTOBUF})
    assert r.status_code == 400
    assert "not a valid OTLP protobuf" in http_error(r)
    with pytest.raises(grpc.RpcError) as err:
        grpc_export(seeded, body)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    metrics = make_metrics_request([make_sum("NAME", [(0, time.time_ns(), 1, {})])]).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        grpc_export(seeded, metrics.replace(b"NAME", b"\xff\xfe\xfd\xfc"), METRICS_SERVICE)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP protobuf ExportMetricsServiceRequest" in err.value.details()
    assert_still_serving(seeded)


def test_ids_of_wrong_length_and_bad_times_are_partial_success(seeded: RunningCollector) -> None:
    now = make_span("t").start_time_unix_nano
    spans = [
        make_span("ok"),
        make_span("short trace id", trace_id=b"\x01" * 8),
        make_span("long span id", span_id=b"\x01" * 9),
        make_span("zero span id", span_id=b"\x00" * 8),
        make_span("bad parent", parent_span_id=b"\x01" * 3),
        make_span("zero time", start_ns=0),
        make_span("far future", start_ns=now + 10 * 24 * 3600 * 10**9),
        make_span("ends before start", start_ns=now),
    ]
    spans[-1].end_time_unix_nano = now - 5
    body = make_request(spans).SerializeToString()
    for answer in (
        ExportTraceServiceResponse.FromString(
            httpx.post(f"{seeded.http}/v1/traces", content=body, headers={"Content-Type": PROTOBUF}).content
        ),
        ExportTraceServiceResponse.FromString(grpc_export(seeded, body)),
    ):
        ps = answer.partial_success
        assert ps.rejected_spans == 7
        for fragment in (
            "rejected 7 of 8",
            "1 with an invalid trace_id",
            "2 with an invalid span_id",
            "1 with an invalid parent_span_id",
            "1 with start_time unset",
            "1 with start_time too far in the future",
            "1 with end_time before start_time",
        ):
            assert fragment in ps.error_message
    assert_still_serving(seeded)
    assert seeded.query("SELECT count(*) AS n FROM spans WHERE name = 'ok'") == [{"n": 1}]  # same span sent twice


def test_invalid_project_name_is_rejected(seeded: RunningCollector) -> None:
    body = make_request([make_span("p")], resource={"spanlake.project": "../../etc"}).SerializeToString()
    ps = ExportTraceServiceResponse.FromString(grpc_export(seeded, body)).partial_success
    assert ps.rejected_spans == 1 and "invalid project name" in ps.error_message
    assert_still_serving(seeded)


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/metrics"])
def test_oversized_bodies(tmp_path, path: str) -> None:
    running, stop = start_collector(
        tmp_path / "d", max_body_bytes=64 * 1024, max_message_bytes=64 * 1024, max_pending_bytes=1024 * 1024
    )
    try:
        big = make_request([make_span("big", attributes={"blob": "x" * 100_000})]).SerializeToString()
        r = httpx.post(f"{running.http}{path}", content=big, headers={"Content-Type": PROTOBUF})
        assert r.status_code == 413 and "over the 65536 byte limit" in http_error(r)
        bomb = gzip.compress(b"\x00" * (10 * 1024 * 1024))  # 10 KiB on the wire, 10 MiB inflated
        r = httpx.post(
            f"{running.http}{path}", content=bomb, headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert r.status_code == 413 and "decompressed body is over" in http_error(r)
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(running, big, METRICS_SERVICE if path == "/v1/metrics" else TRACE_SERVICE)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # gRPC's own limit; no RetryInfo: not retried
        assert httpx.get(f"{running.http}/health").status_code == 200
    finally:
        stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from([PROTOBUF, "application/json", "application/json; charset=utf-8", "", "x/y"]),
    encoding=st.sampled_from(["", "gzip", "identity"]),
    path=st.sampled_from(["/v1/traces", "/v1/logs", "/v1/metrics"]),
)
def test_http_never_answers_5xx(
    collector: RunningCollector, body: bytes, content_type: str, encoding: str, path: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    if encoding:
        headers["Content-Encoding"] = encoding
    r = httpx.post(f"{collector.http}{path}", content=body, headers=headers)
    assert r.status_code in (200, 400, 413, 415)
    if r.status_code != 200:
        assert http_error(r)
