"""Fixtures for the SDK tests: spanlake-sdk wired to a real collector, or to memory."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from tests.conftest import RunningCollector

FORMS = ("sync", "async", "gen", "agen", "with", "async_with")


@dataclass
class SdkRun:
    """spanlake-sdk set up against a real collector, on a provider of the test's own."""

    collector: RunningCollector
    handle: sl.Spanlake
    provider: TracerProvider

    def rows(self, sql: str = "SELECT * FROM spans ORDER BY start_time") -> list[dict[str, Any]]:
        assert self.handle.flush(10), "sdk did not flush"
        self.collector.flush()
        return self.collector.query(sql)

    def by_name(self) -> dict[str, dict[str, Any]]:
        rows = self.rows()
        by = {r["name"]: r for r in rows}
        assert len(by) == len(rows), f"span names are not unique: {[r['name'] for r in rows]}"
        return by


@pytest.fixture
def sdk_run(collector: RunningCollector) -> Iterator[SdkRun]:
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-test"}))
    handle = sl.setup(endpoint=collector.http, project="sdktest", capture_content=True, tracer_provider=provider)
    try:
        yield SdkRun(collector, handle, provider)
    finally:
        handle.shutdown()
        provider.shutdown()


@pytest.fixture
def memory() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    """setup() exporting to memory (synchronously visible after sl.flush())."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=exporter, capture_content=True)
    try:
        yield exporter, provider
    finally:
        handle.shutdown()
        provider.shutdown()


def finished(exporter: InMemorySpanExporter) -> dict[str, Any]:
    assert sl.flush(5)
    return {s.name: s for s in exporter.get_finished_spans()}


def run_form(form: str, marker: Any, body: Callable[[Any], Any]) -> Any:
    """Run body(handle) inside `marker` used in one form; returns what body returned.
    Decorator forms reach the handle with sl.current(); generator forms yield once first."""
    if form == "sync":

        @marker
        def f() -> Any:
            return body(sl.current())

        return f()
    if form == "async":

        @marker
        async def af() -> Any:
            await asyncio.sleep(0)
            return body(sl.current())

        return asyncio.run(af())
    if form == "gen":

        @marker
        def g() -> Any:
            yield "first"
            yield body(sl.current())

        return list(g())[-1]
    if form == "agen":

        @marker
        async def ag() -> Any:
            yield "first"
            await asyncio.sleep(0)
            yield body(sl.current())

        async def consume() -> list[Any]:
            return [x async for x in ag()]

        return asyncio.run(consume())[-1]
    if form == "with":
        with marker as h:
            return body(h)
    if form == "async_with":

        async def aw() -> Any:
            async with marker as h:
                return body(h)

        return asyncio.run(aw())
    raise ValueError(form)


@dataclass
class FakeCollector:
    """A tiny OTLP/HTTP endpoint that answers `status` after `delay_s`, recording requests."""

    status: int = 200
    delay_s: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeCollector:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fake.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(fake.delay_s)
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/x-protobuf")
                if fake.status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
