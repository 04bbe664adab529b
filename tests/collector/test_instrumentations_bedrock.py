"""Bedrock: boto3's `bedrock-runtime` client through real instrumentations, and the anthropic
client's `AnthropicBedrock`, → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_bedrock.py) against
spanlake's fake Bedrock Runtime (spanlake.demo.fake_bedrock), exporting over loopback to a
collector in this process. The expected numbers come from the fake server's documented rule,
worked out by hand below; the cost from genai-prices' own `calc_price` (provider `aws`),
computed here.

Configurations: openinference-instrumentation-bedrock and opentelemetry-instrumentation-bedrock
(OpenLLMetry) over boto3 (Converse, ConverseStream, InvokeModel and its stream with an Anthropic
body, a throttled and an invalid call); `AnthropicBedrock` tracing itself alone, and under each
Anthropic instrumentation ("one call, two spans", storage/call_pairs.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.demo.fake_bedrock import FakeBedrock
from tests.collector import instrumented_bedrock as client
from tests.collector.instrumented_runs import Config, Launch, check_observed, observed_lines, run_configurations
from tests.collector.instrumented_runs import ScopedRuns as Runs

ROOT = Path(__file__).parents[2]
FIRST_CHUNK_DELAY_MS = 150
TTFT_CLOCK_SLACK_MS = 20.0  # the anthropic client times its first chunk from a moment before its span starts
ANTHROPIC_NAME = "claude-haiku-4-5-20251001"  # the model InvokeModel's answer names
# No AWS settings of the machine's may reach the clients (credentials and region are passed).
AWS_ISOLATION = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

# Expected usage from the fake's rule (words = whitespace-separated words), in OTel's meaning:
# `in` is every input token. The cached prefix is the system text (10 words): 5 read, 5 written;
# Bedrock's own inputTokens (and Anthropic's input_tokens) are in - read - write = 6.
CACHED = {"in": 10 + 6, "read": 5, "write": 5, "out": 8, "stop": "end_turn"}  # "Fake reply: <6 words>"
TOOLS = {"in": 7, "read": None, "write": None, "out": 3, "stop": "tool_use"}  # get_weather {"location": "Paris"}
CUT = {"in": 6, "read": None, "write": None, "out": client.CUT_TOKENS, "stop": "max_tokens"}
EXPECTED = {
    "converse": CACHED,
    "converse_base_id": CACHED,
    "converse_global": CACHED,
    "converse_stream": CACHED,
    "converse_tools": TOOLS,
    "converse_max_tokens": CUT,
    "invoke": CACHED,
    "invoke_stream": CACHED,
    "invoke_global": CACHED,
}
# The libraries' own gaps (observed; nothing spanlake could recover). On InvokeModelWithResponseStream
# OpenInference sends no cache split (its input has the cache in), OpenLLMetry only Anthropic's
# uncached input_tokens and no cache counts (10 cached tokens lost). OpenLLMetry parses an
# InvokeModel answer by the vendor in the model id, and takes `global` for the vendor of a global
# inference profile: no input, output or stop reason at all, only the cache counts (from headers).
SENT = {
    ("openinference", "invoke_stream"): {**CACHED, "read": None, "write": None},
    ("openllmetry", "invoke_stream"): {**CACHED, "in": 6, "read": None, "write": None},
    ("openllmetry", "invoke_global"): {**CACHED, "in": None, "out": None, "stop": None},
}
BOTO3 = ("openinference", "openllmetry")
OPENLLMETRY_STOPS = {"end_turn": "stop", "tool_use": "tool_call", "max_tokens": "length"}


CONFIGS = {
    "openinference": Config("openinference", "http"),
    "openllmetry": Config("openllmetry", "grpc"),
    "anthropic_sdk": Config("anthropic_sdk", "http"),
    "anthropic_openinference": Config("anthropic_openinference", "grpc"),
    "anthropic_openllmetry": Config("anthropic_openllmetry", "http"),
}


def _launch(fake: FakeBedrock, name: str, cfg: Config) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_bedrock", cfg.library, "--url", fake.url]
    return Launch(argv, cfg.protocol, ("OTEL_", "TRACELOOP_", "ANTHROPIC_", "AWS_"), AWS_ISOLATION)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    data = tmp_path_factory.mktemp("bedrock") / "data"
    fake = FakeBedrock(first_chunk_delay_s=FIRST_CHUNK_DELAY_MS / 1000)
    with run_configurations(data, fake, CONFIGS, _launch, Runs) as r:
        yield r


def _model_id(scenario: str) -> str:
    if scenario.endswith("_global"):
        return client.GLOBAL_MODEL
    return client.BASE_MODEL if scenario == "converse_base_id" else client.MODEL


def _models(library: str, scenario: str) -> tuple[str | None, str | None]:
    """(request, response) model as each library names them (observed)."""
    model_id = _model_id(scenario)
    geo, _, rest = model_id.partition(".")
    # OpenLLMetry drops a `us.` (`eu.`, `apac.`, `us-gov.`) profile and the vendor, but of a
    # global profile only `global.`.
    openllmetry = rest if geo == "global" else model_id.split("anthropic.", 1)[1]
    if scenario.startswith("invoke"):  # OpenInference names only the model of InvokeModel's answer
        return (ANTHROPIC_NAME if library == "openinference" else openllmetry, ANTHROPIC_NAME)
    return (model_id, model_id) if library == "openinference" else (openllmetry, None)


def _sent(library: str, scenario: str) -> dict[str, Any]:
    return SENT.get((library, scenario), EXPECTED[scenario])


def _cost(exp: dict[str, Any], model: str) -> float:
    """genai-prices' own price of one Bedrock call (its input_tokens include the cache). With no input
    count, spanlake prices the cache counts alone: as if the input were only the cache."""
    cached = (exp["read"] or 0) + (exp["write"] or 0)
    usage = Usage(
        input_tokens=cached if exp["in"] is None else exp["in"],
        cache_read_tokens=exp["read"] or 0,
        cache_write_tokens=exp["write"] or 0,
        output_tokens=exp["out"],
    )
    return float(calc_price(usage, model, provider_id="aws").total_price)


def _check(row: dict[str, Any], library: str, scenario: str) -> None:
    exp = _sent(library, scenario)
    assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "aws.bedrock"), scenario
    assert (row["request_model"], row["response_model"]) == _models(library, scenario), scenario
    total = None if exp["in"] is None else exp["in"] + exp["out"]
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (exp["in"], exp["out"], total), scenario
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (exp["read"], exp["write"]), scenario
    assert row["reasoning_tokens"] is None and row["time_to_first_token_ms"] is None, scenario
    stop = OPENLLMETRY_STOPS.get(exp["stop"]) if library == "openllmetry" else exp["stop"]
    assert row["finish_reasons"] == (None if stop is None else [stop]), scenario
    assert (row["status_code"], row["error_type"]) == ("OK" if library == "openinference" else "UNSET", None)


@pytest.mark.parametrize("config", BOTO3)
def test_calls_are_normalized(runs: Runs, config: str) -> None:
    for scenario in EXPECTED:
        _check(runs.call(config, scenario), config, scenario)


@pytest.mark.parametrize("config", BOTO3)
def test_cost_counts_cache_reads_and_writes_once_at_their_own_rates(runs: Runs, config: str) -> None:
    """Bedrock's inputTokens exclude the cache: OpenInference adds it in, OpenLLMetry does not and
    spanlake adds it by the span's scope; either way each token is priced once, at its own rate."""
    an = Analytics(runs.collector.data_dir)
    for scenario in EXPECTED:
        detail = trace_detail(an, runs.trace(config, scenario), config)
        assert detail is not None
        (call,) = [s for s in detail.spans if s["category"] == "llm"]
        request, response = _models(config, scenario)
        want = _cost(_sent(config, scenario), response or request or "")
        assert call["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), scenario
    # By hand: Claude Haiku 4.5 through a US inference profile at Bedrock's regional $1.10 input /
    # $0.11 cache read / $1.375 cache write / $5.50 output per million: 6 + 5 + 5 in, 8 out.
    by_hand = (6 * Decimal("1.10") + 5 * Decimal("0.11") + 5 * Decimal("1.375") + 8 * Decimal("5.50")) / 10**6
    assert _cost(CACHED, client.MODEL) == pytest.approx(float(by_hand), rel=1e-12)
    # Every name a library gives the model prices as that model (Claude 3.5 Haiku: $0.80 / $0.08 / $1 / $4).
    assert (
        _cost(CACHED, ANTHROPIC_NAME) == _cost(CACHED, "claude-haiku-4-5-20251001-v1:0") == _cost(CACHED, client.MODEL)
    )
    base = (6 * Decimal("0.80") + 5 * Decimal("0.08") + 5 * Decimal("1.00") + 8 * Decimal("4.00")) / 10**6
    assert (
        _cost(CACHED, client.BASE_MODEL)
        == _cost(CACHED, "claude-3-5-haiku-20241022-v1:0")
        == pytest.approx(float(base))
    )
    # A global inference profile costs less ($1 / $0.10 / $1.25 / $5): only OpenInference's Converse
    # span keeps its id; OpenLLMetry's name of it, and OpenInference's InvokeModel one, price regionally.
    cheaper = (6 * 1 + 5 * Decimal("0.10") + 5 * Decimal("1.25") + 8 * 5) / Decimal(10**6)
    assert _cost(CACHED, client.GLOBAL_MODEL) == pytest.approx(float(cheaper), rel=1e-12)
    assert _cost(CACHED, _models(config, "converse_global")[0] or "") == pytest.approx(
        float(cheaper if config == "openinference" else by_hand), rel=1e-12
    )
    assert _cost(CACHED, ANTHROPIC_NAME) == pytest.approx(float(by_hand), rel=1e-12)  # invoke_global, both
    # The project's cost report: a call with no input or output count (OpenLLMetry's invoke_global)
    # is no billable call, and its cache counts are not in the totals.
    (totals,) = call_totals(an, Filters(project=config)).to_dicts()
    billable = [_sent(config, s) for s in EXPECTED if _sent(config, s)["in"] is not None]
    assert (totals["calls"], totals["unpriced_calls"]) == (len(billable), 0)
    assert (totals["input_tokens"], totals["output_tokens"]) == (
        sum(e["in"] for e in billable),
        sum(e["out"] for e in billable),
    )
    assert totals["cache_read_tokens"] == totals["cache_write_tokens"] == sum(e["read"] or 0 for e in billable)
    models = {s: _models(config, s) for s in EXPECTED}
    want = sum(_cost(_sent(config, s), models[s][1] or models[s][0] or "") for s in EXPECTED if _sent(config, s)["in"])
    assert totals["cost_usd"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("config", BOTO3)
def test_failed_calls(runs: Runs, config: str) -> None:
    """A throttled Converse call and an invalid InvokeModel: errors with no usage."""
    for scenario, model, kind in (
        ("error_throttled", "fail-429", "Throttling"),
        ("error_invalid", "fail-400", "Validation"),
    ):
        row = runs.call(config, scenario)
        assert (row["category"], row["provider"], row["request_model"]) == ("llm", "aws.bedrock", model)
        assert row["response_model"] == (model if config == "openinference" else None)  # OpenInference's llm.model_name
        error = f"{kind}Exception" if config == "openllmetry" else f"botocore.errorfactory.{kind}Exception"
        assert (row["status_code"], row["error_type"]) == ("ERROR", error)
        assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (None, None, None)
        assert [e["name"] for e in json.loads(row["events"])] == ["exception"]


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["content"] or "{}")


def test_messages_and_tool_calls(runs: Runs) -> None:
    reply = f"Fake reply: {client.QUESTION}"
    text = "message.contents.0.message_content.text"
    oi, oi_tools = (
        _content(runs.call("openinference", "converse")),
        _content(runs.call("openinference", "converse_tools")),
    )
    assert (oi["llm.input_messages.0.message.role"], oi[f"llm.input_messages.0.{text}"]) == ("system", client.SYSTEM)
    assert (oi["llm.input_messages.1.message.role"], oi[f"llm.input_messages.1.{text}"]) == ("user", client.QUESTION)
    assert oi[f"llm.output_messages.0.{text}"] == reply
    call = "llm.output_messages.0.message.tool_calls.0.tool_call."
    assert (oi_tools[call + "id"], oi_tools[call + "function.name"]) == ("tooluse_fake_0", "get_weather")
    assert json.loads(oi_tools[call + "function.arguments"]) == {"location": "Paris"}
    assert json.loads(oi_tools["llm.tools.0.tool.json_schema"]) == {"toolSpec": client.WEATHER_SPEC}
    oi_invoke = _content(runs.call("openinference", "invoke"))  # an Anthropic body: a string content is `content`
    assert (oi_invoke["llm.input_messages.1.message.content"], oi_invoke["llm.output_messages.0.message.content"]) == (
        client.QUESTION,
        reply,
    )
    for scenario in ("converse", "converse_stream", "invoke", "invoke_stream"):
        tl = _content(runs.call("openllmetry", scenario))
        # Converse's cachePoint block comes out as a text part with no content.
        system = [{"type": "text", "content": client.SYSTEM}] + (
            [{"type": "text", "content": None}] if scenario.startswith("converse") else []
        )
        assert json.loads(tl["gen_ai.system_instructions"]) == system, scenario
        assert json.loads(tl["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": client.QUESTION}]}
        ]
        (out,) = json.loads(tl["gen_ai.output.messages"])
        assert out == {"role": "assistant", "parts": [{"type": "text", "content": reply}], "finish_reason": "stop"}
    tl_tools = _content(runs.call("openllmetry", "converse_tools"))
    (tool_out,) = json.loads(tl_tools["gen_ai.output.messages"])
    assert tool_out["parts"] == [
        {"type": "tool_call", "name": "get_weather", "id": "tooluse_fake_0", "arguments": {"location": "Paris"}}
    ]
    (definition,) = json.loads(tl_tools["gen_ai.tool.definitions"])
    assert (definition["name"], definition["parameters"]) == ("get_weather", client.WEATHER_SPEC["inputSchema"]["json"])


