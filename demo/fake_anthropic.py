"""A small, deterministic Anthropic Messages API server for tests (no network, no model).

Endpoint: ``POST /v1/messages``, plain or ``stream: true`` as SSE, in the shapes of the
``anthropic`` package's types (``Message``, ``Usage``, ``RawMessageStreamEvent``). Every answer
is a pure function of the request, so tests can assert exact numbers:

- ``words(s)`` is ``len(s.split())``; a block's text is its ``text`` (text blocks) or the text of
  a ``tool_result``'s content; ``system`` is a string or a list of text blocks. Images, tool
  definitions and tool_use blocks count nothing.
- The prompt is ``system`` then the messages, block by block. ``prompt`` = all its words.
  The *cached prefix* is the prompt up to and including the last block that has
  ``cache_control``; ``prefix`` = its words. Of it, ``prefix // 2`` words are read from the
  cache (``cache_read_input_tokens``) and the rest are written (``cache_creation_input_tokens``),
  in ``cache_creation.ephemeral_1h_input_tokens`` when that last block's ``cache_control.ttl``
  is ``"1h"``, else in ``ephemeral_5m_input_tokens``. ``input_tokens`` = ``prompt`` minus both,
  as the real API reports it (without cache reads and writes).
- The reply: ``tools`` given and the last user text contains "weather": one ``tool_use`` block
  (``id="toolu_fake_0"``, the first tool's name, ``input={"location": "Paris"}``), stop reason
  ``tool_use``, visible text ``f"{name} {json.dumps(input)}"``; else a text block
  ``"Fake reply: <last user text>"``, cut to ``max_tokens`` words with stop reason
  ``max_tokens``, else ``end_turn``.
- ``thinking: {"type": "enabled"}`` (or ``"adaptive"``): a ``thinking`` block first, text
  ``"Thinking about: <last user text>"``, ``signature`` ``"sig_fake"``; its words are
  ``output_tokens_details.thinking_tokens``.
- ``output_tokens`` = visible words + thinking words (thinking is billed as output).
- Response ``model`` = request model + ``"-20250929"`` (an alias answered by a dated model);
  ``id`` = ``"msg_"`` + 24 hex of the request's hash; header ``request-id`` = ``"req_"`` + the same.
- Streaming: ``message_start`` (empty content, the input usage, ``output_tokens`` 1), ``ping``,
  per block ``content_block_start`` / deltas (``thinking_delta`` then ``signature_delta``, one
  ``text_delta`` per word, ``input_json_delta`` in two halves) / ``content_block_stop``, then
  ``message_delta`` (stop reason, cumulative usage) and ``message_stop``. The server waits
  ``first_chunk_delay_s`` before the first content delta.

Failure injection by model name: ``fail-<code>`` answers that status with an Anthropic error
body (529 ``overloaded_error``, 429 ``rate_limit_error``, 400 ``invalid_request_error``, others
``api_error``). The anthropic client retries 429/5xx unless ``max_retries=0``.

Run it: ``with FakeAnthropic() as server: Anthropic(base_url=server.url, api_key="x")``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from spanlake.demo.fake_openai import FakeOpenAI, words

MODEL_SUFFIX = "-20250929"
TOOL_USE_ID = "toolu_fake_0"
TOOL_INPUT = {"location": "Paris"}
SIGNATURE = "sig_fake"
ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        content = block.get("content")
        return content if isinstance(content, str) else " ".join(_block_text(b) for b in content or [])
    return ""


def _blocks(content: Any) -> list[Any]:
    return [content] if isinstance(content, str) else list(content or [])


def _prompt_blocks(body: dict[str, Any]) -> list[Any]:
    blocks = _blocks(body.get("system"))
    for m in body.get("messages") or []:
        blocks.extend(_blocks(m.get("content")))
    return blocks


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            texts = [_block_text(b) for b in _blocks(m.get("content")) if isinstance(b, str) or b.get("type") == "text"]
            return " ".join(t for t in texts if t)
    return ""


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def usage_of(body: dict[str, Any], output_tokens: int, thinking_tokens: int | None) -> dict[str, Any]:
    """The `usage` object of the reply to `body` (see the module docstring for the rule)."""
    blocks = _prompt_blocks(body)
    prompt = sum(words(_block_text(b)) for b in blocks)
    marked = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
    prefix, ttl = 0, "5m"
    if marked:
        prefix = sum(words(_block_text(b)) for b in blocks[: marked[-1] + 1])
        ttl = blocks[marked[-1]]["cache_control"].get("ttl") or "5m"
    read = prefix // 2
    write = prefix - read
    usage: dict[str, Any] = {
        "input_tokens": prompt - read - write,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": 0 if ttl == "1h" else write,
            "ephemeral_1h_input_tokens": write if ttl == "1h" else 0,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if thinking_tokens is not None:
        usage["output_tokens_details"] = {"thinking_tokens": thinking_tokens}
    return usage


def message_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The complete `Message` that answers `body`."""
    messages = body.get("messages") or []
    last = _last_user_text(messages)
    tools = body.get("tools") or []
    content: list[dict[str, Any]] = []
    thinking_tokens = None
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        thought = f"Thinking about: {last}"
        content.append({"type": "thinking", "thinking": thought, "signature": SIGNATURE})
        thinking_tokens = words(thought)
    if tools and "weather" in last.lower():
        name = tools[0].get("name", "tool")
        content.append({"type": "tool_use", "id": TOOL_USE_ID, "name": name, "input": TOOL_INPUT})
        stop, visible = "tool_use", words(f"{name} {json.dumps(TOOL_INPUT)}")
    else:
        text, stop = f"Fake reply: {last}", "end_turn"
        limit = int(body.get("max_tokens") or 0)
        if words(text) > limit:
            text, stop = " ".join(text.split()[:limit]), "max_tokens"
        content.append({"type": "text", "text": text, "citations": None})
        visible = words(text)
    return {
        "id": "msg_" + _digest(body)[:24],
        "type": "message",
        "role": "assistant",
        "model": body["model"] + MODEL_SUFFIX,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage_of(body, visible + (thinking_tokens or 0), thinking_tokens),
    }


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _deltas(block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A block's `content_block_start` shape and its deltas."""
    if block["type"] == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}]
        return {"type": "thinking", "thinking": "", "signature": ""}, [
            *deltas,
            {"type": "signature_delta", "signature": block["signature"]},
        ]
    if block["type"] == "tool_use":
        raw = json.dumps(block["input"])
        half = len(raw) // 2
        start = {**block, "input": {}}
        return start, [{"type": "input_json_delta", "partial_json": p} for p in (raw[:half], raw[half:])]
    parts = block["text"].split(" ")
    texts = [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)]
    return {"type": "text", "text": "", "citations": None}, [{"type": "text_delta", "text": t} for t in texts]


