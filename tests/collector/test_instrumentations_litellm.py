"""Real LiteLLM (`litellm.completion` / `acompletion` with `openai/gpt-4o-mini` and `api_base`),
through real instrumentations → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_litellm.py) against
spanlake's fake OpenAI server, exporting over loopback to a collector in this process. The
expected numbers come from the fake server's documented rule (spanlake.demo.fake_openai), worked
out by hand below; costs from genai-prices' own `calc_price`, computed here.

Configurations: OpenInference (`openinference-instrumentation-litellm`) alone; the same with
`openinference-instrumentation-openai` on the openai client LiteLLM calls (one call, two spans);
LiteLLM's own OTel callback (`litellm.callbacks = ["otel"]`) in its default mode, which writes
the call onto the caller's open span, and with USE_OTEL_LITELLM_REQUEST_SPAN=true, which gives
the call a `litellm_request` span of its own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.detail import trace_detail
from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector import instrumented_litellm as client
from tests.collector.instrumented_runs import (
    Config,
    Launch,
    check_observed,
    observed_keys,
    observed_lines,
    run_configurations,
)
from tests.collector.instrumented_runs import Runs as BaseRuns

ROOT = Path(__file__).parents[2]

# Expected usage from the fake server's rule (words = whitespace-separated words; cached =
# prompt // 2; reasoning = number of input messages; completion = visible words + reasoning).
REPLY = f"Fake reply: {client.QUESTION}"  # 8 words
CHAT = {"in": 3 + 6, "cached": 4, "reasoning": 2, "out": 8 + 2, "finish": "stop"}  # system + question
STREAM = {"in": 6, "cached": 3, "reasoning": 1, "out": 8 + 1, "finish": "stop"}
TOOLS = {"in": 7, "cached": 3, "reasoning": 1, "out": 3 + 1, "finish": "tool_calls"}  # 'get_weather {...}': 3
EXPECTED = {"chat": CHAT, "stream": STREAM, "tools": TOOLS, "async_chat": CHAT}
MODEL = "gpt-4o-mini"
ANSWERED = MODEL + "-2025-01-01"  # the fake's answering model: genai-prices has no such snapshot


CONFIGS = {
    "openinference": Config("openinference", "http", {}),
    "openinference_openai": Config("openinference_openai", "grpc", {}),
    "otel": Config("otel", "http", {}),
    "otel_request_span": Config("otel", "grpc", {"USE_OTEL_LITELLM_REQUEST_SPAN": "true"}),
}


@dataclass
class Runs(BaseRuns):
    def spans(self, config: str, scenario: str) -> list[dict[str, Any]]:
        """The scenario's spans, the scenario span first, then by start."""
        return self.trace_spans(config, scenario, "name NOT LIKE 'scenario %', start_time")

    def by_name(self, config: str, scenario: str) -> dict[str, dict[str, Any]]:
        spans = self.spans(config, scenario)
        assert len({s["name"] for s in spans}) == len(spans), [s["name"] for s in spans]
        return {s["name"]: s for s in spans}

    def elsewhere(self, config: str) -> list[dict[str, Any]]:
        """Spans of the project in no scenario's trace."""
        own = list(self.traces[config].values())
        return self.collector.query(
            "SELECT * FROM spans WHERE project = ? AND NOT list_contains(?, trace_id)",
            [config, own],
        )


def _launch(fake: FakeOpenAI, name: str, cfg: Config) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_litellm", cfg.library, "--url", fake.base_url]
    return Launch(argv, cfg.protocol, ("OTEL_", "LITELLM_", "USE_OTEL_", "OPENAI_"), cfg.env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with run_configurations(tmp_path_factory.mktemp("litellm") / "data", FakeOpenAI(), CONFIGS, _launch, Runs) as r:
        yield r


def _cost(exp: dict[str, Any], cached: bool = True) -> float:
    """genai-prices' own price of one gpt-4o-mini call (its input_tokens include the cache)."""
    usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["cached"] if cached else None, output_tokens=exp["out"])
    return float(calc_price(usage, MODEL, provider_id="openai").total_price)


