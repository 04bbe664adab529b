"""A small, deterministic Bedrock Runtime server for tests (no network, no model, no AWS account).

boto3's ``bedrock-runtime`` client talks to it with ``endpoint_url=server.url`` and any
credentials (requests are SigV4-signed by the client; the signature is not checked). Endpoints,
in the REST-JSON shapes of botocore's ``bedrock-runtime`` service model:

- ``POST /model/{modelId}/converse`` (Converse) and ``/converse-stream`` (ConverseStream, AWS
  event-stream framing: spanlake.demo.aws_eventstream), for any model id;
- ``POST /model/{modelId}/invoke`` (InvokeModel) and ``/invoke-with-response-stream`` for
  Anthropic model ids (``anthropic.claude-...``, inference profiles ``us.anthropic.claude-...``,
  an ARN ending in one): the body is an Anthropic Messages request (``anthropic_version``,
  no ``model``), answered as spanlake.demo.fake_anthropic answers it.

Every answer is a pure function of the request, so tests can assert exact numbers.

Converse (``words(s)`` = ``len(s.split())``, as in spanlake.demo.fake_openai):

- The prompt is the ``text`` blocks of ``system`` and of every message's ``content``, and the
  ``text`` items of ``toolResult`` blocks; tools, tool uses and images count nothing.
- Prompt caching: the words of the text blocks before the last ``cachePoint`` block (system and
  messages in order) are the cached prefix; ``cacheReadInputTokens`` = prefix // 2,
  ``cacheWriteInputTokens`` = the rest of the prefix (both sent only when a ``cachePoint`` is
  given). ``inputTokens`` = prompt words - prefix: like Anthropic's, Bedrock's input count
  **excludes** cache reads and writes. ``totalTokens`` = input + output + cache read + cache write.
- The reply: ``toolConfig.tools`` given, the last user message's text contains "weather" and it
  holds no ``toolResult``: one ``toolUse`` block (``toolUseId`` ``tooluse_fake_0``, the first
  tool's name, ``input`` ``{"location": "Paris"}``), ``stopReason`` ``tool_use``, its visible
  text ``f"{name} {json.dumps(input)}"``. Else the text ``"Fake reply: <last user text>"``, cut
  to ``inferenceConfig.maxTokens`` words with ``stopReason`` ``max_tokens``, else ``end_turn``.
- ``additionalModelRequestFields.thinking.type`` ``enabled``: a ``reasoningContent`` block
  first, text ``"Thinking about: <last user text>"``, signature ``sig_fake``; its words count
  as output (Bedrock reports no reasoning count of its own).
- ``outputTokens`` = words of the visible text (+ thinking); ``metrics.latencyMs`` = 42.
- ConverseStream events: ``messageStart``; per block ``contentBlockStart`` (tool uses only, as
  Bedrock does), one ``contentBlockDelta`` per word (a tool's input JSON in two halves, the
  thinking text whole then its signature), ``contentBlockStop``; ``messageStop``;
  ``metadata`` (usage, metrics). The server waits ``first_chunk_delay_s`` before the first delta.

InvokeModel (Anthropic): the Anthropic rule of spanlake.demo.fake_anthropic (``cache_control``
blocks, ``usage`` with ``cache_read_input_tokens`` / ``cache_creation_input_tokens``), with
``model`` = the Anthropic name in the model id (``us.anthropic.claude-haiku-4-5-20251001-v1:0``
→ ``claude-haiku-4-5-20251001``). Response headers ``X-Amzn-Bedrock-Input-Token-Count`` (the
Anthropic ``input_tokens``), ``-Output-Token-Count``, ``-Cache-Read-Input-Token-Count``,
``-Cache-Write-Input-Token-Count``, ``-Invocation-Latency``. The stream sends each Anthropic event
but ``ping`` as a ``chunk`` event ``{"bytes": base64(json)}``; the ``message_stop`` chunk carries
``amazon-bedrock-invocationMetrics`` (the same counts).

Every response has ``x-amzn-RequestId`` (a UUID from the request's hash). Errors have the AWS
shape: body ``{"message": ...}``, header ``x-amzn-ErrorType: <Name>:http://internal.amazon.com/...``.
Failure injection by model id: ``fail-<code>`` answers that status (429 ``ThrottlingException``,
400 ``ValidationException``, 403 ``AccessDeniedException``, 404 ``ResourceNotFoundException``,
408 ``ModelTimeoutException``, 424 ``ModelErrorException``, 503 ``ServiceUnavailableException``,
others ``InternalServerException``). A malformed body is a 400 ``ValidationException``. Note
boto3 retries throttling and 5xx unless ``Config(retries={"total_max_attempts": 1})``.

Run it: ``with FakeBedrock() as s: boto3.client("bedrock-runtime", endpoint_url=s.url, ...)``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from spanlake.demo import aws_eventstream
from spanlake.demo.fake_anthropic import message_reply, stream_events
from spanlake.demo.fake_openai import FakeOpenAI, words

TOOL_USE_ID = "tooluse_fake_0"
TOOL_INPUT = {"location": "Paris"}
SIGNATURE = "sig_fake"
LATENCY_MS = 42
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
EVENT_STREAM = "application/vnd.amazon.eventstream"
_ANTHROPIC_ID = re.compile(r"(?:^|[./])anthropic\.(claude-[a-z0-9.-]+?)(?:-v\d+(?::\d+)?)?$")


class BadRequest(ValueError):
    """A request the fake answers with a 400 ValidationException."""


def anthropic_model_name(model_id: str) -> str | None:
    """The Anthropic model a Bedrock model id names (`us.anthropic.claude-x-v1:0` → `claude-x`), or None."""
    m = _ANTHROPIC_ID.search(model_id)
    return m.group(1) if m else None


def _request_id(body: Any) -> str:
    return str(uuid.UUID(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]))


def _blocks(items: Any, what: str) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(b, dict) for b in items):
        raise BadRequest(f"{what} must be a list of content blocks")
    return items


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest("each message needs role user or assistant")
        _blocks(m.get("content"), "content")
    return messages


def _block_words(block: dict[str, Any]) -> int:
    if "text" in block:
        return words(str(block["text"]))
    result = block.get("toolResult")
    if isinstance(result, dict):
        items = result.get("content") or []
        return sum(words(str(c.get("text", ""))) for c in items if isinstance(c, dict))
    return 0


def _user_text(message: dict[str, Any]) -> str:
    return " ".join(str(b["text"]) for b in message.get("content") or [] if "text" in b)


def converse_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The Converse response that answers `body` (see the module docstring for the rule)."""
    messages = _messages(body)
    blocks = _blocks(body.get("system"), "system") + [b for m in messages for b in m.get("content") or []]
    users = [m for m in messages if m["role"] == "user"]
    last = _user_text(users[-1]) if users else ""
    answered_tool = bool(users) and any("toolResult" in b for b in users[-1].get("content") or [])
    tool_config = body.get("toolConfig") or {}
    tools = [t["toolSpec"] for t in tool_config.get("tools") or [] if isinstance(t, dict) and "toolSpec" in t]
    content: list[dict[str, Any]] = []
    thinking = 0
    extra = body.get("additionalModelRequestFields") or {}
    if isinstance(extra, dict) and (extra.get("thinking") or {}).get("type") == "enabled":
        thought = f"Thinking about: {last}"
        content.append({"reasoningContent": {"reasoningText": {"text": thought, "signature": SIGNATURE}}})
        thinking = words(thought)
    if tools and "weather" in last.lower() and not answered_tool:
        name = str(tools[0].get("name", "tool"))
        content.append({"toolUse": {"toolUseId": TOOL_USE_ID, "name": name, "input": TOOL_INPUT}})
        stop, visible = "tool_use", words(f"{name} {json.dumps(TOOL_INPUT)}")
    else:
        text, stop = f"Fake reply: {last}", "end_turn"
        limit = (body.get("inferenceConfig") or {}).get("maxTokens")
        if isinstance(limit, int) and words(text) > limit:
            text, stop = " ".join(text.split()[:limit]), "max_tokens"
        content.append({"text": text})
        visible = words(text)
    marks = [i for i, b in enumerate(blocks) if "cachePoint" in b]
    prompt = sum(_block_words(b) for b in blocks)
    prefix = sum(_block_words(b) for b in blocks[: marks[-1]]) if marks else 0
    read, write, output = prefix // 2, prefix - prefix // 2, visible + thinking
    usage: dict[str, Any] = {"inputTokens": prompt - prefix, "outputTokens": output, "totalTokens": prompt + output}
    if marks:
        usage |= {"cacheReadInputTokens": read, "cacheWriteInputTokens": write}
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": usage,
        "metrics": {"latencyMs": LATENCY_MS},
    }


