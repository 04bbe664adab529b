"""The real `google-genai` client, through OpenInference → real OTLP exporter → the real collector.

The instrumented client runs in its own process (tests/collector/instrumented_gemini.py) against
spanlake's fake Gemini server (spanlake.demo.fake_gemini), exporting over loopback to a
collector in this process. Expected numbers come from the fake server's documented rule, worked
out by hand below; the cost from genai-prices' own `calc_price`, computed here.

opentelemetry-instrumentation-google-genai is in test_instrumentations_gemini_otel.py: it needs
opentelemetry-util-genai >= 1.x, which breaks the pinned openai-v2 2.4b0, so it runs in a
virtualenv of its own (docs/instrumentations.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.detail import trace_detail
from spanlake.demo.fake_gemini import FakeGemini
from tests.collector import instrumented_gemini as client
from tests.collector.instrumented_runs import Launch, Runs, check_observed, observed_lines, run_configurations

ROOT = Path(__file__).parents[2]
CONFIGS = {"openinference": "http"}


def _launch(fake: FakeGemini, name: str, protocol: str) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_gemini", name, "--url", fake.url]
    return Launch(argv, protocol, ("OTEL_", "GOOGLE_", "GEMINI_"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with run_configurations(tmp_path_factory.mktemp("gemini") / "data", FakeGemini(), CONFIGS, _launch) as r:
        yield r


# Expected usage from the fake server's rule (words = whitespace-separated words; cached =
# prompt // 2, a part of the prompt count; thoughts reported apart from candidates).
REPLY = f"Fake reply: {client.QUESTION}"  # 8 words
CHAT = {"in": 3 + 6, "read": 4, "out": 8, "reasoning": None}
TOOLS = {"in": 7, "read": 3, "out": 3, "reasoning": None}  # 'get_weather {"location": "Paris"}' = 3 words
THINKING = {"in": 6, "read": 3, "out": 8 + 8, "reasoning": 8}  # candidates 8 + thoughts 8
EXPECTED = {"chat": CHAT, "stream": CHAT, "tools": TOOLS, "thinking": THINKING}


def test_calls_are_normalized(runs: Runs) -> None:
    for scenario, exp in EXPECTED.items():
        row = runs.call("openinference", scenario)
        assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "gcp.gen_ai"), scenario
        assert (row["request_model"], row["response_model"]) == (client.MODEL, client.MODEL)
        got = (row["input_tokens"], row["output_tokens"], row["total_tokens"])
        assert got == (exp["in"], exp["out"], exp["in"] + exp["out"]), scenario
        assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (exp["read"], None), scenario
        # Gemini's thoughtsTokenCount is apart from candidatesTokenCount: OpenInference adds it to
        # the completion count, so reasoning is a part of output_tokens as spanlake's rule wants.
        assert row["reasoning_tokens"] == exp["reasoning"], scenario
        assert row["finish_reasons"] == ["STOP"]  # Gemini says STOP for a function call too
        assert row["time_to_first_token_ms"] is None  # OpenInference sends none for Gemini streams
        assert row["status_code"] == "OK" and row["error_type"] is None


def test_cost_is_genai_prices(runs: Runs) -> None:
    an = Analytics(runs.collector.data_dir)
    for scenario, exp in EXPECTED.items():
        detail = trace_detail(an, runs.trace("openinference", scenario), "openinference")
        assert detail is not None
        (call,) = [s for s in detail.spans if s["category"] == "llm"]
        usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["read"], output_tokens=exp["out"])
        want = float(calc_price(usage, client.MODEL, provider_id="google").total_price)
        assert call["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), scenario


def test_messages_and_function_call(runs: Runs) -> None:
    chat = json.loads(runs.call("openinference", "chat")["content"])
    assert (chat["llm.input_messages.0.message.role"], chat["llm.input_messages.0.message.content"]) == (
        "system",
        client.SYSTEM,
    )
    assert chat["llm.input_messages.1.message.content"] == client.QUESTION
    assert chat["llm.output_messages.0.message.content"] == REPLY
    tools = json.loads(runs.call("openinference", "tools")["content"])
    call = "llm.output_messages.0.message.tool_calls.0.tool_call.function."
    assert tools[call + "name"] == "get_weather"
    assert json.loads(tools[call + "arguments"]) == {"location": "Paris"}
    assert json.loads(tools["llm.tools.0.tool.json_schema"])["name"] == "get_weather"
    thinking = json.loads(runs.call("openinference", "thinking")["content"])
    parts = "llm.output_messages.0.message.contents."
    assert (thinking[parts + "0.message_content.type"], thinking[parts + "0.message_content.text"]) == (
        "reasoning",
        f"Thinking about: {client.QUESTION}",  # include_thoughts: the thought comes back as a part
    )
    assert (thinking[parts + "1.message_content.type"], thinking[parts + "1.message_content.text"]) == ("text", REPLY)


def test_failed_call(runs: Runs) -> None:
    row = runs.call("openinference", "error")
    assert (row["status_code"], row["error_type"]) == ("ERROR", "google.genai.errors.ClientError")
    assert (row["request_model"], row["response_model"]) == ("fail-429", "fail-429")  # llm.model_name only
    assert (row["input_tokens"], row["total_tokens"]) == (None, None)


def test_fake_server_rule_over_raw_http() -> None:
    import httpx

    body = {
        "systemInstruction": {"parts": [{"text": "a b"}]},
        "contents": [{"role": "user", "parts": [{"text": "c d e"}]}],
        "generationConfig": {"maxOutputTokens": 2, "thinkingConfig": {"thinkingBudget": 9, "includeThoughts": True}},
    }
    with FakeGemini() as fake, httpx.Client(base_url=fake.url) as http:
        r = http.post("/v1beta/models/m:generateContent", json=body).json()
        (cand,) = r["candidates"]
        assert [p.get("thought", False) for p in cand["content"]["parts"]] == [True, False]
        assert (cand["content"]["parts"][1]["text"], cand["finishReason"]) == ("Fake reply:", "MAX_TOKENS")
        u = r["usageMetadata"]
        assert (u["promptTokenCount"], u["cachedContentTokenCount"], u["candidatesTokenCount"]) == (5, 2, 2)
        assert (u["thoughtsTokenCount"], u["totalTokenCount"]) == (5, 5 + 2 + 5)
        text = http.post("/v1/models/m:streamGenerateContent?alt=sse", json=body).text
        chunks = [json.loads(e.removeprefix("data: ")) for e in text.split("\r\n\r\n") if e]
        assert len(chunks) == 3 and chunks[-1]["usageMetadata"] == u and "usageMetadata" not in chunks[0]
        # google-genai sends thinkingConfig's fields in the proto's spelling; Google's API reads both.
        snake = {**body, "generationConfig": {"thinkingConfig": {"thinking_budget": 9, "include_thoughts": True}}}
        parts = http.post("/v1/models/m:generateContent", json=snake).json()["candidates"][0]["content"]["parts"]
        assert [p.get("thought", False) for p in parts] == [True, False]
        off = {**body, "generationConfig": {"thinkingConfig": {"thinking_budget": 0, "include_thoughts": True}}}
        assert "thoughtsTokenCount" not in http.post("/v1/models/m:generateContent", json=off).json()["usageMetadata"]
        err = http.post("/v1/models/fail-429:generateContent", json=body)
        assert (err.status_code, err.json()["error"]["status"]) == (429, "RESOURCE_EXHAUSTED")


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    out = []
    for config, protocol in CONFIGS.items():
        spans = runs.observed(config)
        out += [f"### `{config}`", "", f"- over OTLP/{protocol}", *observed_lines(spans), ""]
    check_observed(runs, DOC, "<!-- observed-gemini:begin -->", "<!-- observed-gemini:end -->", "\n".join(out))
