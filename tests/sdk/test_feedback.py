"""sl.feedback(): the request it sends, its defaults, its bounds, and the label a real collector stores."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from tests.conftest import RunningCollector
from tests.net import free_port

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@dataclass
class FeedbackApi:
    """A stub of spanlake's feedback endpoint: answers `statuses` in turn (then 200), after `delay_s`."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FeedbackApi:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(api.delay_s)
                status = api.statuses.pop(0) if api.statuses else 200
                answer = {"label_id": "abc"} if status == 200 else {"code": 3, "message": "bad"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FeedbackApi]:
    with FeedbackApi() as a:
        yield a


@pytest.fixture(autouse=True)
def _no_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a setup() handle or spanlake variables."""
    from spanlake.sdk import provider

    monkeypatch.setattr(provider, "_current", None)
    for name in ("SPANLAKE_PROJECT", "SPANLAKE_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)


def test_sends_the_contract(api: FeedbackApi) -> None:
    ok = sl.feedback(
        TRACE.upper(),
        value="down",
        score=0.25,
        comment="wrong order id",
        user_id="u-7",
        span_id=SPAN,
        endpoint=api.url + "/",
        api_key="k-1",
        project="shop",
    )
    assert ok
    ((path, headers, body),) = api.requests
    assert path == "/api/v1/feedback"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer k-1"
    assert body == {
        "trace_id": TRACE,
        "span_id": SPAN,
        "value": "down",
        "score": 0.25,
        "comment": "wrong order id",
        "user_id": "u-7",
        "project": "shop",
    }


def test_defaults_come_from_setup(api: FeedbackApi) -> None:
    provider = TracerProvider()
    handle = sl.setup(
        endpoint=api.url + "/v1/traces", project="support", api_key="k-2", tracer_provider=provider,
        exporter=InMemorySpanExporter(), headers={"X-Tenant": "t1"},
    )  # fmt: skip
    try:
        with sl.task("answer"):
            trace_id = sl.current_trace_id()
        assert trace_id is not None and len(trace_id) == 32
        assert sl.feedback(trace_id, value="up")
        assert sl.feedback(int(trace_id, 16), score=3, project="other")  # the OTel int id works too
    finally:
        handle.shutdown()
        provider.shutdown()
    (_, headers, body), (_, _, second) = api.requests
    assert (headers["authorization"], headers["x-tenant"]) == ("Bearer k-2", "t1")
    assert body == {"trace_id": trace_id, "span_id": None, "value": "up", "score": None, "comment": None,
                    "user_id": None, "project": "support"}  # fmt: skip
    assert (second["trace_id"], second["score"], second["project"]) == (trace_id, 3, "other")
    assert sl.current_trace_id() is None  # outside any span


def test_defaults_come_from_the_environment(api: FeedbackApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", api.url)
    monkeypatch.setenv("SPANLAKE_PROJECT", "envproj")
    monkeypatch.setenv("SPANLAKE_API_KEY", "k-env")
    assert sl.feedback(TRACE, comment="thanks")
    ((_, headers, body),) = api.requests
    assert headers["authorization"] == "Bearer k-env"
    assert (body["project"], body["comment"], body["value"]) == ("envproj", "thanks", None)


@pytest.mark.parametrize(
    "trace_id, kwargs",
    [
        ("xyz", {"value": "up"}),
        ("0" * 32, {"value": "up"}),
        (None, {"value": "up"}),
        (TRACE, {}),  # nothing to record
        (TRACE, {"value": "meh"}),
        (TRACE, {"score": float("nan")}),
        (TRACE, {"score": True}),
        (TRACE, {"value": "up", "span_id": "short"}),
        (TRACE, {"comment": 42}),
    ],
)
def test_bad_arguments_are_refused_locally(api: FeedbackApi, trace_id: Any, kwargs: dict[str, Any]) -> None:
    assert sl.feedback(trace_id, endpoint=api.url, **kwargs) is False
    assert api.requests == []


def test_retries_once_when_busy_and_reports_refusals(api: FeedbackApi) -> None:
    api.statuses = [503]
    assert sl.feedback(TRACE, value="up", endpoint=api.url)
    assert len(api.requests) == 2
    api.statuses = [400]
    assert not sl.feedback(TRACE, value="up", endpoint=api.url)
    api.statuses = [503, 503]
    assert not sl.feedback(TRACE, value="up", endpoint=api.url)


def test_bounded_when_slow_or_unreachable(api: FeedbackApi) -> None:
    api.delay_s = 2.0
    start = time.monotonic()
    assert not sl.feedback(TRACE, value="up", endpoint=api.url, timeout_s=0.3)
    assert time.monotonic() - start < 1.0
    start = time.monotonic()
    assert not sl.feedback(TRACE, value="up", endpoint=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    assert not sl.feedback(TRACE, value="up", endpoint="not a url")
    assert time.monotonic() - start < 2.0


def test_async_variant(api: FeedbackApi) -> None:
    import asyncio

    assert asyncio.run(sl.afeedback(TRACE, value="down", endpoint=api.url))
    assert asyncio.run(sl.afeedback(TRACE, value="sideways", endpoint=api.url)) is False


def test_feedback_lands_in_the_labels_view(collector: RunningCollector) -> None:
    """End to end: a traced task, the user's feedback on it, both in the lake, joined by trace id."""
    provider = TracerProvider()
    handle = sl.setup(endpoint=collector.http, project="fb", tracer_provider=provider)
    try:
        with sl.task("answer") as task:
            trace_id = sl.current_trace_id()
            span_id = format(task.span.get_span_context().span_id, "016x")
        assert sl.feedback(trace_id, value="down", comment="wrong answer", user_id="u-9")
        assert sl.feedback(trace_id, span_id=span_id, score=0.5)
        assert not sl.feedback(trace_id, value="up", project="no spaces allowed")  # the collector's 400
        assert handle.flush(10)
    finally:
        handle.shutdown()
        provider.shutdown()
    collector.flush()
    rows = collector.query(
        "SELECT l.project, l.trace_id, l.span_id, l.source, l.author, l.value, l.score, l.comment, s.name "
        "FROM labels l JOIN spans s USING (project, trace_id) ORDER BY l.score NULLS FIRST"
    )
    assert rows == [
        {"project": "fb", "trace_id": trace_id, "span_id": None, "source": "user_feedback", "author": "u-9",
         "value": "down", "score": None, "comment": "wrong answer", "name": "answer"},
        {"project": "fb", "trace_id": trace_id, "span_id": span_id, "source": "user_feedback", "author": None,
         "value": None, "score": 0.5, "comment": None, "name": "answer"},
    ]  # fmt: skip
