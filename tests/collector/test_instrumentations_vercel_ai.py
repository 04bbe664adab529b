"""The Vercel AI SDK (`ai`, experimental_telemetry) → @opentelemetry/sdk-node → the real collector.

tests/collector/vercel_ai/app.cjs runs with node, once per trace exporter (OTLP protobuf over
HTTP, OTLP JSON over HTTP, OTLP gRPC), all at once, with @ai-sdk/openai's chat model pointed at
spanlake's fake OpenAI server (spanlake.demo.fake_openai; its rule in its docstring). The npm
packages are installed by scripts/node-tools (exact versions, package-lock.json) into a cache
folder, never at test time. Expected numbers are worked out by hand from the fake server's rule
below; cost from genai-prices' own `calc_price`, computed here.

The SDK traces each model call as `ai.<fn>.doGenerate` / `.doStream` and wraps the calls of one
`generateText` (and its tool runs) in an `ai.<fn>` span whose `ai.usage.*` repeat the calls'
usage summed. Normalization reads the do* spans as the LLM calls and the span around them as
a chain (docs/instrumentations.md, "Vercel AI SDK"): each call counts once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.reports.cost import call_totals, task_totals, unpriced
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector.instrumented_runs import (
    Launch,
    Runs,
    check_observed,
    observed_lines,
    run_configurations,
)

ROOT = Path(__file__).parents[2]
APP = ROOT / "tests" / "collector" / "vercel_ai"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spanlake-tests"
# Exporter package (exporter-trace-otlp-<name>) → the collector endpoint it sends to.
CONFIGS = {"proto": "http", "json": "http", "grpc": "grpc"}
SCENARIOS = ("chat", "stream", "tools", "object", "error")

MODEL = "gpt-5-nano"  # as app.cjs; answered as gpt-5-nano-2025-01-01, which genai-prices prices as gpt-5-nano
RESPONSE_MODEL = MODEL + "-2025-01-01"
QUESTION = "What is OpenTelemetry in one line?"  # 6 words; the system prompt "You are terse." has 3
WEATHER = "What is the weather in Paris today?"  # 7 words


def node_modules() -> Path:
    """The cache folder scripts/node-tools filled from vercel_ai/package-lock.json (skips without it)."""
    digest = hashlib.sha256((APP / "package.json").read_bytes() + (APP / "package-lock.json").read_bytes())
    folder = CACHE / f"vercel-ai-{digest.hexdigest()[:12]}"
    if shutil.which("node") is None:
        pytest.skip("Vercel AI SDK: node is not installed")
    if not (folder / ".complete").exists():
        pytest.skip(f"Vercel AI SDK: its npm packages are not in {folder}: run scripts/node-tools")
    return folder / "node_modules"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    env = {"NODE_PATH": str(node_modules())}

    def launch(fake: FakeOpenAI, exporter: str, receiver: str) -> Launch:
        argv = ["node", str(APP / "app.cjs"), "--url", fake.url]
        cleared = ("OTEL_", "OPENAI_", "NODE_")
        return Launch(argv, receiver, cleared, env, protocol=exporter, project=f"vercel-{exporter}", cwd=APP)

    with run_configurations(tmp_path_factory.mktemp("vercel") / "data", FakeOpenAI(), CONFIGS, launch) as r:
        yield r


def spans(runs: Runs, config: str, scenario: str) -> list[dict[str, Any]]:
    """The SDK's spans of one scenario, in start order (the scenario span left out)."""
    return runs.collector.query(
        "SELECT * FROM spans WHERE project = ? AND trace_id = ? AND name NOT LIKE 'scenario %' "
        "ORDER BY start_time_unix_nano, name",
        [f"vercel-{config}", runs.trace(config, scenario)],
    )


