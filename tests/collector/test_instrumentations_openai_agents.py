"""The real OpenAI Agents SDK, through OpenInference → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_agents.py) against
spanlake's fake OpenAI server (the Responses API, spanlake.demo.fake_openai_responses, or Chat
Completions), exporting over loopback to a collector in this process. Each scenario is one
agent run with nothing around it: its trace is what an app exports. The expected numbers come
from the fake's documented rule (tests/collector/agent_runs.py), the cost from genai-prices'
own `calc_price`, computed here; what each configuration sends is what it was observed to send
(docs/instrumentations.md, "OpenAI Agents SDK").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.collector import instrumented_agents as client
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
    WEATHER,
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
    "openinference": Config("openinference", "http"),
    "openinference_chat": Config("openinference_chat", "grpc"),
    "openinference_openai": Config("openinference_openai", "http"),
}
OI_OPENAI_SCOPE = "openinference.instrumentation.openai"
# The model calls of each scenario, in order (the error scenario's one call fails).
CALLS: dict[str, list[Call]] = {
    "chat": [CHAT],
    "tools": [TOOL_CALL, AFTER_TOOL],
    "stream": [CHAT],
    "stream_usage": [CHAT],
}
NO_CALL_COST = {"stream": 0.0, "error": None}  # a call without usage (priced model), a failed call
WORKFLOW = {s: client.WEATHER_WORKFLOW if s == "tools" else "Agent workflow" for s in client.SCENARIOS}


@dataclass(frozen=True)
class Observed:
    """What one configuration was observed to send, where they differ."""

    llm_span: str  # the SDK's span of a model call, as OpenInference names it
    model: str  # request and response model alike
    details: bool  # cached tokens (cache writes 0) and reasoning tokens
    finish_reasons: list[str] | None
    plain_stream_usage: bool  # usage on a stream without ModelSettings(include_usage=True)
    tool_schemas: bool  # llm.tools.* on the LLM span


OBSERVED = {
    # ResponseSpanData holds the response only: the model is the answering one, a function call finishes "stop".
    "openinference": Observed("response", RESPONSE_MODEL, True, ["stop"], True, True),
    # GenerationSpanData holds the configured model and the usage without details, no finish reason,
    # no tools; the SDK asks a non-OpenAI base URL for stream usage only with include_usage=True.
    "openinference_chat": Observed("generation", MODEL, False, None, False, False),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentRuns]:
    with agent_runs("tests.collector.instrumented_agents", CONFIGS, tmp_path_factory.mktemp("agents") / "data") as r:
        yield r


def _outline(config: str, scenario: str) -> list[str]:
    """The trace view's tree of one agent run, as observed: the SDK's trace (OpenInference's root
    AGENT span), its task span (CHAIN, named after the workflow too), the agent, one turn per model call."""
    llm = OBSERVED.get(config, OBSERVED["openinference"]).llm_span
    call = [f"        {llm} [llm]"] + (["          Response [llm]"] if config == "openinference_openai" else [])
    agent = "Weather" if scenario == "tools" else "Assistant"
    head = [f"{WORKFLOW[scenario]} [agent]", f"  {WORKFLOW[scenario]} [chain]", f"    {agent} [agent]"]
    if scenario == "tools":
        return [*head, "      turn [chain]", *call, "        get_weather [tool]", "      turn [chain]", *call]
    return [*head, "      turn [chain]", *call]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_tree_and_categories(runs: AgentRuns, config: str) -> None:
    for scenario in client.SCENARIOS:
        assert runs.outline(config, scenario) == _outline(config, scenario), scenario


def test_every_call_reached_the_fake_server_once(runs: AgentRuns) -> None:
    """No retries, nothing sent elsewhere: 6 model calls per configuration (the failed one once)."""
    assert runs.model_requests == len(CONFIGS) * (sum(len(c) for c in CALLS.values()) + 1)


@pytest.mark.parametrize("config", list(OBSERVED))
def test_llm_calls_are_normalized(runs: AgentRuns, config: str) -> None:
    obs = OBSERVED[config]
    for scenario, calls in CALLS.items():
        spans = runs.spans(config, scenario, "llm")
        assert len(spans) == len(calls), scenario
        for span, call in zip(spans, calls, strict=True):
            assert (span["name"], span["operation"], span["provider"]) == (obs.llm_span, "chat", "openai")
            assert (span["request_model"], span["response_model"]) == (obs.model, obs.model)
            assert (span["status_code"], span["error_type"]) == ("OK", None)
            if scenario == "stream" and not obs.plain_stream_usage:
                # No usage: the call costs 0 in the trace view (a priced model, no tokens), not unknown.
                assert (span["input_tokens"], span["output_tokens"], span["cost_usd"]) == (None, None, 0.0)
                continue
            got = (span["input_tokens"], span["output_tokens"], span["total_tokens"])
            assert got == (call.input, call.output, call.input + call.output), scenario
            details = (call.cached, 0, call.reasoning) if obs.details else (None, None, None)
            assert (span["cache_read_tokens"], span["cache_write_tokens"], span["reasoning_tokens"]) == details
            assert span["finish_reasons"] == obs.finish_reasons
            assert span["time_to_first_token_ms"] is None  # not on streams either
            want = call.cost(obs.model, cached=obs.details)
            assert span["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), scenario
    # By hand, at gpt-5-nano's $0.05 input / $0.005 cached input / $0.40 output per million tokens.
    assert CHAT.cost() == pytest.approx((5 * 0.05 + 4 * 0.005 + 10 * 0.40) / 1e6, rel=1e-12)


@pytest.mark.parametrize("config", list(OBSERVED))
def test_the_task_is_the_sdk_trace(runs: AgentRuns, config: str) -> None:
    """With nothing around the run, its task is OpenInference's root span for the SDK's trace, named
    after the workflow; its calls, tokens and cost are those of its model calls, each once."""
    obs = OBSERVED[config]
    for scenario in client.SCENARIOS:
        calls = CALLS.get(scenario, [])
        if scenario == "stream" and not obs.plain_stream_usage:
            calls = []  # a call without usage: no tokens, no cost
        root = runs.detail(config, scenario).spans[0]
        task = runs.task(config, scenario)
        assert (task["span_id"], task["task_name"]) == (root["span_id"], WORKFLOW[scenario]), scenario
        summary = runs.detail(config, scenario).summary()
        assert summary["name"] == WORKFLOW[scenario]
        tokens = (sum(c.input for c in calls), sum(c.output for c in calls))
        # The task report counts the calls with usage; the trace view every LLM span (a failed call too).
        assert (task["llm_calls"], task["input_tokens"], task["output_tokens"]) == (len(calls), *tokens), scenario
        spans = len(CALLS.get(scenario, [])) or 1
        assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == (spans, *tokens)
        cost = sum(c.cost(obs.model, cached=obs.details) for c in calls)
        for got in (task["cost_usd"], summary["cost_usd"]):
            assert got == (pytest.approx(cost, rel=1e-9) if calls else NO_CALL_COST[scenario]), scenario
        # The SDK's trace span ends OK even when the run raised (only the agent and the call fail),
        # so no task fails: the outcome is the default.
        assert (root["status_code"], task["outcome"], summary["outcome"]) == ("OK", "unknown", "unknown")


@pytest.mark.parametrize("config", list(OBSERVED))
def test_failed_model_call(runs: AgentRuns, config: str) -> None:
    (call,) = runs.spans(config, "error", "llm")
    (agent,) = runs.spans(config, "error", "agent")[1:]  # under the trace's root
    assert (call["status_code"], agent["status_code"]) == ("ERROR", "ERROR")
    message = "{'error': 'Error code: 500 - injected failure for model fail-500'}"
    assert (call["status_message"], agent["status_message"]) == (
        f"Error getting response: {message}",
        f"Error in agent run: {message}",
    )
    # No exception event, no error.type: spanlake has no error type. The Responses span holds no
    # response, so no model either; the Chat Completions span names the configured one.
    model = "fail-500" if config == "openinference_chat" else None
    assert (call["error_type"], call["request_model"], call["response_model"]) == (None, model, model)
    assert (call["input_tokens"], call["output_tokens"], call["cost_usd"]) == (None, None, None)


@pytest.mark.parametrize("config", list(OBSERVED))
def test_tool_call_and_messages(runs: AgentRuns, config: str) -> None:
    first, second = (content(s) for s in runs.spans(config, "tools", "llm"))
    (tool,) = runs.spans(config, "tools", "tool")
    call = "llm.output_messages.0.message.tool_calls.0.tool_call."
    assert (first[call + "id"], first[call + "function.name"]) == (TOOL_CALL_ID, "get_weather")
    assert json.loads(first[call + "function.arguments"]) == TOOL_ARGUMENTS
    if OBSERVED[config].tool_schemas:
        assert json.loads(first["llm.tools.0.tool.json_schema"])["function"]["name"] == "get_weather"
    else:
        assert not any(k.startswith("llm.tools.") for k in first)
    assert tool["tool_name"] == "get_weather"
    assert (json.loads(content(tool)["input.value"]), content(tool)["output.value"]) == (TOOL_ARGUMENTS, FORECAST)
    msg = "llm.input_messages.{}.message."
    assert [second[msg.format(i) + "role"] for i in range(4)] == ["system", "user", "assistant", "tool"]
    assert (second[msg.format(0) + "content"], second[msg.format(1) + "content"]) == (SYSTEM, WEATHER)
    assert second[msg.format(2) + "tool_calls.0.tool_call.id"] == TOOL_CALL_ID
    assert (second[msg.format(3) + "tool_call_id"], second[msg.format(3) + "content"]) == (TOOL_CALL_ID, FORECAST)
    assert second["llm.output_messages.0.message.content"] == WEATHER_REPLY
    chat = content(runs.spans(config, "chat", "llm")[0])
    assert (chat["llm.input_messages.1.message.content"], chat["llm.output_messages.0.message.content"]) == (
        QUESTION,
        REPLY,
    )


# --- one model call, two LLM spans: the SDK's (OpenInference) and openinference-instrumentation-openai's ---


def _pairs(runs: AgentRuns, scenario: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the SDK's response span, openinference-openai's span under it), per model call."""
    spans = runs.detail("openinference_openai", scenario).spans
    inner = [s for s in spans if s["scope_name"] == OI_OPENAI_SCOPE]
    by_id = {s["span_id"]: s for s in spans}
    return [(by_id[s["parent_span_id"]], s) for s in inner]


