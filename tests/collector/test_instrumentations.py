"""Real OpenAI instrumentations → real OTLP exporters → the real collector → the lake.

Each library runs in its own process (tests/collector/instrumented_client.py) with the real
`openai` client against spanlake's fake OpenAI server, exporting over loopback to a collector
in this process. Nothing here states what a library "probably" emits: the expected numbers
come from the fake server's documented rule (spanlake.demo.fake_openai), worked out by hand
below, and each library's capabilities are what it was observed to send (docs/instrumentations.md).

All configurations run once per module, concurrently, each under its own spanlake project.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector import instrumented_client as client
from tests.collector.instrumented_runs import Launch, check_observed, observed_keys, observed_lines, run_configurations
from tests.collector.instrumented_runs import Runs as BaseRuns

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
LATEST = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}

# Expected usage, from the fake server's rule (words = whitespace-separated words;
# cached = prompt // 2; reasoning = number of input messages; completion = visible words + reasoning).
REPLY = f"Fake reply: {client.QUESTION}"  # 8 words
CHAT = {"in": 3 + 6, "cached": 4, "reasoning": 2, "out": 8 + 2}  # system (3) + question (6); 2 messages
STREAM = {"in": 6, "cached": 3, "reasoning": 1, "out": 8 + 1}
TOOLS = {"in": 7, "cached": 3, "reasoning": 1, "out": 3 + 1}  # 'get_weather {"location": "Paris"}' = 3 words
JSON_LENGTH = {"in": 7, "cached": 3, "reasoning": 1, "out": client.JSON_MAX_TOKENS + 1}  # cut to max_tokens words
EMBED_TOKENS = 3 + 3


@dataclass(frozen=True)
class Lib:
    """One library in one configuration, and what it was observed to report."""

    library: str
    protocol: str
    env: dict[str, str]
    details: bool  # cached and reasoning tokens on non-streaming calls
    stream_details: tuple[bool, bool]  # (cached, reasoning) on a stream
    stream_finish: bool  # finish reasons on a streaming span
    ttft: bool  # time to first token on a streaming span
    tool_finish: str
    embed_cached: int | None
    error_type: str
    span_content: bool  # prompts and completions on the span (content column)
    log_events: tuple[str, ...] = field(default=())  # log records of the chat call, in order


LIBS = {
    # Official OTel, default (semconv v1.30): content only as per-message log events.
    "openai_v2": Lib(
        "openai_v2", "grpc", {CAPTURE: "true"}, False, (False, False), False, False, "tool_calls", None,
        "InternalServerError", False, ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"),
    ),
    # Official OTel, latest experimental conventions, content on spans.
    "openai_v2_latest": Lib(
        "openai_v2", "http", {**LATEST, CAPTURE: "span_only"}, False, (False, False), False, False, "tool_calls",
        None, "InternalServerError", True,
    ),
    # Official OTel, latest experimental conventions, content in one log event per call.
    "openai_v2_latest_events": Lib(
        "openai_v2", "grpc", {**LATEST, CAPTURE: "event_only"}, False, (False, False), False, False, "tool_calls",
        None, "InternalServerError", False, ("gen_ai.client.inference.operation.details",),
    ),
    "openinference": Lib(
        "openinference", "http", {}, True, (True, True), True, True, "tool_calls", None,
        "openai.InternalServerError", True,
    ),
    "traceloop": Lib(
        "traceloop", "grpc", {}, True, (True, False), True, True, "tool_call", 0, "InternalServerError", True
    ),
    "traceloop_events": Lib(
        "traceloop_events", "http", {}, True, (True, False), True, True, "tool_call", 0, "InternalServerError",
        False, ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"),
    ),
}  # fmt: skip
LOG_LIBS = [k for k, v in LIBS.items() if v.log_events]
SPAN_CONTENT_LIBS = [k for k, v in LIBS.items() if v.span_content]


@dataclass
class Runs(BaseRuns):
    def logs(self, config: str, scenario: str) -> list[dict[str, Any]]:
        """Log records of the scenario's trace, with the name of the span each one is linked to."""
        return self.collector.query(
            "SELECT l.event_name, l.body, l.attributes, l.span_id, s.name AS span_name FROM logs l "
            "LEFT JOIN spans s ON s.project = l.project AND s.trace_id = l.trace_id AND s.span_id = l.span_id "
            "WHERE l.project = ? AND l.trace_id = ? ORDER BY l.time_unix_nano, l.observed_time_unix_nano",
            [config, self.trace(config, scenario)],
        )