# --- AnthropicBedrock: the client's own spans, and one call, two spans ------------------------------

SDK_SCOPE = "com.anthropic.sdk.python.bedrock"
INSTRUMENTATION_SCOPES = {
    "anthropic_openinference": "openinference.instrumentation.anthropic",
    "anthropic_openllmetry": "opentelemetry.instrumentation.anthropic",
}
CLIENT_CALLS: dict[str, dict[str, Any] | None] = {
    "messages": CACHED,
    "messages_stream": CACHED,
    "error_throttled": None,
}


def _check_client(row: dict[str, Any], scenario: str) -> None:
    """AnthropicBedrock's own span: Anthropic's usage in OTel's meaning, the Bedrock provider."""
    assert (row["category"], row["provider"], row["scope_name"]) == ("llm", "aws.bedrock", SDK_SCOPE)
    if scenario == "error_throttled":
        assert (row["request_model"], row["status_code"], row["error_type"]) == ("fail-429", "ERROR", "429")
        assert row["input_tokens"] is None
        return
    assert (row["request_model"], row["response_model"]) == (client.MODEL, ANTHROPIC_NAME)
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (16, 5, 5)
    assert (row["output_tokens"], row["total_tokens"], row["finish_reasons"]) == (8, 24, ["end_turn"])
    if scenario == "messages_stream":  # the fake holds the first delta 150 ms
        assert FIRST_CHUNK_DELAY_MS <= row["time_to_first_token_ms"] <= row["duration_ms"] + TTFT_CLOCK_SLACK_MS
    else:
        assert row["time_to_first_token_ms"] is None


