"""Realistic GenAI OTLP load: request bodies built once, then sent by concurrent clients.

Each trace looks like an LLM app request: a task root, retrieval, two chat calls, a tool
call and a validation, with 20-40 attributes per span (about 1-2 KB of protobuf each, of
which message content is kept small so the "bytes per span excluding content" figure is
meaningful). Every span id is unique across the whole run.
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro"]
SPANS_PER_TRACE = 6


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _common(rng: random.Random, i: int) -> dict[str, object]:
    return {
        "session.id": f"session-{i % 5000}",
        "user.id": f"user-{i % 900}",
        "gen_ai.prompt.name": "support_answer",
        "gen_ai.prompt.version": f"v{1 + i % 3}",
        "deployment.environment": "production",
        "http.route": "/api/answer",
        "app.request_id": f"req-{i:012d}",
        "app.region": rng.choice(["eu-west-1", "us-east-1"]),
        "app.tenant_id": f"tenant-{i % 40:04d}-{rng.getrandbits(32):08x}",
        "app.ticket_id": f"TCK-{rng.getrandbits(40):012d}",
        "app.channel": rng.choice(["email", "chat", "web"]),
        "app.feature_flags": "rag_v2,tool_lookup,strict_json",
        "code.namespace": "support_bot.pipeline",
        "code.function": "answer_ticket",
        "code.filepath": "/srv/app/support_bot/pipeline.py",
        "thread.name": "MainThread",
        "net.peer.name": "support-bot.internal",
        "gen_ai.agent.name": "support-assistant",
        "gen_ai.conversation.id": f"conv-{rng.getrandbits(64):016x}",
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
    }


def _llm_attrs(rng: random.Random, i: int) -> dict[str, object]:
    model = MODELS[i % len(MODELS)]
    inp, out = rng.randint(200, 4000), rng.randint(20, 800)
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):016x}",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.top_p": 1.0,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.cache_read.input_tokens": inp // 4,
        "gen_ai.usage.reasoning.output_tokens": out // 5,
        "gen_ai.response.finish_reasons": "stop",
        "server.address": "api.openai.com",
        "server.port": 443,
        "openai.response.service_tier": "default",
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Where is my order?"}]}]',
        "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"It ships today."}]}]',
    }


def build_request(first_trace: int, traces: int, seed: int = 0) -> ExportTraceServiceRequest:
    """One export request holding `traces` traces of SPANS_PER_TRACE spans each."""
    rng = random.Random(seed * 1_000_003 + first_trace)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", "support-bot"),
            _kv("service.version", "1.4.2"),
            _kv("spanlake.project", "bench"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.version", "1.27.0"),
            _kv("host.name", "pod-7"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.1b0"
    now = time.time_ns()
    for t in range(first_trace, first_trace + traces):
        trace_id = os.urandom(16)
        root_id = os.urandom(8)
        start = now - rng.randint(0, 10**9)
        common = _common(rng, t)
        steps: list[tuple[str, dict[str, object]]] = [
            ("answer_ticket", {"spanlake.task.name": "answer_ticket", "spanlake.task.outcome": "success"}),
            (
                "retrieval kb",
                {
                    "gen_ai.operation.name": "retrieval",
                    "gen_ai.data_source.id": "kb",
                    "gen_ai.request.top_k": 5,
                    "db.system": "qdrant",
                },
            ),
            ("chat gpt", _llm_attrs(rng, t)),
            (
                "execute_tool lookup_order",
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "lookup_order",
                    "gen_ai.tool.call.id": f"call_{t}",
                    "gen_ai.tool.type": "function",
                },
            ),
            ("chat gpt", _llm_attrs(rng, t + 1)),
            (
                "validate reply",
                {"spanlake.validation.name": "json_schema:Reply", "spanlake.validation.passed": rng.random() > 0.1},
            ),
        ]
        for n, (name, attrs) in enumerate(steps):
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if n == 0 else os.urandom(8)
            if n:
                span.parent_span_id = root_id
            span.name = name
            span.kind = Span.SPAN_KIND_CLIENT if "chat" in name else Span.SPAN_KIND_INTERNAL
            span.start_time_unix_nano = start + n * 1_000_000
            span.end_time_unix_nano = start + n * 1_000_000 + rng.randint(1, 900) * 1_000_000
            span.attributes.extend(_kv(k, v) for k, v in {**common, **attrs}.items())
            span.flags = 0x100
    return req


@dataclass
class LoadResult:
    sent_spans: int = 0
    acked_spans: int = 0
    refused: int = 0
    reconnects: int = 0
    latencies_s: list[float] = field(default_factory=list)
    seconds: float = 0.0


def send_all(url: str, bodies: list[bytes], spans_per_body: int, clients: int) -> LoadResult:
    """POST every body once to `url`/v1/traces from `clients` threads; retry 429/503 after Retry-After."""
    parsed = urlparse(url)
    result = LoadResult()
    lock = threading.Lock()
    it = iter(range(len(bodies)))

    def worker() -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                break
            while True:
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/v1/traces", bodies[i], {"Content-Type": "application/x-protobuf"})
                    resp = conn.getresponse()
                    resp.read()
                except (http.client.HTTPException, ConnectionError):
                    # the server closed the kept-alive connection (idle past its keep-alive while we
                    # waited out a Retry-After): reconnect and send the same body again, as exporters do
                    conn.close()
                    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
                    with lock:
                        result.reconnects += 1
                    continue
                dt = time.perf_counter() - t0
                if resp.status in (429, 503):
                    with lock:
                        result.refused += 1
                    time.sleep(float(resp.getheader("Retry-After") or 1))
                    continue
                if resp.status != 200:
                    raise RuntimeError(f"unexpected status {resp.status}")
                with lock:
                    result.acked_spans += spans_per_body
                    result.latencies_s.append(dt)
                break
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    result.sent_spans = len(bodies) * spans_per_body
    return result
