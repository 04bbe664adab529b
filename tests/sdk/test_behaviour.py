"""Marker semantics, checked on spans exported to memory (no collector needed)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from spanlake.sdk import attributes as A
from tests.sdk.conftest import FORMS, finished, run_form

Memory = tuple[InMemorySpanExporter, TracerProvider]


class AppError(Exception):
    pass


@pytest.mark.parametrize("form", FORMS)
def test_app_exception_escapes_unchanged(memory: Memory, form: str) -> None:
    err = AppError("the app's own")

    def body(h: Any) -> None:
        raise err

    with pytest.raises(AppError) as caught:
        run_form(form, sl.task("t"), body)
    assert caught.value is err
    span = finished(memory[0])["t"]
    assert span.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_outcome_rules(memory: Memory) -> None:
    with sl.task("implicit"):
        pass
    with pytest.raises(AppError), sl.task("succeeded then raised") as t:
        t.succeed()
        raise AppError("late")
    with pytest.raises(AppError), sl.task("failed then raised") as t:
        t.fail("invalid reply")
        raise AppError("late")
    spans = finished(memory[0])
    attrs = {n: dict(s.attributes) for n, s in spans.items()}
    assert attrs["implicit"][A.TASK_OUTCOME] == "success"
    assert A.TASK_OUTCOME_REASON not in attrs["implicit"]
    assert (attrs["succeeded then raised"][A.TASK_OUTCOME], attrs["succeeded then raised"][A.TASK_OUTCOME_REASON]) == (
        "failure",
        "AppError: late",
    )
    assert attrs["failed then raised"][A.TASK_OUTCOME_REASON] == "invalid reply"


def test_generator_context_stays_inside(memory: Memory) -> None:
    tracer = memory[1].get_tracer("app")
    seen_by_consumer = []

    @sl.task("stream")
    def produce():
        with tracer.start_as_current_span("inside"):
            pass
        yield 1
        yield 2

    with tracer.start_as_current_span("consumer") as consumer:
        for _ in produce():
            seen_by_consumer.append(trace.get_current_span())
    assert seen_by_consumer == [consumer, consumer]
    spans = finished(memory[0])
    assert spans["inside"].parent.span_id == spans["stream"].context.span_id
    assert spans["stream"].parent.span_id == spans["consumer"].context.span_id


def test_generator_close_and_throw(memory: Memory) -> None:
    closed = []

    @sl.llm_call("m", "openai")
    def tokens():
        try:
            while True:
                try:
                    yield "tok "
                except KeyError:
                    yield "recovered"
        finally:
            closed.append(True)

    gen = tokens()
    assert next(gen) == "tok "
    assert gen.throw(KeyError("x")) == "recovered"  # thrown into the body, handled there
    gen.close()  # consumer stops early: not an error
    assert closed == [True]
    span = finished(memory[0])["chat m"]
    assert span.status.status_code == trace.StatusCode.UNSET
    assert span.attributes[A.GEN_AI_REQUEST_STREAM] is True
    assert span.attributes[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    out = json.loads(span.attributes[A.GEN_AI_OUTPUT_MESSAGES])
    assert out[0]["parts"][0]["content"] == "tok recovered"  # str chunks joined when no explicit output


def test_async_stream_helper(memory: Memory) -> None:
    async def chunks():
        for c in ("a", "b"):
            await asyncio.sleep(0.01)
            yield c

    async def main() -> list[str]:
        async with sl.llm_call("m", "openai") as call:
            return [c async for c in call.astream(chunks())]

    assert asyncio.run(main()) == ["a", "b"]
    span = finished(memory[0])["chat m"]
    assert 0.005 < span.attributes[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] < 1.0


def test_decorators_record_returns_and_arguments(memory: Memory) -> None:
    @sl.tool_call("lookup_order")
    def lookup(order_id: int, verbose: bool = False) -> dict[str, str]:
        return {"status": "shipped"}

    @sl.validation("is_json")
    def check(text: str) -> bool:
        return False

    @sl.retrieval("refunds", "kb")
    async def search() -> list[dict[str, Any]]:
        return [{"id": 1, "score": 0.5, "page_content": "five days", "metadata": {"src": "faq"}}]

    @sl.policy("input_filter")
    def decide() -> str:
        return "block"

    assert lookup(7) == {"status": "shipped"}
    assert check("x") is False
    asyncio.run(search())
    assert decide() == "block"
    spans = finished(memory[0])
    tool = spans["execute_tool lookup_order"].attributes
    assert json.loads(tool[A.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"order_id": 7}
    assert json.loads(tool[A.GEN_AI_TOOL_CALL_RESULT]) == {"status": "shipped"}
    assert spans["validation is_json"].attributes[A.VALIDATION_PASSED] is False
    ret = spans["retrieval kb"].attributes
    assert json.loads(ret[A.GEN_AI_RETRIEVAL_DOCUMENTS]) == [
        {"id": "1", "score": 0.5, "content": "five days", "metadata": {"src": "faq"}}
    ]
    assert json.loads(ret["retrieval.documents.0.document.metadata"]) == {"src": "faq"}
    assert spans["policy input_filter"].attributes[A.POLICY_DECISION] == "block"


def test_no_content_without_capture() -> None:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=exporter, capture_content=False)
    try:
        with sl.llm_call("m", "openai", messages="secret prompt") as call:
            call.set_output("secret answer", "stop")
            call.set_usage(input_tokens=3, output_tokens=2)
        with sl.retrieval("secret query", "kb") as r:
            r.set_documents([("d1", 0.9, "secret doc")])
        with sl.tool_call("t", {"card": "secret"}) as tc:
            tc.set_result("secret result")
        spans = finished(exporter)
    finally:
        handle.shutdown()
    everything = json.dumps([dict(s.attributes) for s in spans.values()])
    assert "secret" not in everything
    assert spans["chat m"].attributes[A.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert spans["chat m"].attributes[A.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert json.loads(spans["retrieval kb"].attributes[A.GEN_AI_RETRIEVAL_DOCUMENTS]) == [{"id": "d1", "score": 0.9}]


def test_current_handles_are_safe_anywhere(memory: Memory) -> None:
    sl.current_task().fail("nothing to fail")  # no task: a no-op
    sl.current_llm_call().set_usage(input_tokens=1)
    with sl.task("outer"), sl.tool_call("inner"):
        sl.current_task().fail("from deep inside")
        assert isinstance(sl.current(), sl.ToolCall)
        sl.current_llm_call().set_usage(input_tokens="many")  # not an llm_call: no-op
    with sl.llm_call("m", "openai") as call:
        call.set_usage(input_tokens="not a number")  # bad input is logged, not raised
        call.set_attribute("custom", object())
    spans = finished(memory[0])
    assert spans["outer"].attributes[A.TASK_OUTCOME_REASON] == "from deep inside"


def test_shared_marker_object_across_threads(memory: Memory) -> None:
    shared = sl.task("shared")
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        with shared as t:
            barrier.wait(timeout=5)
            if i % 2:
                t.fail(f"odd {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sl.flush(5)
    spans = [s for s in memory[0].get_finished_spans() if s.name == "shared"]
    reasons = sorted(s.attributes.get(A.TASK_OUTCOME_REASON, "") for s in spans)
    assert reasons == ["", "", "odd 1", "odd 3"]
    assert trace.get_current_span() is trace.INVALID_SPAN