def test_anthropic_bedrock_client_traces_itself(runs: Runs) -> None:
    an = Analytics(runs.collector.data_dir)
    for scenario, exp in CLIENT_CALLS.items():
        row = runs.call("anthropic_sdk", scenario)
        _check_client(row, scenario)
        detail = trace_detail(an, runs.trace("anthropic_sdk", scenario), "anthropic_sdk")
        assert detail is not None
        (cost,) = [s["cost_usd"] for s in detail.spans if s["category"] == "llm"]
        # Priced as Bedrock's (provider aws), not Anthropic's own $1 / $5 rates.
        assert cost == (None if exp is None else pytest.approx(_cost(exp, ANTHROPIC_NAME), rel=1e-9))


@pytest.mark.parametrize(
    ("config", "relation"), [("anthropic_openinference", "parent"), ("anthropic_openllmetry", "sibling")]
)
def test_one_call_two_spans_counts_once(runs: Runs, config: str, relation: str) -> None:
    """The rule of storage/call_pairs.py holds for AnthropicBedrock: the instrumentation's span is
    the client span's parent (OpenInference) or an enclosing sibling (OpenLLMetry), and only the
    client's numbers count, in the traces view, the trace detail, the trace list and the cost report."""
    an = Analytics(runs.collector.data_dir)
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(project=config), Page(limit=50)).rows.to_dicts()}
    for scenario, exp in CLIENT_CALLS.items():
        trace_id = runs.trace(config, scenario)
        sdk, inst = runs.call(config, scenario, SDK_SCOPE), runs.call(config, scenario, INSTRUMENTATION_SCOPES[config])
        _check_client(sdk, scenario)
        if relation == "parent":
            assert sdk["parent_span_id"] == inst["span_id"], scenario
        else:
            assert sdk["parent_span_id"] == inst["parent_span_id"], scenario
            assert inst["start_time"] <= sdk["start_time"] <= sdk["end_time"] <= inst["end_time"], scenario
        # What the instrumentation's own span says (observed): OpenLLMetry calls the provider
        # `anthropic` and, on a stream, counts one output token too many.
        provider = "aws.bedrock" if relation == "parent" else "anthropic"
        out = None if exp is None else 8 + (scenario == "messages_stream" and relation == "sibling")
        assert (inst["provider"], inst["request_model"], inst["output_tokens"]) == (provider, sdk["request_model"], out)
        want = (1, 16, 8) if exp is not None else (1, 0, 0)
        (trace,) = runs.collector.query("SELECT * FROM traces WHERE project = ? AND trace_id = ?", [config, trace_id])
        assert (trace["span_count"], trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == (3, *want)
        assert runs.collector.query(
            "SELECT span_id, duplicate_of FROM duplicate_calls WHERE project = ? AND trace_id = ?", [config, trace_id]
        ) == [{"span_id": inst["span_id"], "duplicate_of": sdk["span_id"]}], scenario
        detail = trace_detail(an, trace_id, config)
        assert detail is not None
        s = detail.summary()
        assert (s["spans"], s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (3, *want), scenario
        by_id = {x["span_id"]: x for x in detail.spans}
        assert (by_id[inst["span_id"]]["duplicate_of"], by_id[inst["span_id"]]["cost_usd"]) == (sdk["span_id"], None)
        assert (listed[trace_id]["llm_calls"], listed[trace_id]["input_tokens"]) == want[:2], scenario
        cost = None if exp is None else pytest.approx(_cost(exp, ANTHROPIC_NAME), rel=1e-9)
        assert s["cost_usd"] == listed[trace_id]["cost_usd"] == cost, scenario
    (totals,) = call_totals(an, Filters(project=config)).to_dicts()
    (alone,) = call_totals(an, Filters(project="anthropic_sdk")).to_dicts()
    by_hand = {"calls": 2, "input_tokens": 32, "output_tokens": 16, "cache_read_tokens": 10, "cache_write_tokens": 10}
    for got in (totals, alone):
        assert {k: got[k] for k in by_hand} == by_hand
        assert got["cost_usd"] == pytest.approx(2 * _cost(CACHED, ANTHROPIC_NAME), rel=1e-9)


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-bedrock:begin -->", "<!-- observed-bedrock:end -->"


def render_observed(runs: Runs) -> str:
    """Per library (alone): span names, attribute and content keys, span events."""
    out = []
    for config in ("openinference", "openllmetry", "anthropic_sdk"):
        spans = runs.observed(config)
        out += [f"### `{config}`", "", f"- over OTLP/{CONFIGS[config].protocol}"]
        out += [*observed_lines(spans), ""]
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))


def test_no_logs(runs: Runs) -> None:
    """Every library here puts its content on the span: no log records."""
    assert runs.collector.query("SELECT count(*) AS n FROM logs") == [{"n": 0}]