# Expected usage per model call, from the fake server's rule: input = words of every message
# (system 3 + question 6; the tool round adds the tool result "Sunny in Paris", 3); cached =
# input // 2; output = words of the reply + reasoning, reasoning = number of input messages.
# Reply "Fake reply: <question>" (8 words; 9 with the weather question), a tool call's text
# 'get_weather {"location": "Paris"}' (3), the object '{"answer": "<question>"}' (7).
CHAT = {"in": 9, "read": 4, "out": 8 + 2, "reasoning": 2, "finish": ["stop"]}
TOOL_CALL = {"in": 7, "read": 3, "out": 3 + 1, "reasoning": 1, "finish": ["tool-calls"]}  # the SDK's spelling
TOOL_ANSWER = {"in": 7 + 0 + 3, "read": 5, "out": 9 + 3, "reasoning": 3, "finish": ["stop"]}
# generateObject reports only promptTokens / completionTokens: the fake's 3 cached and 1
# reasoning token are in its counts but not broken out (docs/instrumentations.md).
OBJECT = {"in": 6, "read": None, "out": 7 + 1, "reasoning": None, "finish": ["stop"]}
CALLS = {
    "chat": ("ai.generateText", [("ai.generateText.doGenerate", CHAT)]),
    "stream": ("ai.streamText", [("ai.streamText.doStream", CHAT)]),
    "tools": (
        "ai.generateText",
        [("ai.generateText.doGenerate", TOOL_CALL), ("ai.toolCall", None), ("ai.generateText.doGenerate", TOOL_ANSWER)],
    ),
    "object": ("ai.generateObject", [("ai.generateObject.doGenerate", OBJECT)]),
}


def _cost(exp: dict[str, Any]) -> float:
    usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["read"], output_tokens=exp["out"])
    return float(calc_price(usage, MODEL, provider_id="openai").total_price)


def _usage(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "in": row["input_tokens"],
        "read": row["cache_read_tokens"],
        "out": row["output_tokens"],
        "reasoning": row["reasoning_tokens"],
        "finish": row["finish_reasons"],
    }


@pytest.mark.parametrize("config", CONFIGS)
def test_calls_are_normalized(runs: Runs, config: str) -> None:
    """Each do* span is one LLM call with its own usage; the span around them is a chain."""
    for scenario, (outer, children) in CALLS.items():
        got = spans(runs, config, scenario)
        assert [s["name"] for s in got] == [outer] + [name for name, _ in children], scenario
        top = got[0]
        assert top["parent_span_id"] is not None and {s["parent_span_id"] for s in got[1:]} == {top["span_id"]}
        for row, (_, exp) in zip(got[1:], children, strict=True):
            assert (row["kind"], row["scope_name"], row["status_code"]) == ("INTERNAL", "ai", "UNSET")
            if exp is None:
                continue
            assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai"), scenario
            assert (row["request_model"], row["response_model"]) == (MODEL, RESPONSE_MODEL), scenario
            assert _usage(row) == exp, scenario
            assert (row["cache_write_tokens"], row["total_tokens"]) == (None, exp["in"] + exp["out"]), scenario
        # The chain repeats its calls' usage summed (as the SDK reports it), and counts nowhere.
        calls = [exp for _, exp in children if exp is not None]
        assert (top["category"], top["operation"], top["provider"]) == ("chain", None, "openai"), scenario
        assert (top["request_model"], top["response_model"]) == (MODEL, None)
        assert (top["input_tokens"], top["output_tokens"]) == (
            sum(c["in"] for c in calls),
            sum(c["out"] for c in calls),
        ), scenario
        assert top["finish_reasons"] == calls[-1]["finish"]


def test_tool_call_is_a_tool_step(runs: Runs) -> None:
    _, _, tool, _ = spans(runs, "proto", "tools")
    assert (tool["category"], tool["operation"], tool["tool_name"]) == ("tool", "execute_tool", "get_weather")
    assert tool["input_tokens"] is None
    content = json.loads(tool["content"])
    assert json.loads(content["ai.toolCall.args"]) == {"location": "Paris"}
    assert json.loads(content["ai.toolCall.result"]) == "Sunny in Paris"


