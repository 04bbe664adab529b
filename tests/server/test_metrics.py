"""GET /metrics: scraped with prometheus-client's own text parser, under a known load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_collector
from tests.factories import make_request, make_span
from tests.server.api_helpers import Api, problem_of

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def scrape(http: str, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{http}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_follow_a_known_load_and_restart_from_zero(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    running, stop = start_collector(data_dir)
    try:
        before = scrape(running.http)
        assert value(before, "spanlake_accepted_items_total", signal="traces") == 0
        # HTTP: three good requests of 4 spans, one with a span whose trace id is all zeros
        # (accepted in part), one malformed body (refused whole).
        bodies = [make_request([make_span() for _ in range(4)]).SerializeToString() for _ in range(3)]
        bad_span = make_span(trace_id=bytes(16))
        bodies.append(make_request([make_span(), bad_span]).SerializeToString())
        for body in bodies:
            assert httpx.post(f"{running.http}/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        garbage = b"\x0a\xff\xff\xff"
        assert httpx.post(f"{running.http}/v1/traces", content=garbage, headers=PROTOBUF).status_code == 400
        # gRPC: 5 spans through the OTel SDK's exporter.
        provider = TracerProvider(resource=Resource.create({"service.name": "metrics-test"}))
        provider.add_span_processor(SimpleSpanProcessor(GrpcSpanExporter(endpoint=running.grpc, insecure=True)))
        tracer = provider.get_tracer("t")
        for i in range(5):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        provider.shutdown()
        running.flush()

        m = scrape(running.http)
        assert value(m, "spanlake_received_requests_total", signal="traces", transport="http") == 5
        assert value(m, "spanlake_received_bytes_total", signal="traces", transport="http") == sum(
            len(b) for b in [*bodies, garbage]
        )
        assert value(m, "spanlake_received_requests_total", signal="traces", transport="grpc") == 5
        assert value(m, "spanlake_refused_requests_total", signal="traces", transport="http",
                     reason="invalid_request") == 1  # fmt: skip
        assert value(m, "spanlake_accepted_items_total", signal="traces") == 3 * 4 + 1 + 5
        assert value(m, "spanlake_rejected_items_total", signal="traces", reason="invalid_trace_id") == 1
        lake_files = list((data_dir / "lake" / "spans").rglob("*.parquet"))
        assert value(m, "spanlake_parquet_files_written_total") == len(lake_files) >= 1
        assert value(m, "spanlake_flushed_segments_total", outcome="ok") >= 1
        assert value(m, "spanlake_flush_duration_seconds_count") == value(m, "spanlake_flushed_segments_total",
                                                                          outcome="ok")  # fmt: skip
        assert value(m, "spanlake_wal_backlog_bytes") == 0
        assert value(m, "spanlake_wal_oldest_unflushed_age_seconds") == 0
        assert value(m, "process_resident_memory_bytes") > 0
    finally:
        stop()

    running, stop = start_collector(data_dir)
    try:
        m = scrape(running.http)
        assert value(m, "spanlake_accepted_items_total", signal="traces") == 0  # counters restart at zero
        assert running.query("SELECT count(*) AS n FROM spans")[0]["n"] == 18  # ... the lake keeps what it had
    finally:
        stop()


def test_unflushed_records_show_their_age(tmp_path: Path) -> None:
    running, stop = start_collector(tmp_path / "data", segment_max_age_s=3600)  # nothing rotates by itself
    try:
        body = make_request([make_span()]).SerializeToString()
        assert httpx.post(f"{running.http}/v1/traces", content=body, headers=PROTOBUF).status_code == 200
        m = scrape(running.http)
        assert 0 < value(m, "spanlake_wal_oldest_unflushed_age_seconds") < 600
        running.flush()
        assert value(scrape(running.http), "spanlake_wal_oldest_unflushed_age_seconds") == 0
    finally:
        stop()


def test_metrics_need_a_key_when_authentication_is_on(api_v1: Api) -> None:
    problem_of(httpx.get(f"{api_v1.c.http}/metrics"), 401)
    problem_of(httpx.get(f"{api_v1.c.http}/metrics", headers={"Authorization": "Bearer nope"}), 401)
    m = scrape(api_v1.c.http, api_v1.keys["alpha:read"])
    assert value(m, "spanlake_accepted_items_total", signal="traces") > 0


def test_the_docs_and_the_grafana_dashboard_name_only_metrics_that_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    families = set(re.findall(r'"(spanlake_[a-z_]+)"', (root / "server" / "metrics.py").read_text()))
    documented = set(
        re.findall(r"^\| (spanlake_[a-z_]+?)(?:_total)? \|", (root / "docs" / "metrics.md").read_text(), re.M)
    )
    assert documented == families
    dashboard = json.loads((root / "deploy" / "grafana" / "spanlake.json").read_text())
    used = {
        re.sub(r"_(total|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"spanlake_[a-z_]+", target["expr"])
    }
    assert used and used <= families, used - families
