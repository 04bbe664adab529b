"""The real `anthropic` client, through real instrumentations → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_anthropic.py) against
spanlake's fake Anthropic server (spanlake.demo.fake_anthropic), exporting over loopback to a
collector in this process. The expected numbers come from the fake server's documented rule,
worked out by hand below; the cost from genai-prices' own `calc_price`, computed here.

Configurations: the client's own spans alone (`sdk`, anthropic 2.x traces itself when a global
tracer provider is set), each instrumentation alone (the client's spans turned off with
ANTHROPIC_OPEN_TELEMETRY=false), and each instrumentation with the client's spans on, as an app
that sets a global provider gets them ("one call, two spans").
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

from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.demo.fake_anthropic import FakeAnthropic
from tests.collector import instrumented_anthropic as client
from tests.collector.instrumented_runs import Config, Launch, check_observed, observed_lines, run_configurations
from tests.collector.instrumented_runs import ScopedRuns as Runs

ROOT = Path(__file__).parents[2]
OFF = {"ANTHROPIC_OPEN_TELEMETRY": "false"}
TTFT_CLOCK_SLACK_MS = 20.0  # see _check
FIRST_CHUNK_DELAY_MS = 150
RESPONSE_MODEL = client.MODEL + "-20250929"

# Expected usage from the fake server's rule (words = whitespace-separated words). The cached
# prefix is the system block (10 words): 5 read, 5 written. `in` is the OTel input (everything
# the model read, cache included); Anthropic's own `input_tokens` is in - read - write.
REPLY = f"Fake reply: {client.QUESTION}"  # 8 words
THOUGHT = f"Thinking about: {client.QUESTION}"  # 8 words
TOOL_ID = "toolu_fake_0"
CHAT = {"in": 10 + 6, "read": 5, "write": 5, "out": 8, "reasoning": None, "stop": "end_turn"}
TOOLS = {"in": 7, "read": 0, "write": 0, "out": 3, "reasoning": None, "stop": "tool_use"}
THINKING = {"in": 6, "read": 0, "write": 0, "out": 8 + 8, "reasoning": 8, "stop": "end_turn"}
EXPECTED = {
    "chat": CHAT,
    "cache_1h": CHAT,
    "stream": CHAT,
    "stream_helper": CHAT,
    "async_chat": CHAT,
    "tools": TOOLS,
    "thinking": THINKING,
}
STREAMS = ("stream", "stream_helper")  # create(stream=True), and the messages.stream() helper


CONFIGS = {
    "sdk": Config("sdk", "http", {}),
    "openinference": Config("openinference", "http", OFF),
    "openllmetry": Config("openllmetry", "grpc", OFF),
    "openllmetry_events": Config("openllmetry_events", "http", OFF),
    "openinference_sdk": Config("openinference", "grpc", {}),
    "openllmetry_sdk": Config("openllmetry", "http", {}),
}


def _launch(fake: FakeAnthropic, name: str, cfg: Config) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_anthropic", cfg.library, "--url", fake.base_url]
    return Launch(argv, cfg.protocol, ("OTEL_", "TRACELOOP_", "ANTHROPIC_"), cfg.env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    data = tmp_path_factory.mktemp("anthropic") / "data"
    fake = FakeAnthropic(first_chunk_delay_s=FIRST_CHUNK_DELAY_MS / 1000)
    with run_configurations(data, fake, CONFIGS, _launch, Runs) as r:
        yield r


SDK_SCOPE = "com.anthropic.sdk.python"
SCOPES = {
    "openinference": "openinference.instrumentation.anthropic",
    "openllmetry": "opentelemetry.instrumentation.anthropic",
}


@dataclass(frozen=True)
class Observed:
    """What one library was observed to report, where libraries differ."""

    zero_cache: bool  # a cache count of 0 is sent (else absent)
    reasoning: bool  # thinking tokens
    stream_out_extra: int  # output tokens a stream reports beyond the true count
    ttft: bool
    stops: dict[str, str]  # stop reason as sent → as stored
    error_type: str
    error_response_model: str | None


OBSERVED = {
    "sdk": Observed(True, True, 0, True, {}, "overloaded_error", None),
    "openinference": Observed(False, True, 0, False, {}, "anthropic.OverloadedError", "fail-529"),
    # OpenLLMetry 0.62.4 adds message_start's output_tokens (1) to message_delta's cumulative count
    # on a stream, maps stop reasons to OTel's names, and sends no thinking tokens.
    "openllmetry": Observed(
        True, False, 1, False, {"end_turn": "stop", "tool_use": "tool_call"}, "OverloadedError", None
    ),
}


def _cost(expected: dict[str, Any], out_extra: int = 0, write_1h: int = 0) -> float:
    """genai-prices' own price of one call, computed here (its input_tokens include the cache;
    `write_1h` of the cache writes are 1-hour ones, at its `cache_write_1h_mtok`)."""
    usage = Usage(
        input_tokens=expected["in"],
        cache_read_tokens=expected["read"],
        cache_write_tokens=expected["write"],
        cache_write_1h_tokens=write_1h,
        output_tokens=expected["out"] + out_extra,
    )
    return float(calc_price(usage, RESPONSE_MODEL, provider_id="anthropic").total_price)


def _priced_cost(library: str, scenario: str, expected: dict[str, Any], out_extra: int = 0) -> float:
    """What spanlake charges for a library's span of a scenario's call: the 1-hour cache writes at
    their own rate where the span tells them apart (the client's own span: cache_1h writes 1-hour
    caches only), else every cache write at the cache-write rate, the 5-minute one."""
    write_1h = expected["write"] if library == "sdk" and scenario == "cache_1h" else 0
    return _cost(expected, out_extra, write_1h)


def _check(row: dict[str, Any], library: str, scenario: str) -> None:
    exp, obs = EXPECTED[scenario], OBSERVED[library]
    out = exp["out"] + (obs.stream_out_extra if scenario in STREAMS else 0)
    assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "anthropic")
    assert (row["request_model"], row["response_model"]) == (client.MODEL, RESPONSE_MODEL)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (exp["in"], out, exp["in"] + out)
    cached = (exp["read"], exp["write"])
    if cached == (0, 0) and not obs.zero_cache:
        cached = (None, None)
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == cached, scenario
    assert row["reasoning_tokens"] == (exp["reasoning"] if obs.reasoning else None), scenario
    stop = obs.stops.get(exp["stop"], exp["stop"])
    assert row["finish_reasons"] == [stop], scenario
    if scenario in STREAMS and obs.ttft:  # the fake server holds the first delta 150 ms
        # The client times its first chunk with its own clock from the request's start, a moment
        # before the span's start: on a busy machine its TTFT can pass the span's duration by a
        # few ms (seen: 0.1 and 3.8 ms when the whole stream arrived at once).
        assert FIRST_CHUNK_DELAY_MS <= row["time_to_first_token_ms"] <= row["duration_ms"] + TTFT_CLOCK_SLACK_MS
    else:
        assert row["time_to_first_token_ms"] is None, scenario
    assert row["status_code"] != "ERROR" and row["error_type"] is None


@pytest.mark.parametrize("config", ["sdk", "openinference", "openllmetry"])
def test_calls_are_normalized(runs: Runs, config: str) -> None:
    for scenario in EXPECTED:
        _check(runs.call(config, scenario), CONFIGS[config].library, scenario)


@pytest.mark.parametrize("config", ["sdk", "openinference", "openllmetry"])
def test_cost_counts_cache_reads_and_writes_once_at_their_own_rates(runs: Runs, config: str) -> None:
    """Anthropic's input_tokens exclude the cache; every library sends the OTel sum, priced once."""
    an = Analytics(runs.collector.data_dir)
    extra = OBSERVED[config].stream_out_extra
    for scenario, exp in EXPECTED.items():
        detail = trace_detail(an, runs.trace(config, scenario), config)
        assert detail is not None
        (call,) = [s for s in detail.spans if s["category"] == "llm"]
        want = _priced_cost(config, scenario, exp, extra if scenario in STREAMS else 0)
        assert call["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), scenario
    # By hand, for the chat call at claude-sonnet-4-5's $3 input / $0.30 cache read / $3.75 cache
    # write / $15 output per million: 6 uncached input + 5 read + 5 written + 8 output.
    by_hand = (Decimal(6) * 3 + Decimal(5) * Decimal("0.30") + Decimal(5) * Decimal("3.75") + 8 * 15) / 10**6
    assert _cost(CHAT) == pytest.approx(float(by_hand), rel=1e-12)


@pytest.mark.parametrize("config", ["sdk", "openinference", "openllmetry"])
def test_failed_call(runs: Runs, config: str) -> None:
    obs = OBSERVED[config]
    row = runs.call(config, "error")
    assert (row["category"], row["request_model"], row["response_model"]) == (
        "llm",
        "fail-529",
        obs.error_response_model,
    )
    assert (row["status_code"], row["error_type"]) == ("ERROR", obs.error_type)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (None, None, None)


def test_only_the_client_span_tells_1h_cache_writes(runs: Runs) -> None:
    """1-hour cache writes: the client's own span alone splits them, and is priced with the 1-hour rate."""
    for scenario, ttl in (("chat", "5m"), ("cache_1h", "1h")):
        row = runs.call("sdk", scenario)
        attrs = json.loads(row["attributes"])
        split = {t: attrs[f"anthropic.usage.cache_creation.ephemeral_{t}_input_tokens"] for t in ("5m", "1h")}
        assert split == {"5m": 5 if ttl == "5m" else 0, "1h": 5 if ttl == "1h" else 0}
        assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == (5, split["1h"])
        for config in ("openinference", "openllmetry"):
            other = runs.call(config, scenario)
            assert "ephemeral" not in other["attributes"] and other["cache_write_1h_tokens"] is None
    # The cache_1h call of the client's span: 6 uncached input, 5 read, 5 written for 1 hour, 8
    # output. claude-sonnet-4-5's 1-hour cache-write rate in genai-prices is Anthropic's documented
    # 2x its input rate ($6 against $3.75 for 5 minutes), so the call costs $0.00001125 more.
    price = calc_price(Usage(input_tokens=1), RESPONSE_MODEL, provider_id="anthropic").model_price
    assert price.cache_write_1h_mtok.base == 2 * price.input_mtok.base == 6
    by_hand = (Decimal(6) * 3 + Decimal(5) * Decimal("0.30") + Decimal(5) * 6 + 8 * 15) / 10**6
    assert _cost(CHAT, write_1h=5) == pytest.approx(float(by_hand), rel=1e-12)
    assert _cost(CHAT, write_1h=5) - _cost(CHAT) == pytest.approx(5 * (6 - 3.75) / 1e6, rel=1e-9)
    detail = trace_detail(Analytics(runs.collector.data_dir), runs.trace("sdk", "cache_1h"), "sdk")
    assert detail is not None and detail.summary()["cost_usd"] == pytest.approx(float(by_hand), rel=1e-9)


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["content"] or "{}")


