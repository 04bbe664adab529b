"""Real Pydantic AI agents with their own OpenTelemetry GenAI output → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_pydantic_ai.py):
`Agent.instrument_all(InstrumentationSettings(tracer_provider=...))` on a plain OTel SDK tracer
provider (no logfire), the model on spanlake's fake OpenAI server through the Responses API
(`OpenAIResponsesModel`, what `openai:<model>` picks) or Chat Completions (`OpenAIChatModel`).
Each scenario is one agent run with nothing around it. The expected numbers come from the fake's
documented rule (tests/collector/agent_runs.py), the cost from genai-prices' own `calc_price`,
computed here (docs/instrumentations.md, "Pydantic AI").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.collector import instrumented_pydantic_ai as client
from tests.collector.agent_runs import (
    AFTER_TOOL,
    CHAT,
    FORECAST,
    MODEL,
    QUESTION,
    REPLY,
    RESPONSE_MODEL,
    ROOT,
    SYSTEM,
    TOOL_ARGUMENTS,
    TOOL_CALL,
    TOOL_CALL_ID,
    WEATHER_REPLY,
    AgentRuns,
    Call,
    Config,
    agent_runs,
    content,
    render_observed,
)
from tests.collector.instrumented_runs import check_observed

CONFIGS = {
    "responses": Config("responses", "http"),
    "chat": Config("chat", "grpc"),
    "chat_openai_v2": Config("chat_openai_v2", "http"),
}
SCOPE, OPENAI_V2_SCOPE = "pydantic-ai", "opentelemetry.instrumentation.openai_v2"
ANSWER = json.dumps({"answer": client.STRUCTURED})  # '{"answer": "Name one tracing standard"}': 5 words
STRUCTURED = Call(input=3 + 4, cached=3, reasoning=2, output=5 + 2)
CALLS: dict[str, list[Call]] = {
    "chat": [CHAT],
    "tools": [TOOL_CALL, AFTER_TOOL],
    "stream": [CHAT],
    "structured": [STRUCTURED],
}
# The finish reason of the tool call: the Responses API has none (a completed response is "stop");
# Pydantic AI writes OTel's "tool_call" for Chat Completions' "tool_calls".
TOOL_FINISH = {"responses": "stop", "chat": "tool_call"}
AGENT_SPAN = f"invoke_agent {client.AGENT}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentRuns]:
    data = tmp_path_factory.mktemp("pydantic_ai") / "data"
    with agent_runs("tests.collector.instrumented_pydantic_ai", CONFIGS, data) as r:
        yield r


def _outline(config: str, scenario: str) -> list[str]:
    """The trace view's tree of one run: the agent run span, a span per model call and per tool call
    (with openai-v2 on, its own span under each model call)."""
    model = "fail-500" if scenario == "error" else MODEL
    call = [f"  chat {model} [llm]"] + ([f"    chat {model} [llm]"] if config == "chat_openai_v2" else [])
    if scenario == "tools":
        return [f"{AGENT_SPAN} [agent]", *call, "  execute_tool get_weather [tool]", *call]
    return [f"{AGENT_SPAN} [agent]", *call]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_tree_and_categories(runs: AgentRuns, config: str) -> None:
    for scenario in client.SCENARIOS:
        assert runs.outline(config, scenario) == _outline(config, scenario), scenario


def test_every_call_reached_the_fake_server_once(runs: AgentRuns) -> None:
    """No retries, nothing sent elsewhere: 6 model calls per configuration (the failed one once)."""
    assert runs.model_requests == len(CONFIGS) * (sum(len(c) for c in CALLS.values()) + 1)


@pytest.mark.parametrize("config", list(TOOL_FINISH))
def test_llm_calls_are_normalized(runs: AgentRuns, config: str) -> None:
    for scenario, calls in CALLS.items():
        spans = runs.spans(config, scenario, "llm")
        assert len(spans) == len(calls), scenario
        for i, (span, call) in enumerate(zip(spans, calls, strict=True)):
            assert (span["name"], span["kind"], span["scope_name"]) == (f"chat {MODEL}", "CLIENT", SCOPE)
            assert (span["operation"], span["provider"]) == ("chat", "openai")
            assert (span["request_model"], span["response_model"]) == (MODEL, RESPONSE_MODEL)
            assert (span["status_code"], span["error_type"]) == ("UNSET", None)
            got = (span["input_tokens"], span["output_tokens"], span["total_tokens"])
            assert got == (call.input, call.output, call.input + call.output), scenario
            # Cached and reasoning tokens; no cache-write count (OpenAI's 0 is not passed on).
            assert (span["cache_read_tokens"], span["cache_write_tokens"]) == (call.cached, None)
            assert span["reasoning_tokens"] == call.reasoning
            finish = TOOL_FINISH[config] if (scenario, i) == ("tools", 0) else "stop"
            assert span["finish_reasons"] == [finish], scenario
            ttft = span["time_to_first_token_ms"]  # gen_ai.client.operation.time_to_first_chunk, streams only
            assert (0 < ttft <= span["duration_ms"]) if scenario == "stream" else ttft is None, scenario
            # spanlake's price and Pydantic AI's own (operation.cost, from genai-prices too), beside it.
            for cost in (span["cost_usd"], span["reported_cost"]):
                assert cost == pytest.approx(call.cost(), rel=1e-9, abs=1e-12), scenario


@pytest.mark.parametrize("config", list(TOOL_FINISH))
def test_the_task_is_the_agent_run(runs: AgentRuns, config: str) -> None:
    """The agent run span is the trace's root and its task; its calls, tokens and cost are its model
    calls', once: the run's own totals are `gen_ai.aggregated_usage.*`, which no figure reads."""
    for scenario in client.SCENARIOS:
        calls = CALLS.get(scenario, [])
        detail = runs.detail(config, scenario)
        root, task, summary = detail.spans[0], runs.task(config, scenario), detail.summary()
        assert (root["name"], root["category"], root["input_tokens"]) == (AGENT_SPAN, "agent", None)
        assert (task["span_id"], task["task_name"], summary["name"]) == (root["span_id"], AGENT_SPAN, AGENT_SPAN)
        tokens = (sum(c.input for c in calls), sum(c.output for c in calls))
        assert (task["llm_calls"], task["input_tokens"], task["output_tokens"]) == (len(calls), *tokens), scenario
        spans = len(calls) or 1  # the trace view counts the failed call too
        assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == (spans, *tokens)
        cost = sum(c.cost() for c in calls)
        for got in (task["cost_usd"], summary["cost_usd"]):
            assert got == (pytest.approx(cost, rel=1e-9) if calls else None), scenario
        # A failed run fails its task: the agent run span's status is ERROR.
        outcome = "failure" if scenario == "error" else "unknown"
        assert (task["outcome"], summary["outcome"]) == (outcome, outcome), scenario
        if calls:
            aggregated = {k.removeprefix("gen_ai.aggregated_usage."): v for k, v in root["attributes"].items()}
            assert (aggregated["input_tokens"], aggregated["output_tokens"]) == tokens
            assert aggregated["details.reasoning_tokens"] == sum(c.reasoning for c in calls)
        # One conversation id per run on every span: the session.
        assert len({s["session_id"] for s in detail.spans}) == 1 and root["session_id"]


@pytest.mark.parametrize("config", list(TOOL_FINISH))
def test_failed_model_call(runs: AgentRuns, config: str) -> None:
    (call,) = runs.spans(config, "error", "llm")
    root = runs.detail(config, "error").spans[0]
    for span in (call, root):
        assert (span["status_code"], span["error_type"]) == ("ERROR", "pydantic_ai.exceptions.ModelServerError")
        assert span["status_message"].startswith("ModelServerError: status_code: 500, model_name: fail-500")
    assert (call["request_model"], call["response_model"], call["input_tokens"]) == ("fail-500", None, None)
    assert call["cost_usd"] is None


def _json(span: dict[str, Any], key: str) -> Any:
    value = content(span)[key]
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize("config", list(TOOL_FINISH))
def test_tool_call_and_messages(runs: AgentRuns, config: str) -> None:
    (chat,) = runs.spans(config, "chat", "llm")
    assert _json(chat, "gen_ai.system_instructions") == [{"type": "text", "content": SYSTEM}]
    assert _json(chat, "gen_ai.input.messages") == [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    text = {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    assert _json(chat, "gen_ai.output.messages") == [text]
    first, second = runs.spans(config, "tools", "llm")
    (tool,) = runs.spans(config, "tools", "tool")
    ((out,),) = [_json(first, "gen_ai.output.messages")]
    ((part,),) = [out["parts"]]
    assert (part["type"], part["id"], part["name"]) == ("tool_call", TOOL_CALL_ID, "get_weather")
    assert json.loads(part["arguments"]) == TOOL_ARGUMENTS  # the model's arguments string, as sent
    assert [d["name"] for d in _json(first, "gen_ai.tool.definitions")] == ["get_weather"]
    assert (tool["tool_name"], tool["attributes"]["gen_ai.tool.call.id"]) == ("get_weather", TOOL_CALL_ID)
    assert (_json(tool, "gen_ai.tool.call.arguments"), content(tool)["gen_ai.tool.call.result"]) == (
        TOOL_ARGUMENTS,
        FORECAST,
    )
    answer = _json(second, "gen_ai.input.messages")[-1]["parts"]
    assert answer == [{"type": "tool_call_response", "id": TOOL_CALL_ID, "name": "get_weather", "result": FORECAST}]
    root = runs.detail(config, "tools").spans[0]
    assert (content(root)["final_result"], len(_json(root, "pydantic_ai.all_messages"))) == (WEATHER_REPLY, 4)
    (structured,) = runs.spans(config, "structured", "llm")
    (reply,) = _json(structured, "gen_ai.output.messages")
    assert reply["parts"] == [{"type": "text", "content": ANSWER}]
    assert json.loads(content(structured)["model_request_parameters"])["output_mode"] == "native"


# --- one model call, two LLM spans: Pydantic AI's and opentelemetry-instrumentation-openai-v2's ---


def test_openai_v2_adds_a_child_llm_span(runs: AgentRuns) -> None:
    """With openai-v2 on too, every model call has a second LLM span, a child of Pydantic AI's,
    both with the call's input and output tokens (openai-v2's without cached or reasoning ones)."""
    for scenario, calls in {**CALLS, "error": []}.items():
        spans = runs.detail("chat_openai_v2", scenario).spans
        by_id = {s["span_id"]: s for s in spans}
        inner = [s for s in spans if s["scope_name"] == OPENAI_V2_SCOPE]
        assert len(inner) == max(len(calls), 1), scenario
        for span in inner:
            outer = by_id[span["parent_span_id"]]
            assert (outer["scope_name"], span["name"], span["category"]) == (SCOPE, outer["name"], "llm")
            want = (outer["request_model"], outer["response_model"], outer["input_tokens"], outer["output_tokens"])
            got = (span["request_model"], span["response_model"], span["input_tokens"], span["output_tokens"])
            assert got == want, scenario
            assert (span["cache_read_tokens"], span["reasoning_tokens"]) == (None, None)
            # Pydantic AI's span knows more usage (cached, reasoning): it counts, openai-v2's repeats
            # it (storage/call_pairs.py); a failed call's spans know none: the nearer the wire counts.
            counted, repeated = (outer, span) if calls else (span, outer)
            assert (counted["duplicate_of"], repeated["duplicate_of"]) == (None, counted["span_id"]), scenario
            finish = {"tool_call": ["tool_calls"], "stop": None if scenario == "stream" else ["stop"]}
            assert span["finish_reasons"] == (finish[outer["finish_reasons"][0]] if calls else None), scenario
    (failed,) = [s for s in runs.detail("chat_openai_v2", "error").spans if s["scope_name"] == OPENAI_V2_SCOPE]
    assert (failed["status_code"], failed["error_type"]) == ("ERROR", "InternalServerError")


def test_one_call_two_spans_counts_once(runs: AgentRuns) -> None:
    """Each model call counts once, with Pydantic AI's numbers (the more complete: cached and
    reasoning tokens, so the cached input is priced at its own rate), in the trace's and the
    task's figures (storage/call_pairs.py)."""
    for scenario, calls in CALLS.items():
        summary = runs.detail("chat_openai_v2", scenario).summary()
        task = runs.task("chat_openai_v2", scenario)
        want = (len(calls), sum(c.input for c in calls), sum(c.output for c in calls))
        assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == want, scenario
        assert (task["llm_calls"], task["input_tokens"], task["output_tokens"]) == want, scenario
        assert task["cost_usd"] == pytest.approx(sum(c.cost() for c in calls), rel=1e-9), scenario


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-pydantic-ai:begin -->", "<!-- observed-pydantic-ai:end -->"


def test_docs_list_what_was_observed(runs: AgentRuns) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs, CONFIGS))