def _cost_usd(runs: Runs, config: str, row: dict[str, Any]) -> float | None:
    """The span's cost as the trace detail prices it."""
    detail = trace_detail(Analytics(runs.collector.data_dir), row["trace_id"], config)
    assert detail is not None
    (span,) = [s for s in detail.spans if s["span_id"] == row["span_id"]]
    return span["cost_usd"]


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["content"] or "{}")


# --- OpenInference --------------------------------------------------------------------------------


def test_openinference_calls(runs: Runs) -> None:
    """One `completion` / `acompletion` span (LLM) under the caller's span, with LiteLLM's model
    name (`openai/gpt-4o-mini`, requested = answering), every usage detail and LiteLLM's cost."""
    for scenario, exp in EXPECTED.items():
        scenario_span, row = runs.spans("openinference", scenario)
        assert row["parent_span_id"] == scenario_span["span_id"]
        assert row["name"] == ("acompletion" if scenario == "async_chat" else "completion")
        assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai")
        assert (row["request_model"], row["response_model"]) == (client.MODEL, client.MODEL)
        assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
            exp["in"],
            exp["out"],
            exp["in"] + exp["out"],
        )
        assert (row["cache_read_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (
            exp["cached"],
            None,
            exp["reasoning"],
        )
        assert row["finish_reasons"] == [exp["finish"]], scenario
        assert (row["status_code"], row["error_type"], row["time_to_first_token_ms"]) == ("OK", None, None)
        # spanlake prices LiteLLM's `openai/gpt-4o-mini` as gpt-4o-mini; LiteLLM's own figure agrees
        want = _cost(exp)
        assert _cost_usd(runs, "openinference", row) == pytest.approx(want, rel=1e-9)
        assert row["reported_cost"] == pytest.approx(want, rel=1e-9)
    # By hand, gpt-4o-mini at $0.15 input / $0.075 cached / $0.60 output per million: 5 + 4 + 10.
    by_hand = (5 * Decimal("0.15") + 4 * Decimal("0.075") + 10 * Decimal("0.60")) / 10**6
    assert _cost(CHAT) == pytest.approx(float(by_hand), rel=1e-12)


def test_openinference_failed_call(runs: Runs) -> None:
    _, row = runs.spans("openinference", "error")
    assert (row["name"], row["category"], row["request_model"]) == ("completion", "llm", "openai/fail-500")
    assert (row["status_code"], row["error_type"]) == ("ERROR", "litellm.exceptions.InternalServerError")
    assert (row["input_tokens"], row["output_tokens"], row["reported_cost"]) == (None, None, None)
    (trace,) = runs.collector.query(
        "SELECT has_error FROM traces WHERE trace_id = ?", [runs.trace("openinference", "error")]
    )
    assert trace["has_error"]


def test_openinference_messages_and_tool_calls(runs: Runs) -> None:
    chat, tools = (_content(runs.spans("openinference", s)[1]) for s in ("chat", "tools"))
    assert [chat[f"llm.input_messages.{i}.message.{k}"] for i in (0, 1) for k in ("role", "content")] == [
        "system", client.SYSTEM, "user", client.QUESTION,
    ]  # fmt: skip
    assert chat["llm.output_messages.0.message.content"] == REPLY == chat["output.value"]
    call = "llm.output_messages.0.message.tool_calls.0.tool_call."
    assert (tools[call + "id"], tools[call + "function.name"]) == ("call_fake_0", "get_weather")
    assert json.loads(tools[call + "function.arguments"]) == {"location": "Paris"}
    assert json.loads(tools["llm.tools.0.tool.json_schema"]) == client.WEATHER_TOOL
    assert json.loads(tools["output.value"])["model"] == ANSWERED  # the answering model: only in the content


# --- LiteLLM's own callback -----------------------------------------------------------------------


def _check_own(row: dict[str, Any], exp: dict[str, Any], answered: str) -> None:
    assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai")
    assert (row["request_model"], row["response_model"]) == (MODEL, answered)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
        exp["in"],
        exp["out"],
        exp["in"] + exp["out"],
    )
    # cached and reasoning tokens only inside `metadata.usage_object`, a Python repr
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (None, None)
    assert row["finish_reasons"] == [exp["finish"]]  # sent as the JSON string '["stop"]'
    content = _content(row)
    assert json.loads(content["gen_ai.output.messages"])[0]["finish_reason"] == exp["finish"]