def _converse_events(reply: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for i, block in enumerate(reply["output"]["message"]["content"]):
        deltas: list[dict[str, Any]]
        if "toolUse" in block:
            use = block["toolUse"]
            events.append(("contentBlockStart", {"start": {"toolUse": {k: use[k] for k in ("toolUseId", "name")}}}))
            raw = json.dumps(use["input"])
            deltas = [{"toolUse": {"input": part}} for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :])]
        elif "reasoningContent" in block:
            r = block["reasoningContent"]["reasoningText"]
            deltas = [{"reasoningContent": {"text": r["text"]}}, {"reasoningContent": {"signature": r["signature"]}}]
        else:
            parts = block["text"].split(" ")
            deltas = [{"text": p if j == len(parts) - 1 else p + " "} for j, p in enumerate(parts)]
        if events[-1][0] == "contentBlockStart":
            events[-1][1]["contentBlockIndex"] = i
        events += [("contentBlockDelta", {"delta": d, "contentBlockIndex": i}) for d in deltas]
        events.append(("contentBlockStop", {"contentBlockIndex": i}))
    events.append(("messageStop", {"stopReason": reply["stopReason"]}))
    events.append(("metadata", {"usage": reply["usage"], "metrics": reply["metrics"]}))
    return events


def _invoke_reply(model_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic `Message` that answers an InvokeModel `body` for `model_id`."""
    name = anthropic_model_name(model_id)
    if name is None:
        raise BadRequest(f"the fake answers InvokeModel for Anthropic model ids only, not {model_id!r}")
    if not body.get("anthropic_version") or not body.get("max_tokens"):
        raise BadRequest("Malformed input request: anthropic_version and max_tokens are required")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("Malformed input request: messages must be a non-empty list")
    return {**message_reply({**body, "model": name}), "model": name}


def _invocation_metrics(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": LATENCY_MS,
        "firstByteLatency": LATENCY_MS // 2,
        "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
        "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
    }


def _invoke_headers(usage: dict[str, Any]) -> dict[str, str]:
    m = _invocation_metrics(usage)
    return {
        "X-Amzn-Bedrock-Input-Token-Count": str(m["inputTokenCount"]),
        "X-Amzn-Bedrock-Output-Token-Count": str(m["outputTokenCount"]),
        "X-Amzn-Bedrock-Cache-Read-Input-Token-Count": str(m["cacheReadInputTokenCount"]),
        "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": str(m["cacheWriteInputTokenCount"]),
        "X-Amzn-Bedrock-Invocation-Latency": str(LATENCY_MS),
    }


def _invoke_chunks(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The `chunk` events that stream `message`: each Anthropic event but `ping`, base64 JSON."""
    chunks = []
    for kind, data in stream_events(message):
        if kind == "ping":
            continue
        payload = {"type": kind, **data}
        if kind == "message_stop":
            payload["amazon-bedrock-invocationMetrics"] = _invocation_metrics(message["usage"])
        chunks.append(("chunk", {"bytes": base64.b64encode(json.dumps(payload).encode()).decode()}))
    return chunks


async def _event_stream(
    events: list[tuple[str, dict[str, Any]]], first_delta: int, first_chunk_delay_s: float
) -> AsyncIterator[bytes]:
    """`events` as event-stream messages, waiting `first_chunk_delay_s` before `events[first_delta]`."""
    for i, (kind, data) in enumerate(events):
        if i == first_delta and first_chunk_delay_s:
            await asyncio.sleep(first_chunk_delay_s)
        yield aws_eventstream.event(kind, data)
        await asyncio.sleep(0)


def _error(status: int, message: str, request_id: str = "00000000-0000-0000-0000-000000000000") -> JSONResponse:
    kind = ERROR_TYPES.get(status, "InternalServerException")
    headers = {"x-amzn-ErrorType": f"{kind}:{ERROR_NAMESPACE}", "x-amzn-RequestId": request_id}
    return JSONResponse({"message": message}, status, headers=headers)


def create_app(first_chunk_delay_s: float = 0.0) -> FastAPI:
    """The FastAPI app; streams wait `first_chunk_delay_s` before their first content delta."""
    off = {"tracing": False, "metrics": False, "logs": False}  # a fake must stay out of the app's traces
    quiet = {"telemetry": off} if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="spanlake fake Bedrock Runtime", **quiet)  # type: ignore[arg-type]

    async def answer(model_id: str, operation: str, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        rid = _request_id({"model": model_id, "operation": operation, **body})
        if model_id.startswith("fail-"):
            code = model_id.removeprefix("fail-")
            status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 500
            return _error(status, f"injected failure for model {model_id}", rid)
        headers = {"x-amzn-RequestId": rid}
        try:
            if operation.startswith("converse"):
                reply = converse_reply(body)
                if operation == "converse":
                    return JSONResponse(reply, headers=headers)
                events = _converse_events(reply)
                first = [kind for kind, _ in events].index("contentBlockDelta")
                stream = _event_stream(events, first, first_chunk_delay_s)
                return StreamingResponse(stream, media_type=EVENT_STREAM, headers=headers)
            message = _invoke_reply(model_id, body)
        except (BadRequest, AttributeError, TypeError) as e:  # a body of the wrong shape
            return _error(400, f"Malformed input request: {e}", rid)
        if operation == "invoke":
            return JSONResponse(message, headers=headers | _invoke_headers(message["usage"]))
        # message_start, content_block_start, then the first delta (every block has one)
        stream = _event_stream(_invoke_chunks(message), 2, first_chunk_delay_s)
        return StreamingResponse(stream, media_type=EVENT_STREAM, headers=headers)

    def route(operation: str) -> Any:
        async def endpoint(model_id: str, request: Request) -> Response:
            return await answer(model_id, operation, request)

        return endpoint

    for operation in ("converse", "converse-stream", "invoke", "invoke-with-response-stream"):
        app.add_api_route(f"/model/{{model_id:path}}/{operation}", route(operation), methods=["POST"])
    return app


class FakeBedrock(FakeOpenAI):
    """The fake Bedrock Runtime server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", first_chunk_delay_s: float = 0.0) -> None:
        super().__init__(port=port, host=host)
        self._first_chunk_delay_s = first_chunk_delay_s

    @property
    def base_url(self) -> str:
        """What to pass as boto3's `endpoint_url` (or AnthropicBedrock's `base_url`)."""
        return self.url

    def _app(self) -> FastAPI:
        return create_app(self._first_chunk_delay_s)

    def __enter__(self) -> FakeBedrock:
        self.start()
        return self