def test_function_id_names_no_task(runs: Runs) -> None:
    """`functionId` and metadata go on every span of the call, calls included: not a task name
    (that would make the calls tasks), and metadata keys are kept as sent, not read."""
    for row in spans(runs, "proto", "chat"):
        attrs = json.loads(row["attributes"])
        assert (attrs["ai.telemetry.functionId"], attrs["resource.name"]) == ("answer-question", "answer-question")
        assert attrs["operation.name"] == f"{attrs['ai.operationId']} answer-question"
        assert attrs["ai.telemetry.metadata.session.id"] == "s-42"
        assert (row["task_name"], row["session_id"]) == (None, None)
    assert [r["category"] for r in spans(runs, "proto", "chat")] == ["chain", "llm"]


def test_stream_time_to_first_token(runs: Runs) -> None:
    """The doStream span's `ai.stream.firstChunk` event gives the time to first token."""
    _, call = spans(runs, "proto", "stream")
    (first,) = [e for e in json.loads(call["events"]) if e["name"] == "ai.stream.firstChunk"]
    want = (first["time_unix_nano"] - call["start_time_unix_nano"]) / 1e6
    assert call["time_to_first_token_ms"] == pytest.approx(want, abs=1e-3)
    assert 0 < call["time_to_first_token_ms"] <= call["duration_ms"]


def test_failed_call(runs: Runs) -> None:
    outer, call = spans(runs, "proto", "error")
    for row in (outer, call):
        assert (row["status_code"], row["error_type"], row["request_model"]) == ("ERROR", "AI_APICallError", "fail-500")
        assert (row["input_tokens"], row["response_model"]) == (None, None)
    assert (outer["category"], call["category"]) == ("chain", "llm")


