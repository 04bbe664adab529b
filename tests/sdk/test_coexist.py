"""setup() next to an app's own OpenTelemetry: a configured provider, its exporters, and the
openai-v2, OpenInference and OpenLLMetry auto-instrumentations all keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from tests.conftest import RunningCollector
from tests.sdk.conftest import FakeCollector

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import spanlake.sdk as sl

    app_exporter = InMemorySpanExporter()
    if sys.argv[1] == "existing":
        app_provider = TracerProvider()
        app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
        trace.set_tracer_provider(app_provider)
    handle = sl.setup(api_key="k-123", project="proj")
    kept = trace.get_tracer_provider() is (app_provider if sys.argv[1] == "existing" else handle.provider)
    with sl.task("t"):
        with trace.get_tracer("app").start_as_current_span("app span"):
            pass
    flushed = handle.flush(5)
    app_spans = [(s.name, dict(s.resource.attributes)) for s in app_exporter.get_finished_spans()]
    print(json.dumps({"kept": kept, "owns": handle.owns_provider, "flushed": flushed, "app_spans": app_spans}))
    """
)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: kv.value.string_value for kv in kvs}


@pytest.mark.parametrize("mode", ["fresh", "existing"])
def test_global_provider_created_or_extended(mode: str) -> None:
    """In a clean process: no provider → setup creates the global one; an app's provider →
    setup adds to it. OTEL_* variables are honoured; the API key is a bearer token."""
    with FakeCollector(status=200) as fake:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": fake.url,
            "OTEL_SERVICE_NAME": "env-service",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        }
        env.pop("OTEL_SDK_DISABLED", None)
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["kept"] and result["flushed"]
        assert result["owns"] == (mode == "fresh")
        assert fake.requests
        sent = []
        for headers, body in fake.requests:
            assert headers["authorization"] == "Bearer k-123"
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                resource = _attrs(rs.resource.attributes)
                assert resource["spanlake.project"] == "proj"
                assert resource["service.name"] == "env-service"
                assert resource["deployment.environment"] == "test"
                sent += [s.name for ss in rs.scope_spans for s in ss.spans]
        assert sorted(sent) == ["app span", "t"]
    if mode == "existing":  # the app's own exporter still sees everything, its resource unchanged
        app_spans = dict(result["app_spans"])
        assert sorted(app_spans) == ["app span", "t"]
        assert "spanlake.project" not in app_spans["t"]


def _instrumentor(name: str) -> Any:
    if name == "openai-v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor()


@pytest.mark.parametrize("name", ["openai-v2", "openinference", "openllmetry"])
def test_auto_instrumentation_keeps_working(collector: RunningCollector, name: str) -> None:
    from openai import OpenAI

    from spanlake.demo.fake_openai import FakeOpenAI

    provider = TracerProvider(resource=Resource.create({"service.name": "bot"}))
    app_exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    handle = sl.setup(endpoint=collector.http, project="auto", tracer_provider=provider, capture_content=True)
    instrumentor = _instrumentor(name)
    instrumentor.instrument(tracer_provider=provider)
    try:
        with FakeOpenAI() as server:
            client = OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            with sl.prompt("support", "v7"), sl.task("answer") as t:
                reply = client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
                )
                t.succeed()
        assert reply.choices[0].message.content == "Fake reply: hello there"
        assert handle.flush(10)
    finally:
        instrumentor.uninstrument()
        handle.shutdown()
        provider.shutdown()
    collector.flush()
    rows = collector.query("SELECT * FROM spans")
    task = next(r for r in rows if r["name"] == "answer")
    llms = [r for r in rows if r["category"] == "llm"]
    assert len(llms) == 1, [(r["name"], r["category"]) for r in rows]
    llm = llms[0]
    assert llm["parent_span_id"] == task["span_id"] and llm["trace_id"] == task["trace_id"]
    assert (llm["project"], llm["service_name"], llm["request_model"]) == ("auto", "bot", "gpt-4o-mini")
    assert llm["input_tokens"] == 2
    assert llm["prompt_version"] == task["prompt_version"] == "v7"
    assert task["task_outcome"] == "success"
    app_names = {s.name for s in app_exporter.get_finished_spans()}
    assert {"answer", llm["name"]} <= app_names  # the app's own exporter got the same spans