def _launch(fake: FakeOpenAI, config: str, lib: Lib) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_client", lib.library, "--openai-url", fake.base_url]
    return Launch(argv, lib.protocol, ("OTEL_", "TRACELOOP_"), lib.env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    data = tmp_path_factory.mktemp("instrumentations") / "data"
    with run_configurations(data, FakeOpenAI(), LIBS, _launch, Runs) as r:
        yield r


@pytest.fixture(params=list(LIBS))
def config(request: pytest.FixtureRequest) -> str:
    return request.param


def _usage(row: dict[str, Any], lib: Lib, expected: dict[str, int], cached: bool, reasoning: bool) -> None:
    got = (row["input_tokens"], row["output_tokens"], row["total_tokens"])
    assert got == (expected["in"], expected["out"], expected["in"] + expected["out"])
    assert row["cache_read_tokens"] == (expected["cached"] if cached else None)
    assert row["reasoning_tokens"] == (expected["reasoning"] if reasoning else None)
    assert row["cache_write_tokens"] is None


def test_chat_calls_are_normalized(runs: Runs, config: str) -> None:
    lib = LIBS[config]
    for scenario, expected, finish in (
        ("chat", CHAT, "stop"),
        ("tools", TOOLS, lib.tool_finish),
        ("json_length", JSON_LENGTH, "length"),
    ):
        row = runs.call(config, scenario)
        assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai"), scenario
        assert (row["request_model"], row["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2025-01-01")
        _usage(row, lib, expected, lib.details, lib.details)
        assert row["finish_reasons"] == [finish], scenario
        assert row["status_code"] != "ERROR" and row["error_type"] is None
        assert row["time_to_first_token_ms"] is None
        assert row["service_name"] == f"it-{lib.library}"

    (trace,) = runs.collector.query(
        "SELECT * FROM traces WHERE project = ? AND trace_id = ?", [config, runs.trace(config, "chat")]
    )
    assert (trace["root_name"], trace["span_count"], trace["llm_calls"]) == ("scenario chat", 2, 1)
    assert (trace["input_tokens"], trace["total_tokens"]) == (CHAT["in"], CHAT["in"] + CHAT["out"])


def test_streaming_call(runs: Runs, config: str) -> None:
    lib = LIBS[config]
    row = runs.call(config, "stream")
    assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai")
    assert (row["request_model"], row["response_model"]) == (client.STREAM_MODEL, f"{client.STREAM_MODEL}-2025-01-01")
    _usage(row, lib, STREAM, *lib.stream_details)
    # openai-v2 2.4b0 never fills its stream wrapper's finish_reasons list (the span has none).
    assert row["finish_reasons"] == (["stop"] if lib.stream_finish else None)
    if lib.ttft:  # the fake server holds the first chunk 150 ms
        assert 150.0 <= row["time_to_first_token_ms"] <= row["duration_ms"]
    else:
        assert row["time_to_first_token_ms"] is None


def test_embeddings_call(runs: Runs, config: str) -> None:
    lib = LIBS[config]
    row = runs.call(config, "embeddings")
    assert (row["category"], row["operation"], row["provider"]) == ("embedding", "embeddings", "openai")
    assert (row["request_model"], row["response_model"]) == (
        "text-embedding-3-small",
        "text-embedding-3-small-2025-01-01",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (EMBED_TOKENS, None, EMBED_TOKENS)
    assert row["cache_read_tokens"] == lib.embed_cached
    assert row["finish_reasons"] is None


def test_failed_call(runs: Runs, config: str) -> None:
    row = runs.call(config, "error")
    assert (row["category"], row["operation"], row["request_model"]) == ("llm", "chat", "fail-500")
    assert (row["status_code"], row["error_type"]) == ("ERROR", LIBS[config].error_type)
    assert (row["response_model"], row["input_tokens"], row["total_tokens"]) == (None, None, None)
    (trace,) = runs.collector.query("SELECT has_error FROM traces WHERE trace_id = ?", [runs.trace(config, "error")])
    assert trace["has_error"]


def _parts_messages(raw: str) -> list[dict[str, Any]]:
    return json.loads(raw)


def _text(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


@pytest.mark.parametrize("config", SPAN_CONTENT_LIBS)
def test_message_content_is_in_the_content_column(runs: Runs, config: str) -> None:
    chat, tools = runs.call(config, "chat"), runs.call(config, "tools")
    content, facts = json.loads(chat["content"]), json.loads(chat["attributes"])
    assert not set(content) & set(facts)
    assert client.QUESTION not in chat["attributes"] and REPLY not in chat["attributes"]
    tool_content = json.loads(tools["content"])
    if config == "openinference":
        assert content["llm.input_messages.0.message.content"] == client.SYSTEM
        assert content["llm.input_messages.1.message.content"] == client.QUESTION
        assert content["llm.output_messages.0.message.content"] == REPLY
        assert json.loads(content["input.value"])["messages"][1] == {"role": "user", "content": client.QUESTION}
        call = "llm.output_messages.0.message.tool_calls.0.tool_call."
        assert tool_content[call + "function.name"] == "get_weather"
        assert json.loads(tool_content[call + "function.arguments"]) == {"location": "Paris"}
        assert json.loads(tool_content["llm.tools.0.tool.json_schema"]) == client.WEATHER_TOOL
        return
    # OTel parts format (openai-v2 latest, OpenLLMetry >= 0.55), as JSON strings.
    assert _parts_messages(content["gen_ai.input.messages"]) == [
        _text("system", client.SYSTEM),
        _text("user", client.QUESTION),
    ]
    assert _parts_messages(content["gen_ai.output.messages"]) == [
        {**_text("assistant", REPLY), "finish_reason": "stop"}
    ]
    (out,) = _parts_messages(tool_content["gen_ai.output.messages"])
    (part,) = out["parts"]
    assert (part["type"], part["name"], part["id"], part["arguments"]) == (
        "tool_call", "get_weather", "call_fake_0", {"location": "Paris"},
    )  # fmt: skip


@pytest.mark.parametrize("config", LOG_LIBS)
def test_log_based_content_links_to_its_span(runs: Runs, config: str) -> None:
    lib = LIBS[config]
    chat = runs.call(config, "chat")
    assert chat["content"] is None  # nothing on the span: content lives in the logs view
    logs = runs.logs(config, "chat")
    assert [r["event_name"] for r in logs] == list(lib.log_events)
    assert {r["span_id"] for r in logs} == {chat["span_id"]}
    if config == "openai_v2_latest_events":
        (rec,) = logs
        attrs = json.loads(rec["attributes"])
        assert attrs["gen_ai.input.messages"] == [_text("system", client.SYSTEM), _text("user", client.QUESTION)]
        assert attrs["gen_ai.output.messages"] == [{**_text("assistant", REPLY), "finish_reason": "stop"}]
        assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.request.model"]) == (CHAT["in"], "gpt-4o-mini")
        return
    system, user, choice = (json.loads(r["body"]) for r in logs)
    assert (system, user) == ({"content": client.SYSTEM}, {"content": client.QUESTION})
    assert choice["message"]["content"] == REPLY
    assert (choice["index"], choice["finish_reason"]) == (0, "stop")
    tool_choice = json.loads(runs.logs(config, "tools")[-1]["body"])
    (call,) = tool_choice.get("tool_calls") or tool_choice["message"]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("call_fake_0", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"location": "Paris"}


@pytest.mark.parametrize("config", LOG_LIBS)
def test_streamed_choice_log(runs: Runs, config: str) -> None:
    stream = runs.call(config, "stream")
    linked = {r["event_name"]: r["span_name"] for r in runs.logs(config, "stream")}
    if config == "openai_v2_latest_events":
        assert linked == {"gen_ai.client.inference.operation.details": stream["name"]}
    elif config == "traceloop_events":
        # OpenLLMetry 0.62.4 emits the streamed gen_ai.choice in the caller's context, so it links
        # to the enclosing span, not the LLM span (same trace; found by this test).
        assert linked == {"gen_ai.user.message": stream["name"], "gen_ai.choice": "scenario stream"}
    else:
        assert linked == {"gen_ai.user.message": stream["name"], "gen_ai.choice": stream["name"]}


def test_span_only_modes_send_no_logs(runs: Runs) -> None:
    for config in set(LIBS) - set(LOG_LIBS):
        assert runs.collector.query("SELECT count(*) AS n FROM logs WHERE project = ?", [config]) == [{"n": 0}]


def test_fake_server_rule_over_raw_http() -> None:
    """The documented rule, without any library: usage, the SSE stream, failures, embeddings."""
    import httpx

    body = {"model": "m", "messages": [{"role": "user", "content": "a b c"}], "n": 2, "max_tokens": 2}
    with FakeOpenAI() as fake, httpx.Client(base_url=fake.base_url) as http:
        r = http.post("/chat/completions", json=body).json()
        assert [c["message"]["content"] for c in r["choices"]] == ["Fake reply:"] * 2
        assert r["choices"][0]["finish_reason"] == "length"
        assert r["usage"]["prompt_tokens"] == 3 and r["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
        assert (r["usage"]["completion_tokens"], r["usage"]["total_tokens"]) == (2 * (2 + 1), 3 + 6)
        stream = {**body, "n": 1, "max_tokens": None, "stream": True, "stream_options": {"include_usage": True}}
        lines = [x for x in http.post("/chat/completions", json=stream).text.split("\n\n") if x]
        chunks = [json.loads(x.removeprefix("data: ")) for x in lines[:-1]]
        assert lines[-1] == "data: [DONE]"
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == "Fake reply: a b c"
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 3 + 5 + 1
        assert http.post("/chat/completions", json={**body, "model": "fail-429"}).status_code == 429
        e = http.post("/embeddings", json={"model": "e", "input": "x y", "dimensions": 4}).json()
        assert len(e["data"][0]["embedding"]) == 4 and e["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
        assert "gpt-4o-mini" in [m["id"] for m in http.get("/models").json()["data"]]


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = Path(__file__).parents[2] / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed:begin -->", "<!-- observed:end -->"


def render_observed(runs: Runs) -> str:
    """Per configuration: span names, attribute and content keys, span events and log records seen."""
    out = []
    for config, lib in LIBS.items():
        spans = runs.observed(config)
        logs = runs.collector.query(
            "SELECT event_name, any_value(scope_name) AS scope, list(body) AS bodies, list(attributes) AS attrs "
            "FROM logs WHERE project = ? GROUP BY event_name ORDER BY event_name",
            [config],
        )
        env = ", ".join(f"`{k}={v}`" for k, v in lib.env.items()) or "none"
        out += [f"### `{config}`", "", f"- library `{lib.library}` over OTLP/{lib.protocol}; environment: {env}"]
        out += [*observed_lines(spans)]
        if not logs:
            out.append("- log records: none")
        for rec in logs:
            bodies = [b for b in rec["bodies"] if b and b.startswith("{")]
            out.append(
                f"- log record `{rec['event_name']}` (scope `{rec['scope']}`): body keys {observed_keys(bodies)}; "
                f"attributes {observed_keys(rec['attrs'])}"
            )
        out.append("")
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))