def test_tokens_and_cost_count_once(runs: Runs) -> None:
    """Every total counts each model call once, with its own numbers: the traces view, the trace
    detail, the trace list, the cost report and task cost (the chain's repeated usage counts nowhere). One
    exporter is enough here: test_exporters_agree shows the rows of the others are the same."""
    config = "proto"
    project = f"vercel-{config}"
    an = Analytics(runs.collector.data_dir)
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(project=project), Page(limit=50)).rows.to_dicts()}
    for scenario, (_, children) in CALLS.items():
        calls = [exp for _, exp in children if exp is not None]
        want = (len(calls), sum(c["in"] for c in calls), sum(c["out"] for c in calls))
        trace_id = runs.trace(config, scenario)
        (trace,) = runs.collector.query("SELECT * FROM traces WHERE project = ? AND trace_id = ?", [project, trace_id])
        assert (trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == want, scenario
        detail = trace_detail(an, trace_id, project)
        assert detail is not None
        summary = detail.summary()
        assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == want, scenario
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == want, scenario
        cost = sum(_cost(c) for c in calls)
        for got in (summary["cost_usd"], row["cost_usd"]):
            assert got == pytest.approx(cost, rel=1e-9, abs=1e-12), scenario
        assert [s["cost_usd"] for s in detail.spans if s["category"] == "chain"] == [None], scenario
        per_call = [s["cost_usd"] for s in detail.spans if s["category"] == "llm"]
        assert per_call == pytest.approx([_cost(c) for c in calls], rel=1e-9, abs=1e-12), scenario
    # The cost report: 5 calls (the failed one has no usage, so it is no billable call).
    (totals,) = call_totals(an, Filters(project=project)).to_dicts()
    by_hand = {
        "calls": 5,
        "input_tokens": 9 + 9 + 7 + 10 + 6,
        "cache_read_tokens": 4 + 4 + 3 + 5,
        "output_tokens": 10 + 10 + 4 + 12 + 8,
        "reasoning_tokens": 2 + 2 + 1 + 3,
        "unpriced_calls": 0,
    }
    assert {k: totals[k] for k in by_hand} == by_hand
    everything = [CHAT, CHAT, TOOL_CALL, TOOL_ANSWER, OBJECT]
    assert totals["cost_usd"] == pytest.approx(sum(_cost(c) for c in everything), rel=1e-9)
    # Cached tokens are priced at their own rate: the report is cheaper than all input at full price.
    full = sum(_cost({**c, "read": None}) for c in everything)
    assert totals["cost_usd"] < full
    assert unpriced(an, Filters(project=project)).is_empty()
    # Task cost: each scenario's trace is one task (its root span), costing its calls once.
    (tasks,) = task_totals(an, Filters(project=project)).to_dicts()
    assert (tasks["tasks"], tasks["task_unpriced_calls"]) == (len(SCENARIOS), 0)
    assert tasks["task_cost_usd"] == pytest.approx(sum(_cost(c) for c in everything), rel=1e-9)


def test_messages_are_content(runs: Runs) -> None:
    """Prompts and answers land in `content`, and the trace detail reads them as a conversation."""
    first, _, second = [s for s in spans(runs, "proto", "tools") if s["name"] != "ai.generateText"]
    content = json.loads(first["content"])
    assert set(content) == {"ai.prompt.messages", "ai.prompt.tools", "ai.response.toolCalls"}
    (call,) = json.loads(content["ai.response.toolCalls"])
    assert (call["toolName"], json.loads(call["input"])) == ("get_weather", {"location": "Paris"})
    assert json.loads(content["ai.prompt.tools"][0])["name"] == "get_weather"  # a string array attribute
    assert json.loads(second["content"])["ai.response.text"] == f"Fake reply: {WEATHER}"
    message_keys = {"ai.prompt", "ai.prompt.messages", "ai.prompt.tools", "ai.response.text", "ai.response.toolCalls"}
    for s in spans(runs, "proto", "tools"):
        assert not message_keys & set(json.loads(s["attributes"])), s["name"]
    detail = trace_detail(an := Analytics(runs.collector.data_dir), runs.trace("proto", "tools"), "vercel-proto")
    assert detail is not None
    brief = [
        (m["role"], m["content"], [(c["name"], c["arguments"]) for c in m["tool_calls"]]) for m in detail.conversation
    ]
    assert brief == [
        ("user", WEATHER, []),
        ("assistant", None, [("get_weather", '{"location": "Paris"}')]),
        ("tool", "Sunny in Paris", []),
        ("assistant", f"Fake reply: {WEATHER}", []),
    ]
    chat = trace_detail(an, runs.trace("proto", "chat"), "vercel-proto")
    assert chat is not None
    assert [(m["role"], m["content"]) for m in chat.conversation] == [
        ("system", "You are terse."),  # the prompt as the SDK hands it to the provider
        ("user", QUESTION),
        ("assistant", f"Fake reply: {QUESTION}"),
    ]


def test_exporters_agree(runs: Runs) -> None:
    """Protobuf, JSON and gRPC carry the same spans: the normalized rows are equal."""
    columns = ("name", "category", "operation", "provider", "request_model", "response_model", "input_tokens")
    columns += ("output_tokens", "cache_read_tokens", "reasoning_tokens", "finish_reasons", "tool_name", "error_type")
    rows = {
        config: [tuple(s[c] for c in columns) for scenario in SCENARIOS for s in spans(runs, config, scenario)]
        for config in CONFIGS
    }
    assert rows["proto"] == rows["json"] == rows["grpc"]
    assert len(rows["proto"]) == 2 + 2 + 4 + 2 + 2


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-vercel:begin -->", "<!-- observed-vercel:end -->"


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    blocks = {}
    for config in CONFIGS:
        rows = runs.observed(f"vercel-{config}")
        out = []
        for name in sorted({r["name"] for r in rows}):
            some = [r for r in rows if r["name"] == name]
            out.append(f"- `{name}` ({some[0]['kind']}, scope `{some[0]['scope_name']}`)")
            out += observed_lines(some, names=False, indent="  ")
        blocks[config] = "\n".join(out)
    assert blocks["proto"] == blocks["json"] == blocks["grpc"]  # the exporters carry the same keys
    exporters = "OTLP/HTTP protobuf, OTLP/HTTP JSON and OTLP/gRPC (the same keys over each)"
    check_observed(runs, DOC, BEGIN, END, f"Over {exporters}:\n\n{blocks['proto']}\n")
