"""The fake Bedrock Runtime (spanlake.demo.fake_bedrock): its documented rule over raw HTTP, its
event-stream framing as botocore parses it, and boto3's own client against it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from spanlake.demo import aws_eventstream
from spanlake.demo.fake_bedrock import FakeBedrock, anthropic_model_name

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
TOOL = {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


@pytest.fixture
def http(fake: FakeBedrock) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url) as client:
        yield client


def _messages(buffer: bytes) -> list[Any]:
    parser = EventStreamBuffer()
    parser.add_data(buffer)
    return list(parser)


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def test_framing_is_what_botocore_parses() -> None:
    one = aws_eventstream.event("contentBlockDelta", {"delta": {"text": "héllo "}, "contentBlockIndex": 0})
    two = aws_eventstream.exception("ThrottlingException", "slow down")
    first, second = _messages(one + two)
    assert first.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"delta": {"text": "héllo "}, "contentBlockIndex": 0}
    # prelude 12 + headers (per header: 1 + name + 1 + 2 + value) + payload + CRC 4
    headers = sum(4 + len(k) + len(v) for k, v in first.headers.items())
    assert first.prelude.total_length == len(one) == 12 + headers + len(first.payload) + 4
    assert (second.headers[":message-type"], json.loads(second.payload)) == ("exception", {"message": "slow down"})
    corrupt = bytearray(one)
    corrupt[-5] ^= 1  # a payload byte: the message CRC no longer matches
    with pytest.raises(ChecksumMismatch):
        _messages(bytes(corrupt))
    with pytest.raises(ValueError, match="too long"):
        aws_eventstream.frame({"x" * 256: "v"}, b"")


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
        (MODEL, "claude-haiku-4-5-20251001"),
        ("arn:aws:bedrock:us-east-1:123:inference-profile/eu.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("amazon.nova-lite-v1:0", None),
        ("meta.llama3-8b-instruct-v1:0", None),
    ],
)
def test_anthropic_model_names(model_id: str, name: str | None) -> None:
    assert anthropic_model_name(model_id) == name


def test_converse_rule(http: httpx.Client) -> None:
    system = [{"text": "a b c d e"}, {"cachePoint": {"type": "default"}}]
    body = {"system": system, "messages": [_user("x y z")], "inferenceConfig": {"maxTokens": 3}}
    r = http.post(f"/model/{MODEL}/converse", json=body)
    reply = r.json()
    assert r.headers["x-amzn-RequestId"] == http.post(f"/model/{MODEL}/converse", json=body).headers["x-amzn-RequestId"]
    assert reply["output"]["message"]["content"] == [{"text": "Fake reply: x"}]
    assert reply["stopReason"] == "max_tokens"
    # prompt 5 + 3 = 8 words; cached prefix 5: 2 read, 3 written; input 8 - 5 = 3; output 3
    assert reply["usage"] == {
        "inputTokens": 3,
        "outputTokens": 3,
        "totalTokens": 3 + 3 + 2 + 3,
        "cacheReadInputTokens": 2,
        "cacheWriteInputTokens": 3,
    }
    plain = http.post(f"/model/{MODEL}/converse", json={"messages": [_user("x y z")]}).json()
    assert plain["usage"] == {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8}  # no cache keys at all
    assert plain["stopReason"] == "end_turn"


def test_converse_tool_use_then_answer(http: httpx.Client) -> None:
    body = {"messages": [_user("weather in Paris?")], "toolConfig": {"tools": [TOOL]}}
    reply = http.post(f"/model/{MODEL}/converse", json=body).json()
    (block,) = reply["output"]["message"]["content"]
    assert block == {"toolUse": {"toolUseId": "tooluse_fake_0", "name": "get_weather", "input": {"location": "Paris"}}}
    assert (reply["stopReason"], reply["usage"]["outputTokens"]) == (
        "tool_use",
        3,
    )  # "get_weather {"location": "Paris"}"
    result = {"toolResult": {"toolUseId": "tooluse_fake_0", "content": [{"text": "sunny and 20 C"}]}}
    turn = [_user("weather in Paris?"), reply["output"]["message"], {"role": "user", "content": [result]}]
    answer = http.post(f"/model/{MODEL}/converse", json={**body, "messages": turn}).json()
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"]["inputTokens"] == 3 + 4  # both users' texts, the tool result's text included


def test_converse_thinking(http: httpx.Client) -> None:
    body = {"messages": [_user("x y")], "additionalModelRequestFields": {"thinking": {"type": "enabled"}}}
    reply = http.post(f"/model/{MODEL}/converse", json=body).json()
    thinking, text = reply["output"]["message"]["content"]
    assert thinking == {"reasoningContent": {"reasoningText": {"text": "Thinking about: x y", "signature": "sig_fake"}}}
    assert (text, reply["usage"]["outputTokens"]) == ({"text": "Fake reply: x y"}, 4 + 4)


def test_converse_stream_events(http: httpx.Client) -> None:
    body = {"messages": [_user("weather now")], "toolConfig": {"tools": [TOOL]}}
    r = http.post(f"/model/{MODEL}/converse-stream", json=body)
    assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
    events = [(m.headers[":event-type"], json.loads(m.payload)) for m in _messages(r.content)]
    assert [e for e, _ in events] == [
        "messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockDelta", "contentBlockStop",
        "messageStop", "metadata",
    ]  # fmt: skip
    assert events[1][1] == {
        "start": {"toolUse": {"toolUseId": "tooluse_fake_0", "name": "get_weather"}},
        "contentBlockIndex": 0,
    }
    assert json.loads(events[2][1]["delta"]["toolUse"]["input"] + events[3][1]["delta"]["toolUse"]["input"]) == {
        "location": "Paris"
    }
    assert events[-1][1]["usage"] == {"inputTokens": 2, "outputTokens": 3, "totalTokens": 5}


def test_invoke_anthropic(http: httpx.Client) -> None:
    system = [{"type": "text", "text": "a b c d", "cache_control": {"type": "ephemeral"}}]
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "system": system, "messages": [
        {"role": "user", "content": "hi there"}
    ]}  # fmt: skip
    r = http.post(f"/model/{MODEL}/invoke", json=body)
    m = r.json()
    assert (m["model"], m["content"][0]["text"], m["stop_reason"]) == (
        "claude-haiku-4-5-20251001",
        "Fake reply: hi there",
        "end_turn",
    )
    # Anthropic's usage: prompt 6 words, cached prefix 4 (2 read, 2 written), input 2; output 4
    assert (
        m["usage"]["input_tokens"],
        m["usage"]["cache_read_input_tokens"],
        m["usage"]["cache_creation_input_tokens"],
    ) == (2, 2, 2)
    assert {k.lower(): v for k, v in r.headers.items() if k.lower().startswith("x-amzn-bedrock")} == {
        "x-amzn-bedrock-input-token-count": "2",
        "x-amzn-bedrock-output-token-count": "4",
        "x-amzn-bedrock-cache-read-input-token-count": "2",
        "x-amzn-bedrock-cache-write-input-token-count": "2",
        "x-amzn-bedrock-invocation-latency": "42",
    }
    stream = http.post(f"/model/{MODEL}/invoke-with-response-stream", json=body)
    chunks = [json.loads(base64.b64decode(json.loads(m.payload)["bytes"])) for m in _messages(stream.content)]
    assert [c["type"] for c in chunks] == [
        "message_start", "content_block_start", *["content_block_delta"] * 4, "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert chunks[-1]["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 2,
        "outputTokenCount": 4,
        "invocationLatency": 42,
        "firstByteLatency": 21,
        "cacheReadInputTokenCount": 2,
        "cacheWriteInputTokenCount": 2,
    }


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/model/fail-429/converse", {"messages": [_user("x")]}, 429, "ThrottlingException"),
        ("/model/fail-400/invoke", {}, 400, "ValidationException"),
        ("/model/fail-503/converse-stream", {}, 503, "ServiceUnavailableException"),
        ("/model/fail-599/converse", {}, 599, "InternalServerException"),
        ("/model/fail-x/converse", {}, 500, "InternalServerException"),
        (f"/model/{MODEL}/converse", {"messages": []}, 400, "ValidationException"),
        (f"/model/{MODEL}/converse", {"messages": [{"role": "bot", "content": []}]}, 400, "ValidationException"),
        (f"/model/{MODEL}/converse", {"messages": [{"role": "user", "content": "text"}]}, 400, "ValidationException"),
        (f"/model/{MODEL}/converse", {"messages": [_user("x")], "toolConfig": "tools"}, 400, "ValidationException"),
        (f"/model/{MODEL}/converse", [1, 2], 400, "ValidationException"),
        (
            f"/model/{MODEL}/invoke",
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            400,
            "ValidationException",
        ),
        (
            "/model/amazon.nova-lite-v1:0/invoke",
            {"anthropic_version": "x", "max_tokens": 5},
            400,
            "ValidationException",
        ),
    ],
)
def test_errors_have_the_aws_shape(http: httpx.Client, path: str, body: Any, status: int, kind: str) -> None:
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["x-amzn-ErrorType"] == f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    assert set(r.json()) == {"message"}


def test_a_body_that_is_not_json(http: httpx.Client) -> None:
    r = http.post(f"/model/{MODEL}/converse", content=b"{not json")
    assert (r.status_code, r.headers["x-amzn-ErrorType"].split(":")[0]) == (400, "ValidationException")


def test_boto3_reads_every_answer(fake: FakeBedrock) -> None:
    """boto3's own parsing (REST-JSON, event streams, modelled errors) of the fake's answers."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.url,
        aws_access_key_id="AKIDFAKE",
        aws_secret_access_key="fake",
        config=Config(retries={"total_max_attempts": 1}),
    )
    reply = client.converse(modelId=MODEL, messages=[_user("x y")])
    assert (reply["stopReason"], reply["usage"]["totalTokens"], reply["metrics"]["latencyMs"]) == ("end_turn", 6, 42)
    events = list(client.converse_stream(modelId=MODEL, messages=[_user("x y")])["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert (text, events[-1]["metadata"]["usage"]["outputTokens"]) == ("Fake reply: x y", 4)
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}]}
    answer = json.loads(client.invoke_model(modelId=MODEL, body=json.dumps(body))["body"].read())
    assert answer["content"][0]["text"] == "Fake reply: x"
    chunks = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))["body"]
    assert json.loads(list(chunks)[-1]["chunk"]["bytes"])["type"] == "message_stop"
    with pytest.raises(ClientError) as e:
        client.converse(modelId="fail-429", messages=[_user("x")])
    assert (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ThrottlingException",
        429,
    )
