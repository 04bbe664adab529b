"""OTLP receivers over loopback with the real opentelemetry-sdk exporters and raw requests."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.conftest import RunningCollector
from tests.factories import make_request, make_span


def exporter_for(collector: RunningCollector, transport: str):
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=collector.grpc, insecure=True)
    return HttpSpanExporter(endpoint=f"{collector.http}/v1/traces")


def test_real_exporter_spans_are_stored_and_normalized(collector: RunningCollector, transport: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "spanlake.project": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter_for(collector, transport)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("answer_ticket") as root:
        root.set_attribute("spanlake.task.name", "answer_ticket")
        with tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.provider.name", "openai")
            llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            llm.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
            llm.set_attribute("gen_ai.usage.input_tokens", 120)
            llm.set_attribute("gen_ai.usage.output_tokens", 30)
            llm.set_attribute("gen_ai.response.finish_reasons", ["stop"])
            llm.set_attribute("gen_ai.input.messages", '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]')
            llm.add_event("retry", {"attempt": 2})
        with tracer.start_as_current_span("lookup") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_status(Status(StatusCode.ERROR, "order not found"))
    provider.shutdown()
    collector.flush()

    rows = {r["name"]: r for r in collector.query("SELECT * FROM spans ORDER BY start_time")}
    assert set(rows) == {"answer_ticket", "chat gpt-4o-mini", "lookup"}
    llm = rows["chat gpt-4o-mini"]
    assert llm["project"] == "shop"
    assert llm["service_name"] == "checkout"
    assert llm["category"] == "llm"
    assert llm["provider"] == "openai"
    assert (llm["request_model"], llm["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (120, 30, 150)
    assert llm["finish_reasons"] == ["stop"]
    assert llm["kind"] == "INTERNAL"
    assert "gen_ai.input.messages" in json.loads(llm["content"])
    assert "gen_ai.input.messages" not in json.loads(llm["attributes"])
    assert json.loads(llm["events"])[0]["attributes"] == {"attempt": 2}
    assert llm["parent_span_id"] == rows["answer_ticket"]["span_id"]
    assert rows["answer_ticket"]["category"] == "task" and rows["answer_ticket"]["is_root"]
    assert rows["lookup"]["status_code"] == "ERROR"
    assert rows["lookup"]["status_message"] == "order not found"
    assert rows["lookup"]["tool_name"] == "lookup_order"

    (trace,) = collector.query("SELECT * FROM traces")
    assert trace["root_name"] == "answer_ticket"
    assert trace["span_count"] == 3
    assert trace["input_tokens"] == 120 and trace["total_tokens"] == 150
    assert trace["has_error"] and trace["is_complete"]


def post(collector: RunningCollector, path: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{collector.http}{path}", content=body, headers={"Content-Type": content_type, **headers})


def test_raw_otlp_json_with_hex_ids_and_string_int64(collector: RunningCollector) -> None:
    start = time.time_ns()
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "raw"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "chat gpt-4",
                                "kind": 3,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": start + 2_000_000,
                                "attributes": [
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}},
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                ],
                                "status": {"code": 2, "message": "boom"},
                                "unknownField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    r = post(collector, "/v1/traces", json.dumps(doc).encode(), "application/json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {}
    collector.flush()
    (row,) = collector.query("SELECT * FROM spans")
    assert row["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert row["span_id"] == "eee19b7ec3c1b174"
    assert row["kind"] == "CLIENT"
    assert row["duration_ms"] == pytest.approx(2.0)
    assert (row["input_tokens"], row["output_tokens"]) == (100, 7)
    assert (row["status_code"], row["status_message"]) == ("ERROR", "boom")


def test_gzip_protobuf_request(collector: RunningCollector) -> None:
    req = make_request([make_span("a"), make_span("b")])
    r = post(
        collector,
        "/v1/traces",
        gzip.compress(req.SerializeToString()),
        "application/x-protobuf",
        **{"Content-Encoding": "gzip"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(r.content).HasField("partial_success")
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM spans") == [{"n": 2}]


def test_partial_success_names_rejected_spans(collector: RunningCollector) -> None:
    good = make_span("good")
    bad_id = make_span("bad", trace_id=b"\x01" * 3)
    zero_time = make_span("zero", start_ns=0)
    req = make_request([good, bad_id, zero_time])
    r = post(collector, "/v1/traces", req.SerializeToString(), "application/x-protobuf")
    assert r.status_code == 200
    ps = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert ps.rejected_spans == 2
    assert "invalid trace_id" in ps.error_message and "start_time unset" in ps.error_message
    r = post(collector, "/v1/traces", req.SerializeToString().replace(b"", b""), "application/json")
    assert r.status_code == 400  # protobuf bytes sent as JSON
    collector.flush()
    assert [r["name"] for r in collector.query("SELECT name FROM spans")] == ["good"]


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status", "fragment"),
    [
        (b"\xff\x00garbage", "application/x-protobuf", {}, 400, "not a valid OTLP protobuf"),
        (b"{not json", "application/json", {}, 400, "not valid JSON"),
        (b"{}", "text/plain", {}, 415, "unsupported Content-Type"),
        (b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
        (b"{}", "application/json", {"Content-Encoding": "br"}, 415, "unsupported Content-Encoding"),
    ],
)
def test_bad_http_input_gets_a_precise_status(
    collector: RunningCollector, body: bytes, content_type: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    r = post(collector, "/v1/traces", body, content_type, **headers)
    assert r.status_code == status
    if r.headers["content-type"] == "application/json":
        message = r.json()["message"]
    else:
        message = status_pb2.Status.FromString(r.content).message
    assert fragment in message
    assert httpx.get(f"{collector.http}/health").status_code == 200


def test_duplicate_delivery_counts_once(collector: RunningCollector) -> None:
    req = make_request(
        [make_span("once", attributes={"gen_ai.usage.input_tokens": 5, "gen_ai.operation.name": "chat"})]
    )
    for _ in range(3):
        assert post(collector, "/v1/traces", req.SerializeToString(), "application/x-protobuf").status_code == 200
        collector.flush()  # each delivery in its own file, as a retry would be
    assert collector.query("SELECT count(*) AS n FROM spans_raw") == [{"n": 3}]
    assert collector.query("SELECT count(*) AS n, sum(input_tokens) AS t FROM spans") == [{"n": 1, "t": 5}]
    (trace,) = collector.query("SELECT span_count, input_tokens FROM traces")
    assert trace == {"span_count": 1, "input_tokens": 5}