def stream_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (event type, data) of the stream that delivers `message` (see the module docstring)."""
    usage = message["usage"]
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens_details"}
    start = {**message, "content": [], "stop_reason": None, "usage": {**start_usage, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start}), ("ping", {})]
    for i, block in enumerate(message["content"]):
        head, deltas = _deltas(block)
        events.append(("content_block_start", {"index": i, "content_block": head}))
        events += [("content_block_delta", {"index": i, "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"index": i}))
    final_usage = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [("message_delta", {"delta": delta, "usage": final_usage}), ("message_stop", {})]
    return events


async def _stream(message: dict[str, Any], first_chunk_delay_s: float) -> AsyncIterator[bytes]:
    for i, (kind, data) in enumerate(stream_events(message)):
        if i == 2 and first_chunk_delay_s:  # after message_start and ping
            await asyncio.sleep(first_chunk_delay_s)
        yield _sse(kind, data)
        if kind == "content_block_delta":
            await asyncio.sleep(0)


def _error(status: int, message: str) -> JSONResponse:
    kind = ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake_error"}
    return JSONResponse(body, status, headers={"request-id": "req_fake_error"})


def create_app(first_chunk_delay_s: float = 0.0) -> FastAPI:
    """The FastAPI app; streams wait `first_chunk_delay_s` before their first content delta."""
    off = {"tracing": False, "metrics": False, "logs": False}  # a fake must stay out of the app's traces
    quiet = {"telemetry": off} if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="spanlake fake Anthropic", **quiet)  # type: ignore[arg-type]

    @app.post("/v1/messages", response_model=None)
    async def messages(request: Request) -> Any:
        body = await request.json()
        if not body.get("model") or not isinstance(body.get("messages"), list) or not body.get("max_tokens"):
            return _error(400, "model, messages and max_tokens are required")
        model = str(body["model"])
        if model.startswith("fail-"):
            code = model.removeprefix("fail-")
            status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 500
            return _error(status, f"injected failure for model {model}")
        message = message_reply(body)
        headers = {"request-id": "req_" + message["id"].removeprefix("msg_")}
        if body.get("stream"):
            stream = _stream(message, first_chunk_delay_s)
            return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
        return JSONResponse(message, headers=headers)

    return app


class FakeAnthropic(FakeOpenAI):
    """The fake Anthropic server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", first_chunk_delay_s: float = 0.0) -> None:
        super().__init__(port=port, host=host)
        self._first_chunk_delay_s = first_chunk_delay_s

    @property
    def base_url(self) -> str:
        """What to pass as the anthropic client's `base_url` (it appends `/v1/messages`)."""
        return self.url

    def _app(self) -> FastAPI:
        return create_app(self._first_chunk_delay_s)

    def __enter__(self) -> FakeAnthropic:
        self.start()
        return self