@pytest.mark.parametrize("config", ["otel", "otel_request_span"])
def test_own_callback_calls(runs: Runs, config: str) -> None:
    """Default mode: the call is written onto the caller's span (here `scenario <name>`, an app's
    own span), which becomes the LLM span; with USE_OTEL_LITELLM_REQUEST_SPAN=true a
    `litellm_request` span of its own, under the caller's. A `raw_gen_ai_request` span (the raw
    request and response, in `content`) hangs under either."""
    for scenario in ("chat", "tools", "async_chat"):
        spans = runs.by_name(config, scenario)
        scenario_span = spans[f"scenario {scenario}"]
        if config == "otel":
            assert set(spans) == {f"scenario {scenario}", "raw_gen_ai_request"}
            call = scenario_span
        else:
            assert set(spans) == {f"scenario {scenario}", "litellm_request", "raw_gen_ai_request"}
            call = spans["litellm_request"]
            assert (call["parent_span_id"], scenario_span["category"]) == (scenario_span["span_id"], "other")
        _check_own(call, EXPECTED[scenario], ANSWERED)
        raw = spans["raw_gen_ai_request"]
        assert (raw["parent_span_id"], raw["category"], raw["scope_name"]) == (call["span_id"], "other", "litellm")
        raw_content = {"llm.openai.messages", "llm.openai.choices"} | (
            {"llm.openai.tools"} if scenario == "tools" else set()
        )
        assert set(_content(raw)) == raw_content
        assert json.loads(raw["attributes"])["llm.openai.model"] == ANSWERED
        # the fake's answering model is unknown to genai-prices as to spanlake: no cost, never 0
        with pytest.raises(LookupError):
            calc_price(Usage(input_tokens=1), ANSWERED, provider_id="openai")
        assert _cost_usd(runs, config, call) is None
        (trace,) = runs.collector.query(
            "SELECT llm_calls, input_tokens FROM traces WHERE project = ? AND trace_id = ?",
            [config, runs.trace(config, scenario)],
        )
        assert trace == {"llm_calls": 1, "input_tokens": EXPECTED[scenario]["in"]}


@pytest.mark.parametrize("config", ["otel", "otel_request_span"])
def test_own_callback_loses_a_streamed_calls_trace(runs: Runs, config: str) -> None:
    """A streamed call is logged with no parent: a root `litellm_request` in a trace of its own,
    its response model the requested one; the caller's trace has no LLM span."""
    assert [s["name"] for s in runs.spans(config, "stream")] == ["scenario stream"]
    elsewhere = {s["name"]: s for s in runs.elsewhere(config)}
    assert set(elsewhere) == {"litellm_request", "raw_gen_ai_request"}
    request, raw = elsewhere["litellm_request"], elsewhere["raw_gen_ai_request"]
    assert (request["name"], request["parent_span_id"], raw["parent_span_id"]) == (
        "litellm_request",
        None,
        request["span_id"],
    )
    _check_own(request, STREAM, MODEL)
    # priced (gpt-4o-mini), but with no cached count: every input token at the full rate
    assert _cost_usd(runs, config, request) == pytest.approx(_cost(STREAM, cached=False), rel=1e-9)
    assert _cost(STREAM, cached=False) > _cost(STREAM)