def test_messages_and_tool_calls(runs: Runs) -> None:
    sdk = runs.call("sdk", "chat")
    assert sdk["content"] is None  # the client records no content unless its content mode is "content"
    oi, oi_tools = _content(runs.call("openinference", "chat")), _content(runs.call("openinference", "tools"))
    text = "message.contents.0.message_content.text"  # block lists as contents, a plain string as content
    assert (oi["llm.input_messages.0.message.role"], oi[f"llm.input_messages.0.{text}"]) == ("system", client.SYSTEM)
    assert oi["llm.input_messages.1.message.content"] == client.QUESTION
    assert oi[f"llm.output_messages.0.{text}"] == REPLY
    call = "llm.output_messages.0.message.tool_calls.0.tool_call."
    assert (oi_tools[call + "id"], oi_tools[call + "function.name"]) == (TOOL_ID, "get_weather")
    assert json.loads(oi_tools[call + "function.arguments"]) == {"location": "Paris"}
    tl, tl_tools = _content(runs.call("openllmetry", "chat")), _content(runs.call("openllmetry", "tools"))
    assert json.loads(tl["gen_ai.system_instructions"]) == [{"type": "text", "content": client.SYSTEM}]
    assert json.loads(tl["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": client.QUESTION}]}
    ]
    (out,) = json.loads(tl["gen_ai.output.messages"])
    assert out == {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    (tool_out,) = json.loads(tl_tools["gen_ai.output.messages"])
    assert tool_out["parts"] == [
        {"type": "tool_call", "id": TOOL_ID, "name": "get_weather", "arguments": {"location": "Paris"}}
    ]


def test_thinking_text_is_kept(runs: Runs) -> None:
    oi = runs.call("openinference", "thinking")["content"]
    tl = runs.call("openllmetry", "thinking")["content"]
    assert THOUGHT in oi and THOUGHT in tl


# --- one call, two spans ---------------------------------------------------------------------------


TWO_SPANS = [("openinference_sdk", "parent"), ("openllmetry_sdk", "sibling")]
# Every scenario, the failed call (no usage) and the chat call from a platform client (AnthropicFoundry,
# whose own spans have the scope `com.anthropic.sdk.python.foundry`).
CALLS: dict[str, dict[str, Any] | None] = {**EXPECTED, "error": None, "foundry": CHAT}
SDK_SCOPES = {scenario: SDK_SCOPE + (".foundry" if scenario == "foundry" else "") for scenario in CALLS}


@pytest.mark.parametrize(("config", "relation"), TWO_SPANS)
def test_one_call_two_spans_are_related_as_documented(runs: Runs, config: str, relation: str) -> None:
    """With a global tracer provider, the client's own span and the instrumentation's both
    describe the call, each with the full numbers; the instrumentation's is its parent or an
    enclosing sibling (docs/instrumentations.md, "One call, two spans")."""
    library = CONFIGS[config].library
    for scenario, exp in CALLS.items():
        sdk, inst = runs.call(config, scenario, SDK_SCOPES[scenario]), runs.call(config, scenario, SCOPES[library])
        if scenario == "foundry":  # the client's span as for chat; OpenInference names the platform's provider
            _check(sdk, "sdk", "chat")
            assert inst["provider"] == {"openinference": "azure.ai.openai", "openllmetry": "anthropic"}[library]
            assert (inst["request_model"], inst["input_tokens"], inst["output_tokens"]) == (client.MODEL, 16, 8)
        elif exp is not None:
            _check(sdk, "sdk", scenario)
            _check(inst, library, scenario)
        if relation == "parent" and scenario != "stream_helper":
            # OpenInference wraps messages.create: the client's span is its child ...
            assert sdk["parent_span_id"] == inst["span_id"], scenario
        else:  # ... but its `messages.stream` span, and OpenLLMetry's, are siblings of the client's span
            assert sdk["parent_span_id"] == inst["parent_span_id"], scenario
            assert inst["start_time"] <= sdk["start_time"] <= sdk["end_time"] <= inst["end_time"], scenario


@pytest.mark.parametrize(("config", "relation"), TWO_SPANS)
def test_one_call_two_spans_counts_once(runs: Runs, config: str, relation: str) -> None:
    """Every figure counts the call once, with the client's numbers: the traces view, the trace
    detail, the trace list and the cost report; both spans stay in the trace."""
    library = CONFIGS[config].library
    an = Analytics(runs.collector.data_dir)
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(project=config), Page(limit=50)).rows.to_dicts()}
    for scenario, exp in CALLS.items():
        trace_id = runs.trace(config, scenario)
        sdk, inst = runs.call(config, scenario, SDK_SCOPES[scenario]), runs.call(config, scenario, SCOPES[library])
        want = (1, exp["in"], exp["out"]) if exp is not None else (1, 0, 0)
        (trace,) = runs.collector.query("SELECT * FROM traces WHERE project = ? AND trace_id = ?", [config, trace_id])
        assert (trace["span_count"], trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == (
            3,
            *want,
        ), scenario
        assert runs.collector.query(
            "SELECT span_id, duplicate_of FROM duplicate_calls WHERE project = ? AND trace_id = ?", [config, trace_id]
        ) == [{"span_id": inst["span_id"], "duplicate_of": sdk["span_id"]}], scenario
        detail = trace_detail(an, trace_id, config)
        assert detail is not None
        s = detail.summary()
        assert (s["spans"], s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (3, *want), scenario
        by_id = {x["span_id"]: x for x in detail.spans}
        assert (by_id[inst["span_id"]]["duplicate_of"], by_id[inst["span_id"]]["cost_usd"]) == (sdk["span_id"], None)
        assert by_id[sdk["span_id"]]["duplicate_of"] is None
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == want, scenario
        cost = _priced_cost("sdk", scenario, exp) if exp is not None else None  # the client's numbers
        for got in (s["cost_usd"], row["cost_usd"], by_id[sdk["span_id"]]["cost_usd"]):
            assert got == (pytest.approx(cost, rel=1e-9, abs=1e-12) if cost is not None else None), scenario
    # The cost report of the project: the client's numbers once per call (the failed call has
    # no usage, so it is no billable call), exactly what the client's spans alone report.
    (totals,) = call_totals(an, Filters(project=config)).to_dicts()
    (alone,) = call_totals(an, Filters(project="sdk")).to_dicts()
    calls = [e for e in CALLS.values() if e is not None]
    by_hand = {
        "calls": 8,
        "input_tokens": 6 * 16 + 7 + 6,  # chat, cache_1h, stream, stream_helper, async_chat, foundry; tools; thinking
        "output_tokens": 6 * 8 + 3 + 16,
        "cache_read_tokens": 6 * 5,
        "cache_write_tokens": 6 * 5,
        "reasoning_tokens": THINKING["reasoning"],
        "unpriced_calls": 0,
    }
    assert by_hand == {**by_hand, "calls": len(calls), "input_tokens": sum(e["in"] for e in calls),
                       "output_tokens": sum(e["out"] for e in calls)}  # fmt: skip
    for got in (totals, alone):
        assert {k: got[k] for k in by_hand} == by_hand
        want = sum(_priced_cost("sdk", scenario, e) for scenario, e in CALLS.items() if e is not None)
        assert got["cost_usd"] == pytest.approx(want, rel=1e-9)


def test_fake_server_rule_over_raw_http() -> None:
    """The documented rule without any library: usage split, SSE event order, errors."""
    import httpx

    system = [{"type": "text", "text": "a b c d e", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body = {"model": "m", "max_tokens": 2, "system": system, "messages": [{"role": "user", "content": "x y z"}]}
    with FakeAnthropic() as fake, httpx.Client(base_url=fake.url) as http:
        r = http.post("/v1/messages", json=body)
        m = r.json()
        assert r.headers["request-id"] == "req_" + m["id"].removeprefix("msg_")
        assert (m["content"][0]["text"], m["stop_reason"]) == ("Fake reply:", "max_tokens")
        assert m["usage"]["input_tokens"] == 3 and m["usage"]["cache_read_input_tokens"] == 2
        assert m["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 3}
        thinking = {**body, "max_tokens": 99, "thinking": {"type": "enabled", "budget_tokens": 10}, "stream": True}
        events = [
            e.split("\n")[0].removeprefix("event: ")
            for e in http.post("/v1/messages", json=thinking).text.split("\n\n")
            if e
        ]
        assert events == [
            "message_start", "ping",
            "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
            "content_block_start", *["content_block_delta"] * 5, "content_block_stop",
            "message_delta", "message_stop",
        ]  # fmt: skip
        err = http.post("/v1/messages", json={**body, "model": "fail-529"})
        assert err.status_code == 529 and err.json()["error"]["type"] == "overloaded_error"
        assert http.post("/v1/messages", json={"model": "m"}).status_code == 400


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-anthropic:begin -->", "<!-- observed-anthropic:end -->"


def render_observed(runs: Runs) -> str:
    """Per library (alone): span names, attribute and content keys, span events."""
    out = []
    for config in ("sdk", "openinference", "openllmetry"):
        spans = runs.observed(config)
        env = ", ".join(f"`{k}={v}`" for k, v in CONFIGS[config].env.items()) or "none"
        out += [f"### `{config}`", "", f"- over OTLP/{CONFIGS[config].protocol}; environment: {env}"]
        out += [*observed_lines(spans), ""]
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))


def _logs(runs: Runs, config: str, scenario: str) -> list[dict[str, Any]]:
    return runs.collector.query(
        "SELECT l.event_name, l.body, l.span_id, s.name AS span_name FROM logs l "
        "LEFT JOIN spans s ON s.project = l.project AND s.trace_id = l.trace_id AND s.span_id = l.span_id "
        "WHERE l.project = ? AND l.trace_id = ? ORDER BY l.time_unix_nano, l.observed_time_unix_nano",
        [config, runs.trace(config, scenario)],
    )


def test_openllmetry_log_events(runs: Runs) -> None:
    """OpenLLMetry with use_attributes=False: the same usage, no content and no finish reasons on the span,
    content as log records that link to the *caller's* span (0.62.4, not spanlake: they carry its span id)."""
    for scenario in EXPECTED:
        row, plain = runs.call("openllmetry_events", scenario), runs.call("openllmetry", scenario)
        for col in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens"):
            assert row[col] == plain[col], (scenario, col)
        assert (row["content"], row["finish_reasons"]) == (None, None), scenario
        logs = _logs(runs, "openllmetry_events", scenario)
        assert {r["span_name"] for r in logs} == {f"scenario {scenario}"}, scenario
    chat = _logs(runs, "openllmetry_events", "chat")
    assert [r["event_name"] for r in chat] == ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]
    system, user, choice = (json.loads(r["body"]) for r in chat)
    assert system["content"][0]["text"] == client.SYSTEM and user == {"content": client.QUESTION}
    assert choice == {"index": 0, "message": {"content": REPLY}, "finish_reason": "stop"}
    tools = _logs(runs, "openllmetry_events", "tools")
    # The tool definitions come as a second gen_ai.user.message; the call in gen_ai.choice.
    assert [r["event_name"] for r in tools] == ["gen_ai.user.message", "gen_ai.user.message", "gen_ai.choice"]
    assert json.loads(tools[1]["body"])["content"]["tools"][0]["name"] == "get_weather"
    (call,) = json.loads(tools[2]["body"])["tool_calls"]
    assert (call["id"], call["function"]) == (TOOL_ID, {"name": "get_weather", "arguments": {"location": "Paris"}})
    # Thinking is a choice of its own, index 0, before the reply.
    thinking = [json.loads(r["body"]) for r in _logs(runs, "openllmetry_events", "thinking")][1:]
    assert [(c["index"], c["message"]["content"]) for c in thinking] == [(0, THOUGHT), (1, REPLY)]


def test_only_openllmetry_events_sends_logs(runs: Runs) -> None:
    for config in set(CONFIGS) - {"openllmetry_events"}:
        assert runs.collector.query("SELECT count(*) AS n FROM logs WHERE project = ?", [config]) == [{"n": 0}]