def test_openai_instrumentation_adds_a_child_llm_span(runs: AgentRuns) -> None:
    """With openinference-instrumentation-openai on too, every model call has a second LLM span,
    `Response`, a child of the SDK's: both with the call's full usage (but none on a stream)."""
    for scenario, calls in CALLS.items():
        pairs = _pairs(runs, scenario)
        assert len(pairs) == len(calls), scenario
        for (outer, inner), call in zip(pairs, calls, strict=True):
            assert (outer["name"], inner["name"], inner["category"]) == ("response", "Response", "llm")
            assert (inner["request_model"], outer["request_model"]) == (MODEL, RESPONSE_MODEL)
            assert outer["input_tokens"] == call.input and outer["output_tokens"] == call.output
            streamed = scenario.startswith("stream")  # its async stream wrapper records no usage, no response
            assert inner["response_model"] == (MODEL if streamed else RESPONSE_MODEL), scenario
            want = (None, None) if streamed else (call.input, call.output)
            assert (inner["input_tokens"], inner["output_tokens"]) == want, scenario
            assert (outer["finish_reasons"], inner["finish_reasons"]) == (["stop"], None)
            # One counts (storage/call_pairs.py): the most complete, the SDK's on a stream, else
            # (as complete) openinference-openai's, nearer the wire; the other repeats it.
            counted, repeated = (outer, inner) if streamed else (inner, outer)
            assert (counted["duplicate_of"], repeated["duplicate_of"]) == (None, counted["span_id"]), scenario
    ((outer, inner),) = _pairs(runs, "error")
    assert (inner["status_code"], inner["error_type"], inner["request_model"]) == (
        "ERROR",
        "openai.InternalServerError",
        "fail-500",
    )


def test_one_call_two_spans_counts_once(runs: AgentRuns) -> None:
    """Each model call counts once in the trace's and the task's figures, with its full usage: the
    SDK's `response` (answering model `gpt-5-nano-2025-01-01`) and openinference-openai's
    `Response` (requested `gpt-5-nano`) name one model (an alias and its dated snapshot), and on
    a stream, where the inner span has no usage, the SDK's numbers count (storage/call_pairs.py)."""
    for scenario, calls in CALLS.items():
        summary = runs.detail("openinference_openai", scenario).summary()
        task = runs.task("openinference_openai", scenario)
        want = (len(calls), sum(c.input for c in calls), sum(c.output for c in calls))
        assert (summary["llm_calls"], summary["input_tokens"], summary["output_tokens"]) == want, scenario
        assert (task["llm_calls"], task["input_tokens"], task["output_tokens"]) == want, scenario
        assert task["cost_usd"] == pytest.approx(sum(c.cost() for c in calls), rel=1e-9), scenario


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-openai-agents:begin -->", "<!-- observed-openai-agents:end -->"


def test_docs_list_what_was_observed(runs: AgentRuns) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs, CONFIGS))
