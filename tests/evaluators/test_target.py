"""Targets built from a real lake: spans sent with the OTel SDK to a real collector.

Project `shop`, trace A (root `answer_ticket`, 1000 ms, task success):

  +0    answer_ticket  task input "Where is order A1?", output '{"answer": "It ships today."}'
  +10   retrieval kb   40 ms, documents d1 (0.9) "Orders ship in 1 day", d2 (0.5) "Refunds take 5 days"
  +100  chat #1        200 ms, gpt-4o-mini 100 in / 20 out; asks lookup_order({"order_id": "A1"}) (call_1)
  +300  lookup_order   50 ms, tool span of call_1, result {"status": "shipped"}
  +400  chat #2        500 ms, gpt-4o-mini 150 in / 30 out; answers '{"answer": "It ships today."}'

Trace B: root `answer_ticket` (300 ms) whose retrieval returned no document, no model call.
Prices: gpt-4o-mini $1 / $2 per Mtok, so chat #1 costs 100e-6 + 40e-6 = 0.00014, chat #2
150e-6 + 60e-6 = 0.00021, trace A 0.00035.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.detail import trace_detail
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.result import Result
from spanlake.evaluators.run import evaluate
from spanlake.evaluators.target import from_detail, from_example, load_targets
from tests.conftest import start_collector

MS = 1_000_000
PRICES = '[[price]]\nmodel = "gpt-4o-mini"\ninput_mtok = 1.0\noutput_mtok = 2.0\n'
QUESTION = "Where is order A1?"
ANSWER = '{"answer": "It ships today."}'
DOCS = [
    {"id": "d1", "score": 0.9, "content": "Orders ship in 1 day"},
    {"id": "d2", "score": 0.5, "content": "Refunds take 5 days"},
]
CALL = {"type": "tool_call", "id": "call_1", "name": "lookup_order", "arguments": {"order_id": "A1"}}
SYSTEM = {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}
USER = {"role": "user", "parts": [{"type": "text", "content": QUESTION}]}
ASKS = {"role": "assistant", "parts": [CALL]}
TOOL = {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": {"status": "shipped"}}]}


@dataclass
class Lake:
    an: Analytics
    a: str  # trace ids
    b: str
    ids: dict[str, str]  # span name → span id (trace A)
    t0: datetime
    sent: list[Any]  # the spans as exported
    http: str
    flush: Any


def _llm(inp: int, out: int, inputs: list[Any], outputs: list[Any]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps(outputs),
    }


def _send(endpoint: str, t0: int) -> tuple[str, str, dict[str, str], list[Any]]:
    provider = TracerProvider(resource=Resource.create({"service.name": "support", "spanlake.project": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.evaluators")
    ids: dict[str, str] = {}

    def child(root: Any, name: str, at: int, ms: int, attrs: dict[str, Any]) -> None:
        ctx = trace.set_span_in_context(root)
        s = tracer.start_span(name, context=ctx, start_time=t0 + at * MS, attributes=attrs)
        s.end(end_time=t0 + (at + ms) * MS)
        ids[name] = format(s.get_span_context().span_id, "016x")

    task = {"spanlake.task.name": "answer_ticket", "spanlake.task.outcome": "success"}
    root = tracer.start_span(
        "answer_ticket", start_time=t0, attributes=task | {"gen_ai.task.input": QUESTION, "gen_ai.task.output": ANSWER}
    )
    retrieval = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}
    child(root, "retrieval kb", 10, 40, retrieval | {"gen_ai.retrieval.documents": json.dumps(DOCS)})
    child(root, "chat 1", 100, 200, _llm(100, 20, [SYSTEM, USER], [ASKS]))
    tool = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup_order",
        "gen_ai.tool.call.id": "call_1",
    }
    tool |= {"gen_ai.tool.call.arguments": '{"order_id": "A1"}', "gen_ai.tool.call.result": '{"status": "shipped"}'}
    child(root, "lookup_order", 300, 50, tool)
    answer = {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    child(root, "chat 2", 400, 500, _llm(150, 30, [SYSTEM, USER, ASKS, TOOL], [answer]))
    root.end(end_time=t0 + 1000 * MS)
    a = format(root.get_span_context().trace_id, "032x")
    ids["answer_ticket"] = format(root.get_span_context().span_id, "016x")

    other = tracer.start_span("answer_ticket", start_time=t0 + 2000 * MS, attributes=task)
    s = tracer.start_span(
        "retrieval kb",
        context=trace.set_span_in_context(other),
        start_time=t0 + 2010 * MS,
        attributes=retrieval | {"gen_ai.retrieval.documents": "[]"},
    )
    s.end(end_time=t0 + 2050 * MS)
    other.end(end_time=t0 + 2300 * MS)
    b = format(other.get_span_context().trace_id, "032x")
    sent = list(memory.get_finished_spans())
    provider.shutdown()
    return a, b, ids, sent


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    data: Path = tmp_path_factory.mktemp("targets") / "data"
    collector, stop = start_collector(data)
    try:
        (data / "prices.toml").write_text(PRICES)
        t0 = time.time_ns() // 1000 * 1000 - 60 * 10**9
        a, b, ids, sent = _send(collector.http, t0)
        collector.flush()
        t = datetime.fromtimestamp(t0 / 1e9, UTC)
        yield Lake(Analytics(data), a, b, ids, t, sent, collector.http, collector.flush)
    finally:
        stop()


def _no_at(calls: Any) -> list[dict[str, Any]]:
    return [dict(c) for c in calls]


def test_trace_target_by_hand(lake: Lake) -> None:
    d = trace_detail(lake.an, lake.a, "shop")
    assert d is not None
    t = from_detail(d)
    ids = lake.ids
    assert (t.project, t.trace_id, t.span_id, t.item_id, t.category) == ("shop", lake.a, None, None, None)
    assert (t.input, t.output, t.expected_output) == (QUESTION, ANSWER, None)
    assert (t.task_name, t.outcome, t.model, t.service_name) == ("answer_ticket", "success", "gpt-4o-mini", "support")
    assert t.latency_ms == 1000.0
    assert t.cost_usd == pytest.approx(0.00035)
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (250, 50, 300)
    assert t.start_time == lake.t0
    rid = ids["retrieval kb"]
    assert [dict(x) for x in t.documents] == [
        {"id": "d1", "score": 0.9, "content": "Orders ship in 1 day", "metadata": None, "span_id": rid},
        {"id": "d2", "score": 0.5, "content": "Refunds take 5 days", "metadata": None, "span_id": rid},
    ]
    assert [dict(r) for r in t.retrievals] == [{"span_id": rid, "name": "retrieval kb", "documents": 2}]
    assert _no_at(t.tool_calls) == [
        {
            "name": "lookup_order",
            "arguments": {"order_id": "A1"},
            "id": "call_1",
            "span_id": ids["lookup_order"],
            "llm_span_id": ids["chat 1"],
            "result": {"status": "shipped"},
        }
    ]
    call = {"id": "call_1", "name": "lookup_order", "arguments": '{"order_id":"A1"}'}
    assert [dict(m) for m in t.messages] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": '{"status":"shipped"}', "tool_call_id": "call_1"},
        {"role": "assistant", "content": ANSWER},
    ]
    assert [s["name"] for s in t.spans] == ["answer_ticket", "retrieval kb", "chat 1", "lookup_order", "chat 2"]


def test_span_target_by_hand(lake: Lake) -> None:
    d = trace_detail(lake.an, lake.a, "shop")
    assert d is not None
    ids = lake.ids
    t = from_detail(d, ids["chat 1"].upper())  # ids are matched case-insensitively
    assert (t.span_id, t.category, t.task_name, t.outcome) == (ids["chat 1"], "llm", "answer_ticket", "success")
    assert (t.input, t.output) == (QUESTION, None)  # the call answered with a tool call only
    assert (t.latency_ms, t.input_tokens, t.output_tokens, t.total_tokens) == (200.0, 100, 20, 120)
    assert t.cost_usd == pytest.approx(0.00014)
    assert [x["id"] for x in t.documents] == ["d1", "d2"]  # retrieved before the call started
    assert [r["documents"] for r in t.retrievals] == [2]
    assert [c["name"] for c in t.tool_calls] == ["lookup_order"]
    assert [m["role"] for m in t.messages] == ["system", "user", "assistant"]
    tool = from_detail(d, ids["lookup_order"])
    assert (tool.category, tool.latency_ms, tool.cost_usd, tool.total_tokens) == ("tool", 50.0, None, None)
    assert tool.input == '{"order_id": "A1"}' and tool.output == '{"status": "shipped"}'
    assert [c["span_id"] for c in tool.tool_calls] == [ids["lookup_order"]]
    retrieval = from_detail(d, ids["retrieval kb"])
    assert [r["span_id"] for r in retrieval.retrievals] == [ids["retrieval kb"]] and retrieval.tool_calls == []
    with pytest.raises(LookupError, match="has no span"):
        from_detail(d, "0" * 16)


def test_load_targets_many_traces_at_once(lake: Lake) -> None:
    unknown = "f" * 32
    targets = load_targets(lake.an, "shop", [lake.b, lake.a.upper(), unknown, lake.a], around=lake.t0)
    assert [t.trace_id for t in targets] == [lake.b, lake.a]  # in the order asked, each once, unknown left out
    d = trace_detail(lake.an, lake.a, "shop")
    assert d is not None
    # the batch read builds what the trace view's read does; its spans keep fewer columns
    full = from_detail(d)
    assert replace(targets[1], spans=()) == replace(full, spans=())
    kept = set(targets[1].spans[0])
    assert {"resource_attributes", "ingested_at", "links"}.isdisjoint(kept) and {"tool_name", "content"} <= kept
    assert [{k: s[k] for k in kept} for s in full.spans] == [dict(s) for s in targets[1].spans]
    b = targets[0]
    assert (b.latency_ms, b.cost_usd, b.total_tokens, b.documents, b.tool_calls) == (300.0, None, 0, [], [])
    assert [dict(r) for r in b.retrievals] == [
        {"span_id": b.spans[1]["span_id"], "name": "retrieval kb", "documents": 0}
    ]
    # whole lake (no hint) gives the same
    assert load_targets(lake.an, "shop", [lake.a]) == [targets[1]]
    assert load_targets(lake.an, "other", [lake.a]) == []
    # one target per span of a category, in tree order
    llm = load_targets(lake.an, "shop", [lake.a, lake.b], target="llm", around=(lake.t0, lake.t0))
    assert [t.span_id for t in llm] == [lake.ids["chat 1"], lake.ids["chat 2"]]
    assert llm[1].output == ANSWER and llm[1].cost_usd == pytest.approx(0.00021)
    assert [t.trace_id for t in load_targets(lake.an, "shop", [lake.a, lake.b], target="retrieval")] == [
        lake.a,
        lake.b,
    ]
    with pytest.raises(ValueError, match="target must be one of trace, llm"):
        load_targets(lake.an, "shop", [lake.a], target="span")


def test_code_evaluators_on_the_real_targets(lake: Lake) -> None:
    a, b = load_targets(lake.an, "shop", [lake.a, lake.b], around=lake.t0)
    empty = Evaluator(name="empty", kind="retrieval_empty")
    assert evaluate(empty, a) == Result("pass")
    assert evaluate(empty, b) == Result(
        "fail", None, "retrieval_miss", "1 retrieval returned no document (retrieval kb)"
    )
    schema = {"type": "object", "required": ["order_id"]}
    tool = Evaluator(name="tool", kind="tool_call", params={"tool": "lookup_order", "arguments_schema": schema})
    assert evaluate(tool, a) == Result("pass")
    reply = Evaluator(name="reply", kind="json_schema", params={"schema": {"required": ["answer"]}})
    assert evaluate(reply, a) == Result("pass")
    assert evaluate(reply, b) is None  # no output recorded
    slow = Evaluator(name="slow", kind="threshold", params={"metric": "latency_ms", "max": 500})
    assert evaluate(slow, a) == Result("fail", 1000.0, "too_slow", "latency_ms 1000 > max 500")


def test_from_example_by_hand() -> None:
    row = {
        "example_id": "ab" * 16 + ":" + "12" * 8,
        "project": "shop",
        "dataset": "refunds",
        "trace_id": "ab" * 16,
        "span_id": "12" * 8,
        "input": "Can I get a refund?",
        "input_messages": json.dumps(
            [
                {"role": "user", "content": "Can I get a refund?"},
                {"role": "assistant", "tool_calls": [{"id": "c9", "name": "refund", "arguments": '{"amount": 5}'}]},
            ]
        ),
        "context": ["Refunds take 5 days"],
        "context_documents": json.dumps(
            [{"id": "d2", "score": 0.5, "content": "Refunds take 5 days", "metadata": None, "span_name": "kb"}]
        ),
        "actual_output": "Yes, within 5 days.",
        "expected_output": "Yes: refunds take 5 days.",
        "model": "gpt-4o-mini",
        "prompt_name": "support",
        "prompt_version": "v2",
        "service_name": "support",
        "trace_start": datetime(2025, 6, 2, 10, tzinfo=UTC),
        "metadata": json.dumps(
            {
                "category": "llm",
                "duration_ms": 812.5,
                "cost_usd": 0.0021,
                "input_tokens": 120,
                "output_tokens": 40,
                "trace_name": "answer_ticket",
                "trace_outcome": "failure",
            }
        ),
    }
    t = from_example("shop", row)
    assert (t.item_id, t.trace_id, t.span_id, t.category) == (row["example_id"], "ab" * 16, "12" * 8, "llm")
    assert (t.input, t.output, t.expected_output) == (
        "Can I get a refund?",
        "Yes, within 5 days.",
        "Yes: refunds take 5 days.",
    )
    assert (t.latency_ms, t.cost_usd, t.input_tokens, t.output_tokens, t.total_tokens) == (812.5, 0.0021, 120, 40, 160)
    assert (t.task_name, t.outcome, t.model, t.prompt_version) == ("answer_ticket", "failure", "gpt-4o-mini", "v2")
    assert [dict(x) for x in t.documents] == [
        {"id": "d2", "score": 0.5, "content": "Refunds take 5 days", "metadata": None, "span_id": None}
    ]
    assert [dict(r) for r in t.retrievals] == [{"span_id": None, "name": "kb", "documents": 1}]
    assert [c["arguments"] for c in t.tool_calls] == [{"amount": 5}]
    assert t.key == ("shop", "ab" * 16, "12" * 8)
    # a whole-trace example with only the text columns (an older export): documents from `context`
    bare = from_example("shop", {"example_id": "cd" * 16, "context": ["x"], "metadata": "not json"})
    assert (bare.trace_id, bare.span_id, bare.latency_ms, bare.messages) == ("cd" * 16, None, None, [])
    assert [x["content"] for x in bare.documents] == ["x"]
    eq = Evaluator(name="eq", kind="fuzzy", params={"threshold": 0.5})
    # matching blocks "Yes", " ", "t", " 5 days." = 13 characters of 19 + 25: 2 * 13 / 44
    assert evaluate(eq, t) == Result("pass", round(26 / 44, 6))


def test_a_span_received_twice_counts_once(lake: Lake) -> None:
    """Last in this module: it sends trace A's tool span and chat #2 again (an exporter retry)."""
    again = [s for s in lake.sent if s.name in ("lookup_order", "chat 2")]
    assert OTLPSpanExporter(endpoint=f"{lake.http}/v1/traces").export(again) == SpanExportResult.SUCCESS
    lake.flush()
    stored = lake.an.lake.query("SELECT count(*) AS n FROM spans_raw WHERE trace_id = $t", {"t": lake.a})
    assert stored.to_pylist() == [{"n": 7}]  # 5 spans, 2 of them twice
    (a,) = load_targets(lake.an, "shop", [lake.a], around=lake.t0)
    assert [s["name"] for s in a.spans] == ["answer_ticket", "retrieval kb", "chat 1", "lookup_order", "chat 2"]
    assert (a.total_tokens, len(a.tool_calls)) == (300, 1)
    assert a.cost_usd == pytest.approx(0.00035)
