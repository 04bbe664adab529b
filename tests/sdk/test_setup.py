"""setup() reads the standard OTEL_* variables; explicit arguments win."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from spanlake.sdk._state import STATE
from spanlake.sdk.provider import _headers, _traces_endpoint


def test_capture_content_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    handle = sl.setup(tracer_provider=TracerProvider(), exporter=InMemorySpanExporter())
    assert STATE.capture_content is True
    handle = sl.setup(tracer_provider=TracerProvider(), exporter=InMemorySpanExporter(), capture_content=False)
    assert STATE.capture_content is False
    handle.shutdown()


def test_sdk_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=InMemorySpanExporter())
    assert handle.processor is None and handle.flush() is True
    assert provider._active_span_processor._span_processors == ()
    with sl.task("still runs") as t:
        t.succeed()


def test_headers_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=search,Authorization=Basic old")
    assert _headers({"X-Extra": "1"}, "k-1") == {"x-team": "search", "x-extra": "1", "authorization": "Bearer k-1"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-only=traces")
    assert _headers(None, None) == {"x-only": "traces"}
    assert _traces_endpoint("http://h:4318/") == "http://h:4318/v1/traces"
    assert _traces_endpoint("http://h:4318/v1/traces") == "http://h:4318/v1/traces"
    assert _traces_endpoint(None) is None  # the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT


def test_project_and_api_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLAKE_PROJECT", "from-env")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=exporter)
    with sl.task("t"):
        pass
    assert handle.flush(5)
    handle.shutdown()
    # the app's provider keeps its resource; the exported copy names the project
    assert "spanlake.project" not in provider.resource.attributes
    [span] = exporter.get_finished_spans()
    assert span.resource.attributes["spanlake.project"] == "from-env"
