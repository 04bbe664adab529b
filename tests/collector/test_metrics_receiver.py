"""OTLP metrics in: the real OTel SDK MeterProvider with the OTLP metric exporters (gRPC and HTTP)
against a real collector, raw OTLP/JSON, partial success for bad data points, re-sent points,
redaction and authentication."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from spanlake.collector.grpc_receiver import METRICS_SERVICE
from spanlake.storage.keys import KeyStore, keys_path
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_metrics_request, make_sum

PROTOBUF = "application/x-protobuf"
HOUR_NS = 3600 * 10**9


def exporter_for(collector: RunningCollector, transport: str) -> Any:
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=collector.grpc, insecure=True)
    return HttpMetricExporter(endpoint=f"{collector.http}/v1/metrics")


def post(collector: RunningCollector, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{collector.http}/v1/metrics", content=body, headers=headers or {"Content-Type": PROTOBUF}, timeout=10
    )


def grpc_export(collector: RunningCollector, body: bytes, token: str | None = None) -> bytes:
    md = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(collector.grpc) as channel:
        return channel.unary_unary(f"/{METRICS_SERVICE}/Export")(body, metadata=md, timeout=10)


def points(collector: RunningCollector, name: str) -> list[dict[str, Any]]:
    return collector.query("SELECT * FROM metrics WHERE metric_name = ? ORDER BY time_unix_nano", [name])


def test_sdk_metrics_of_every_kind_are_stored(collector: RunningCollector, transport: str) -> None:
    resource = Resource.create({"service.name": "checkout", "spanlake.project": "shop"})
    reader = PeriodicExportingMetricReader(exporter_for(collector, transport), export_interval_millis=3_600_000)
    views = [View(instrument_name="app.size", aggregation=ExponentialBucketHistogramAggregation())]
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
    meter = provider.get_meter("tests.meter", "1.2")

    def temperature(_: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "lab"})]

    requests = meter.create_counter("app.requests", unit="{request}", description="Requests served")
    queue = meter.create_up_down_counter("app.queue")
    latency = meter.create_histogram("app.latency", unit="s", explicit_bucket_boundaries_advisory=[1.0, 5.0])
    size = meter.create_histogram("app.size", unit="By")
    meter.create_observable_gauge("app.temperature", callbacks=[temperature])
    requests.add(5, {"route": "/a"})
    requests.add(2, {"route": "/b"})
    queue.add(4)
    queue.add(-1)
    for v in (0.5, 2.0, 7.0):
        latency.record(v)
    for v in (1, 2, 4):
        size.record(v)
    assert provider.force_flush()  # export 1
    requests.add(3, {"route": "/a"})
    assert provider.force_flush()  # export 2: /a's running total is 8
    assert provider.force_flush()  # export 3: nothing new, cumulative totals sent again
    provider.shutdown()
    collector.flush()

    a = [p for p in points(collector, "app.requests") if json.loads(p["attributes"]) == {"route": "/a"}]
    assert [p["value"] for p in a] == [5.0, 8.0, 8.0, 8.0]  # 3 flushes, then shutdown's final export
    assert len({p["start_time_unix_nano"] for p in a}) == 1  # one series: same start time throughout
    first = a[0]
    assert (first["kind"], first["temporality"], first["monotonic"]) == ("sum", "cumulative", True)
    assert (first["unit"], first["description"]) == ("{request}", "Requests served")
    assert (first["project"], first["service_name"]) == ("shop", "checkout")
    assert (first["scope_name"], first["scope_version"]) == ("tests.meter", "1.2")
    assert json.loads(first["resource_attributes"])["service.name"] == "checkout"
    assert first["start_time"] is not None and first["start_time"] <= first["time"]

    (q, *_) = points(collector, "app.queue")
    assert (q["value"], q["monotonic"], q["temporality"]) == (3.0, False, "cumulative")

    (h, *_) = points(collector, "app.latency")
    assert (h["kind"], h["count"], h["sum"], h["min"], h["max"]) == ("histogram", 3, 9.5, 0.5, 7.0)
    assert (h["bucket_counts"], h["explicit_bounds"]) == ([1, 1, 1], [1.0, 5.0])  # (-inf,1] (1,5] (5,inf)
    assert h["value"] is None

    (e, *_) = points(collector, "app.size")
    exp = json.loads(e["exponential"])
    assert (e["kind"], e["count"], e["sum"], e["min"], e["max"]) == ("exponential_histogram", 3, 7.0, 1.0, 4.0)
    assert exp["zero_count"] == 0 and sum(exp["positive"]["bucket_counts"]) == 3

    g = points(collector, "app.temperature")
    assert [p["value"] for p in g] == [21.5] * 4
    assert (g[0]["kind"], g[0]["temporality"], g[0]["monotonic"]) == ("gauge", None, None)
    assert json.loads(g[0]["attributes"]) == {"room": "lab"}


def test_a_resent_request_counts_once(collector: RunningCollector) -> None:
    now = time.time_ns()
    req = make_metrics_request([make_sum("gen_ai.client.token.usage", [(now - 10**9, now, 42, {"k": "v"})])])
    for _ in range(2):
        assert post(collector, req.SerializeToString()).status_code == 200
    grpc_export(collector, req.SerializeToString())
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM metrics_raw") == [{"n": 3}]
    assert collector.query("SELECT count(*) AS n, sum(value) AS v FROM metrics") == [{"n": 1, "v": 42.0}]
    # The same point under another resource is another point.
    other = make_metrics_request(list(req.resource_metrics[0].scope_metrics[0].metrics), resource={"host": "b"})
    assert post(collector, other.SerializeToString()).status_code == 200
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM metrics") == [{"n": 2}]


def test_otlp_json_gzip_with_exemplars(collector: RunningCollector) -> None:
    now = time.time_ns()
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    exemplar = {"timeUnixNano": str(now), "asDouble": 1.5, "traceId": trace_id, "spanId": span_id}
    point = {
        "startTimeUnixNano": str(now - 10**9),
        "timeUnixNano": str(now),
        "count": "2",
        "sum": 3.5,
        "bucketCounts": ["1", "1"],
        "explicitBounds": [2.0],
        "exemplars": [exemplar],
    }
    metric = {"name": "gen_ai.client.operation.duration", "unit": "s"}
    metric["histogram"] = {"aggregationTemporality": 1, "dataPoints": [point]}
    resource = {"attributes": [{"key": "spanlake.project", "value": {"stringValue": "js"}}]}
    doc = {
        "resourceMetrics": [{"resource": resource, "scopeMetrics": [{"scope": {"name": "web"}, "metrics": [metric]}]}]
    }
    body = gzip.compress(json.dumps(doc).encode())
    r = post(collector, body, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {}
    collector.flush()
    (p,) = points(collector, "gen_ai.client.operation.duration")
    assert (p["project"], p["temporality"], p["count"], p["sum"], p["bucket_counts"]) == ("js", "delta", 2, 3.5, [1, 1])
    (ex,) = json.loads(p["exemplars"])
    assert (ex["trace_id"], ex["span_id"], ex["value"]) == (trace_id, span_id, 1.5)
    bad = json.dumps(doc).replace(trace_id, "zz").encode()
    r = post(collector, bad, {"Content-Type": "application/json"})
    assert r.status_code == 400
    message = status_pb2.Status(**{k: v for k, v in r.json().items() if k != "details"}).message
    assert "exemplars[0].traceId is not valid hex" in message


def _bad_points(now: int) -> tuple[list[Metric], int]:
    """Metrics with one good point and 9 bad ones (each reason once), and the good count."""
    good = make_sum("ok", [(now - 10, now, 1, {})])
    bad_sums = make_sum(
        "bad",
        [(0, 0, 1, {}), (now, now - 5, 1, {}), (0, now + 10 * 24 * HOUR_NS, 1, {}), (0, now, float("nan"), {})],
    )
    bad_sums.sum.data_points.add(time_unix_nano=now)  # no value, and not flagged as such
    no_name = make_sum("", [(0, now, 1, {})])
    unspecified = make_sum("t", [(0, now, 1, {})])
    unspecified.sum.aggregation_temporality = 0
    hist = Metric(name="h")
    hist.histogram.aggregation_temporality = 1
    hist.histogram.data_points.add(time_unix_nano=now, count=3, bucket_counts=[1, 1], explicit_bounds=[1.0])
    hist.histogram.data_points.add(time_unix_nano=now, count=2, bucket_counts=[1, 1, 0], explicit_bounds=[1.0])
    return [good, bad_sums, no_name, unspecified, hist], 1


def test_bad_data_points_are_partial_success(collector: RunningCollector) -> None:
    metrics, good = _bad_points(time.time_ns())
    body = make_metrics_request(metrics).SerializeToString()
    answers = [
        ExportMetricsServiceResponse.FromString(post(collector, body).content),
        ExportMetricsServiceResponse.FromString(grpc_export(collector, body)),
    ]
    for answer in answers:
        ps = answer.partial_success
        assert ps.rejected_data_points == 9, ps
        for fragment in (
            "rejected 9 of 10",
            "1 with time unset or before 2000-01-01",
            "1 with start_time after time",
            "1 with time too far in the future",
            "1 with a non-finite value",
            "1 with no value (as_int or as_double unset)",
            "1 in a metric without a name",
            "1 in a metric whose aggregation_temporality is unspecified",
            "1 with bucket_counts that do not add up to count",
            "1 with bucket_counts not one more than explicit_bounds",
        ):
            assert fragment in ps.error_message, ps.error_message
    collector.flush()
    assert collector.query("SELECT metric_name, count(*) AS n FROM metrics GROUP BY ALL") == [
        {"metric_name": "ok", "n": good}
    ]


def test_bad_project_name_rejects_the_points(collector: RunningCollector) -> None:
    now = time.time_ns()
    req = make_metrics_request([make_sum("m", [(0, now, 1, {}), (0, now, 2, {"x": 1})])], {"spanlake.project": "../x"})
    ps = ExportMetricsServiceResponse.FromString(post(collector, req.SerializeToString()).content).partial_success
    assert ps.rejected_data_points == 2 and "invalid project name" in ps.error_message


def test_redaction_rules_apply_to_point_attributes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "redaction.toml").write_text('[projects."*"]\nbuiltin = ["email"]\n')
    running, stop = start_collector(data_dir)
    try:
        now = time.time_ns()
        metric = make_sum("gen_ai.client.token.usage", [(0, now, 7, {"user": "ann@example.com"})])
        metric.description = "tokens of ann@example.com"
        assert post(running, make_metrics_request([metric]).SerializeToString()).status_code == 200
        running.flush()
        (p,) = points(running, "gen_ai.client.token.usage")
        assert "ann@example.com" not in json.dumps(p, default=str)
        assert json.loads(p["attributes"])["user"] != "ann@example.com" and p["value"] == 7.0
    finally:
        stop()


def test_auth_applies_to_metrics(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = KeyStore(keys_path(data_dir))
    _, write_key = store.create("alpha", "write", "ingest")
    running, stop = start_collector(data_dir, auth="on")
    try:
        now = time.time_ns()
        body = make_metrics_request([make_sum("m", [(0, now, 1, {})])], {"spanlake.project": "beta"})
        raw = body.SerializeToString()
        r = post(running, raw)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert status_pb2.Status.FromString(r.content).code == 16  # UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            grpc_export(running, raw)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = post(running, raw, {"Content-Type": PROTOBUF, "Authorization": f"Bearer {write_key}"})
        assert ok.status_code == 200
        grpc_export(running, raw, write_key)
        running.flush()
        # Stored once (the gRPC copy is the same point) and under the key's project, not the resource's.
        assert running.query("SELECT project, count(*) AS n FROM metrics GROUP BY ALL") == [
            {"project": "alpha", "n": 1}
        ]
    finally:
        stop()


def test_metrics_partitions_by_point_time(collector: RunningCollector) -> None:
    day = 1_750_000_000 * 10**9  # 2025-06-15T15:06:40Z
    req = make_metrics_request([make_sum("m", [(0, day, 1, {}), (0, day + 2 * HOUR_NS, 2, {})])], {"a": 1})
    assert post(collector, req.SerializeToString()).status_code == 200
    collector.flush()
    rows = collector.query("SELECT date::VARCHAR AS d, hour, value FROM metrics ORDER BY hour")
    assert rows == [{"d": "2025-06-15", "hour": 15, "value": 1.0}, {"d": "2025-06-15", "hour": 17, "value": 2.0}]
