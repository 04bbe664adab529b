"""The SDK never hurts the app: collector down, slow, refusing, or the SDK itself broken."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import spanlake.sdk as sl
from spanlake.sdk._state import STATE
from tests.net import free_port
from tests.sdk.conftest import FORMS, FakeCollector, run_form


def _app_workload() -> list[Any]:
    """A marked app: every form of every marker; returns what the app computed."""
    results = []
    for form in FORMS:
        results.append(run_form(form, sl.task(f"t {form}"), lambda h: 42))
        results.append(run_form(form, sl.llm_call("m", "openai"), lambda h: h.set_usage(input_tokens=1) or "ok"))
    for _ in range(300):
        with sl.task("many") as t, sl.tool_call("x"):
            t.succeed()
    return results


EXPECTED = [42, "ok"] * len(FORMS)


def _check_unaffected(endpoint: str, timeout_s: float) -> None:
    provider = TracerProvider()
    handle = sl.setup(endpoint=endpoint, tracer_provider=provider, timeout_s=timeout_s)
    try:
        start = time.monotonic()
        assert _app_workload() == EXPECTED
        app_s = time.monotonic() - start
        assert app_s < 3.0, f"the app took {app_s:.2f}s: export is blocking it"
        start = time.monotonic()
        handle.flush(timeout_s)  # bounded even though nothing gets through
        handle.shutdown()
        assert time.monotonic() - start < 2 * timeout_s + 1.0
    finally:
        provider.shutdown()


def test_collector_unreachable() -> None:
    _check_unaffected(f"http://127.0.0.1:{free_port()}", timeout_s=1.0)


def test_collector_answers_503_slowly() -> None:
    with FakeCollector(status=503, delay_s=1.5) as fake:
        _check_unaffected(fake.url, timeout_s=1.0)
        assert fake.requests, "the exporter never tried"


def test_setup_with_nonsense_does_not_raise() -> None:
    handle = sl.setup(endpoint="not a url at all", tracer_provider=TracerProvider(), timeout_s=0.5)
    try:
        with sl.task("t") as t:
            t.succeed()
        handle.flush(0.5)
    finally:
        handle.shutdown()
    bad = sl.setup(tracer_provider=object(), timeout_s=0.5)  # cannot attach: falls back, no exception
    bad.shutdown()


class _Exploding:
    """A tracer, exporter or anything else the SDK relies on, failing at every call."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"sdk internals broke: {name}")


@pytest.mark.parametrize("form", FORMS)
def test_broken_sdk_internals_never_escape(monkeypatch: pytest.MonkeyPatch, form: str) -> None:
    monkeypatch.setattr(STATE, "tracer", _Exploding())

    def body(h: Any) -> str:
        sl.current_task().fail("x")
        h.set_attribute("k", 1)
        return "result"

    assert run_form(form, sl.task("t"), body) == "result"
    with pytest.raises(KeyError):
        run_form(form, sl.llm_call("m", "p"), lambda h: {}["missing"])
    with sl.prompt("p", "v1"), sl.validation("v") as v:
        v.failed(["still fine"])


class _RaisingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("exporter bug")

    def shutdown(self) -> None:
        raise RuntimeError("exporter bug")


class _HangingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        time.sleep(30)
        return SpanExportResult.SUCCESS


@pytest.mark.parametrize("exporter", [_RaisingExporter(), _HangingExporter()], ids=["raising", "hanging"])
def test_broken_exporter_is_contained(exporter: SpanExporter) -> None:
    provider = TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=exporter, timeout_s=0.5)
    for _ in range(3000):  # more than the queue holds: extra spans are dropped, not waited for
        with sl.task("t"):
            pass

    async def main() -> str:
        async with sl.task("async"):
            return "done"

    assert asyncio.run(main()) == "done"
    start = time.monotonic()
    handle.flush(0.5)
    handle.shutdown()
    provider.shutdown()
    assert time.monotonic() - start < 3.0