@pytest.mark.parametrize("config", ["otel", "otel_request_span"])
def test_own_callback_failed_call(runs: Runs, config: str) -> None:
    spans = runs.by_name(config, "error")
    call = spans["scenario error"] if config == "otel" else spans["litellm_request"]
    assert (call["category"], call["request_model"], call["response_model"]) == ("llm", "fail-500", None)
    assert (call["status_code"], call["error_type"], call["input_tokens"]) == ("ERROR", "InternalServerError", None)
    assert "raw_gen_ai_request" not in spans


# --- one call, two spans: OpenInference's LiteLLM span over its openai span ------------------------


def test_one_call_two_spans_as_observed(runs: Runs) -> None:
    """openinference-instrumentation-openai under LiteLLM's: `ChatCompletion` is the child of
    `completion`, both with the full usage, different model names (`openai/gpt-4o-mini` and
    gpt-4o-mini / the answering model)."""
    for scenario, exp in {**EXPECTED, "error": None}.items():
        spans = runs.by_name("openinference_openai", scenario)
        outer, inner = spans["acompletion" if scenario == "async_chat" else "completion"], spans["ChatCompletion"]
        assert inner["parent_span_id"] == outer["span_id"], scenario
        assert (outer["request_model"], inner["request_model"]) == (
            (client.MODEL, MODEL) if exp else ("openai/fail-500", "fail-500")
        )
        if exp is None:
            assert (outer["status_code"], inner["status_code"]) == ("ERROR", "ERROR")
            continue
        assert inner["response_model"] == ANSWERED
        for row in (outer, inner):
            assert (row["category"], row["input_tokens"], row["output_tokens"]) == ("llm", exp["in"], exp["out"])
            assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (exp["cached"], exp["reasoning"])


def test_one_call_two_spans_counts_once(runs: Runs) -> None:
    """LiteLLM's `openai/gpt-4o-mini` names the model of its provider `openai`: the two spans are one
    call (storage/call_pairs.py), counted once; `ChatCompletion` counts (as complete, nearer the
    wire), the LiteLLM span repeats it; so for the failed call."""
    for scenario, exp in {**EXPECTED, "error": None}.items():
        trace_id = runs.trace("openinference_openai", scenario)
        (trace,) = runs.collector.query(
            "SELECT llm_calls, input_tokens, output_tokens FROM traces WHERE project = ? AND trace_id = ?",
            ["openinference_openai", trace_id],
        )
        want = (exp["in"], exp["out"]) if exp else (0, 0)
        assert trace == {"llm_calls": 1, "input_tokens": want[0], "output_tokens": want[1]}, scenario
        spans = runs.by_name("openinference_openai", scenario)
        outer, inner = spans["acompletion" if scenario == "async_chat" else "completion"], spans["ChatCompletion"]
        assert runs.collector.query(
            "SELECT span_id, duplicate_of FROM duplicate_calls WHERE project = ? AND trace_id = ?",
            ["openinference_openai", trace_id],
        ) == [{"span_id": outer["span_id"], "duplicate_of": inner["span_id"]}], scenario


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-litellm:begin -->", "<!-- observed-litellm:end -->"


def render_observed(runs: Runs) -> str:
    """Per configuration: span names, attribute and content keys, span events."""
    out = []
    for config, cfg in CONFIGS.items():
        spans = runs.collector.query(
            "SELECT name, kind, scope_name, attributes, content, events FROM spans "
            "WHERE project = ? AND scope_name != 'spanlake.tests' ORDER BY name",
            [config],
        )
        callers = runs.collector.query(
            "SELECT attributes, content FROM spans WHERE project = ? AND scope_name = 'spanlake.tests'", [config]
        )
        env = ", ".join(f"`{k}={v}`" for k, v in cfg.env.items()) or "none"
        out += [
            f"### `{config}`",
            "",
            f"- library `{cfg.library}` over OTLP/{cfg.protocol}; environment: {env}",
            *observed_lines(spans),
            "- written onto the caller's span: attributes "
            + observed_keys([s["attributes"] for s in callers])
            + "; content "
            + observed_keys([s["content"] for s in callers]),
            "",
        ]
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))
