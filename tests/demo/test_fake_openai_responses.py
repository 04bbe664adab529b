"""The fake OpenAI server's Responses API over raw HTTP: the documented rule, worked out by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from spanlake.demo.fake_openai import FakeOpenAI

WEATHER_TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with FakeOpenAI() as fake, httpx.Client(base_url=fake.base_url) as client:
        yield client


def _events(text: str) -> list[dict[str, Any]]:
    """The SSE events of a streamed answer, checking that each `event:` line names its data's type."""
    out = []
    for block in filter(None, text.split("\n\n")):
        event, data = block.split("\n")
        out.append(json.loads(data.removeprefix("data: ")))
        assert event == "event: " + out[-1]["type"]
    return out


def test_text_reply_and_usage(http: httpx.Client) -> None:
    body = {"model": "gpt-5-nano", "instructions": "Be terse please.", "input": "What is OTel?"}
    r = http.post("/responses", json=body).json()
    (item,) = r["output"]
    assert (item["type"], item["role"], item["status"]) == ("message", "assistant", "completed")
    assert item["content"] == [
        {"type": "output_text", "text": "Fake reply: What is OTel?", "annotations": [], "logprobs": []}
    ]
    assert (r["object"], r["status"], r["model"], r["created_at"]) == (
        "response",
        "completed",
        "gpt-5-nano-2025-01-01",
        1_700_000_000,
    )
    assert r["id"].startswith("resp_") and item["id"] == "msg_" + r["id"].removeprefix("resp_")
    # input: 3 (instructions) + 3; reasoning: 1 item + the instructions; output: 5 words + 2
    assert r["usage"] == {
        "input_tokens": 6,
        "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 13,
    }  # fmt: skip
    assert http.post("/responses", json=body).json() == r  # a pure function of the request


def test_function_call_then_its_answer(http: httpx.Client) -> None:
    ask = {"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]}
    r = http.post("/responses", json={"model": "m", "input": [ask], "tools": [WEATHER_TOOL]}).json()
    (call,) = r["output"]
    assert {k: call[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call",
        "call_id": "call_fake_0",
        "name": "get_weather",
        "arguments": '{"location": "Paris"}',
        "status": "completed",
    }
    # The same call as chat completions' (spanlake.demo.fake_openai).
    chat = http.post(
        "/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "weather in Paris?"}],
              "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]},
    ).json()  # fmt: skip
    (tool_call,) = chat["choices"][0]["message"]["tool_calls"]
    assert (tool_call["id"], tool_call["function"]["arguments"]) == (call["call_id"], call["arguments"])
    # 3 input words, 1 item; 'get_weather {"location": "Paris"}' is 3 words
    assert (r["usage"]["input_tokens"], r["usage"]["output_tokens"]) == (3, 3 + 1)
    answered = [ask, {k: call[k] for k in ("type", "call_id", "name", "arguments")}]
    answered.append({"type": "function_call_output", "call_id": "call_fake_0", "output": "Sunny and mild"})
    r = http.post("/responses", json={"model": "m", "input": answered, "tools": [WEATHER_TOOL]}).json()
    assert r["output"][0]["content"][0]["text"] == "Fake reply: weather in Paris?"
    # input: 3 + 0 (the call) + 3 (its output); reasoning: 3 items; output: 5 + 3
    assert (r["usage"]["input_tokens"], r["usage"]["output_tokens"]) == (6, 8)
    no_tools = http.post("/responses", json={"model": "m", "input": [ask]}).json()
    assert no_tools["output"][0]["type"] == "message"


def test_json_format_and_max_output_tokens(http: httpx.Client) -> None:
    fmt = {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}}
    r = http.post("/responses", json={"model": "m", "input": "one two", "text": fmt}).json()
    assert json.loads(r["output"][0]["content"][0]["text"]) == {"answer": "one two"}
    cut = http.post("/responses", json={"model": "m", "input": "one two three", "max_output_tokens": 2}).json()
    assert (cut["status"], cut["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert (cut["output"][0]["content"][0]["text"], cut["output"][0]["status"]) == ("Fake reply:", "incomplete")
    assert cut["usage"]["output_tokens"] == 2 + 1


def test_stream_events(http: httpx.Client) -> None:
    body = {"model": "m", "input": "hello there", "stream": True}
    events = _events(http.post("/responses", json=body).text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 4,  # one per word of "Fake reply: hello there"
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Fake reply: hello there"
    plain = http.post("/responses", json={**body, "stream": False}).json()
    final = events[-1]["response"]  # the non-streamed answer (its ids hash the request, `stream` included)
    assert (final["status"], final["usage"], final["output"][0]["content"]) == (
        plain["status"],
        plain["usage"],
        plain["output"][0]["content"],
    )
    calls = _events(http.post("/responses", json={**body, "input": "weather?", "tools": [WEATHER_TOOL]}).text)
    deltas = [e["delta"] for e in calls if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"location": "Paris"}' and len(deltas) == 2
    assert calls[-2]["item"]["arguments"] == '{"location": "Paris"}' and calls[2]["item"]["arguments"] == ""
    cut = _events(http.post("/responses", json={**body, "max_output_tokens": 1}).text)
    assert cut[-1]["type"] == "response.incomplete"


def test_failures_and_bad_input(http: httpx.Client) -> None:
    failed = http.post("/responses", json={"model": "fail-503", "input": "x"})
    assert failed.status_code == 503 and failed.json()["error"]["type"] == "server_error"
    bad_bodies: list[Any] = [
        {"input": "x"},
        {"model": "m"},
        {"model": "m", "input": 3},
        {"model": "m", "input": "x", "max_output_tokens": "many"},
        {"model": "m", "input": "x", "max_output_tokens": 0},
        {"model": "m", "input": "x", "text": "plain"},
        {"model": "m", "input": "x", "text": {"format": "json"}},
        {"model": "m", "input": "x", "tools": {"type": "function"}},
        {"model": "m", "input": "x", "instructions": 5},
        ["not", "an", "object"],
    ]
    for bad in bad_bodies:
        r = http.post("/responses", json=bad)
        assert (r.status_code, r.json()["error"]["type"]) == (400, "invalid_request_error"), bad
    r = http.post("/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
