"""A small, deterministic OpenAI-compatible server for tests and demos (no network, no model).

Endpoints: ``POST /v1/chat/completions`` (plain, or ``stream: true`` as SSE, with a final usage
chunk when ``stream_options.include_usage`` is set), ``POST /v1/embeddings``, ``GET /v1/models``;
``POST /v1/responses`` as `spanlake.demo.fake_openai_responses` says.

Every answer is a pure function of the request, so tests can assert exact numbers:

- ``words(s)`` is ``len(s.split())``; a message's text is its ``content`` string or the
  ``text`` of its text parts (tool calls and tool definitions count nothing).
- ``prompt_tokens`` = sum of ``words`` over all messages' text;
  ``prompt_tokens_details.cached_tokens`` = ``prompt_tokens // 2``.
- The reply, per choice (``n``, default 1, identical choices):
  - ``tools`` given, the last user message contains "weather" and the last message is not a
    tool result (``role: tool``; so an agent loop ends): one tool call to the first tool,
    ``id="call_fake_0"``, ``arguments='{"location": "Paris"}'``, finish ``tool_calls``; its
    visible text is ``f"{name} {arguments}"``;
  - ``response_format`` of type ``json_object``/``json_schema``: ``{"answer": "<last user text>"}``;
  - else ``"Fake reply: <last user text>"``;
  - with ``max_tokens``/``max_completion_tokens`` = m and more than m words: the first m
    words (joined by single spaces), finish ``length``; otherwise finish ``stop``.
- ``completion_tokens_details.reasoning_tokens`` = number of input messages (per choice);
  ``completion_tokens`` = n * (``words(visible text)`` + reasoning);
  ``total_tokens`` = ``prompt_tokens + completion_tokens``.
- Response ``model`` = request model + ``"-2025-01-01"``; ``id`` = ``"chatcmpl-"`` + 24 hex of
  the request's hash; ``created`` = 1_700_000_000; ``system_fingerprint`` = ``"fp_spanlake"``.
- Streaming sends a role chunk, then one chunk per word of the text (a tool call streams its
  name, then its arguments in two pieces), then a chunk with the finish reason, then (if
  asked) a usage chunk with ``choices: []``, then ``data: [DONE]``.
- Embeddings: one vector per input string, ``dimensions`` floats (default 8) from the string's
  hash; ``prompt_tokens`` = ``total_tokens`` = sum of ``words``; ``encoding_format`` float or base64.

Judge models (``model`` starting ``judge-``) answer as `spanlake.demo.fake_judge` says.

Failure injection by model name: ``fail-<code>`` (e.g. ``fail-500``, ``fail-429``) answers that
HTTP status with an OpenAI-style error body; ``slow-<ms>`` (e.g. ``slow-250``) waits that many
ms before answering (before the first chunk when streaming); any other ``slow-*`` waits
``slow_delay_s``. Note the openai client retries 429/5xx twice unless ``max_retries=0``.

Failure injection at run time (``POST`` endpoints), for "the endpoint is down" tests:
``server.outage("429" | "503" | "hang", requests=N)`` makes the next N requests fail that way,
``outage(kind, seconds=T)`` every request for T seconds (neither: until ``restore()``);
``retry_after_s`` adds a ``Retry-After`` header to 429/503 answers. ``hang`` holds each request
it takes without answering (so the client times out) until ``restore()``, the outage's
``seconds`` are over, a new outage starts or the server stops; then it answers 503.
``server.delay_s`` delays every chat request. Counters: ``server.requests`` (chat, responses, embedding
requests received), ``server.in_flight``, ``server.max_in_flight``.

Run it: ``with FakeOpenAI() as server: OpenAI(base_url=server.base_url, api_key="x")``, or
``python -m spanlake.demo.fake_openai --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import inspect
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from spanlake.demo.fake_faults import Faults
from spanlake.demo.fake_judge import JUDGE_BEHAVIOURS, JUDGE_PREFIX, judge_answer
from spanlake.demo.fake_openai_responses import add_responses_route

CREATED = 1_700_000_000
FINGERPRINT = "fp_spanlake"
MODEL_SUFFIX = "-2025-01-01"
TOOL_CALL_ID = "call_fake_0"
TOOL_ARGUMENTS = '{"location": "Paris"}'
DEFAULT_DIMENSIONS = 8
MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small")


def words(text: str) -> int:
    """The fake tokenizer: whitespace-separated words."""
    return len(text.split())


def message_text(message: dict[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined by spaces."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return message_text(m)
    return ""


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def chat_reply(body: dict[str, Any]) -> dict[str, Any]:
    """Compute the reply to a chat request: text or tool call, finish reason and usage."""
    messages = body.get("messages") or []
    last = _last_user_text(messages)
    tools = body.get("tools") or []
    tool_call = None
    judge = str(body.get("model", "")).startswith(JUDGE_PREFIX)
    answering_a_tool = bool(messages) and messages[-1].get("role") == "tool"
    if tools and "weather" in last.lower() and not judge and not answering_a_tool:
        name = tools[0].get("function", {}).get("name", "tool")
        tool_call = {"id": TOOL_CALL_ID, "type": "function", "function": {"name": name, "arguments": TOOL_ARGUMENTS}}
        text, finish, visible = None, "tool_calls", words(f"{name} {TOOL_ARGUMENTS}")
    else:
        fmt = (body.get("response_format") or {}).get("type")
        if judge:
            text = judge_answer(body["model"], last)
        elif fmt in ("json_object", "json_schema"):
            text = json.dumps({"answer": last})
        else:
            text = f"Fake reply: {last}"
        finish = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and words(text) > int(limit):
            text, finish = " ".join(text.split()[: int(limit)]), "length"
        visible = words(text)
    n = int(body.get("n") or 1)
    prompt = sum(words(message_text(m)) for m in messages)
    reasoning = len(messages)
    completion = n * (visible + reasoning)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": prompt // 2, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": n * reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return {"text": text, "tool_call": tool_call, "finish_reason": finish, "n": n, "usage": usage}


def _completion(body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply["text"], "refusal": None}
    if reply["tool_call"]:
        message["tool_calls"] = [reply["tool_call"]]
    return {
        "id": "chatcmpl-" + _digest(body)[:24],
        "object": "chat.completion",
        "created": CREATED,
        "model": body["model"] + MODEL_SUFFIX,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": reply["finish_reason"]}
            for i in range(reply["n"])
        ],
        "usage": reply["usage"],
    }


def _chunk_deltas(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The content deltas of a streamed choice, after the role chunk."""
    if reply["tool_call"]:
        tc = reply["tool_call"]
        half = len(TOOL_ARGUMENTS) // 2
        head = {"index": 0, "id": tc["id"], "type": "function"}
        return [
            {"tool_calls": [{**head, "function": {"name": tc["function"]["name"], "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGUMENTS[:half]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": TOOL_ARGUMENTS[half:]}}]},
        ]
    parts = reply["text"].split(" ")
    return [{"content": p if i == len(parts) - 1 else p + " "} for i, p in enumerate(parts)]


async def _stream(body: dict[str, Any], reply: dict[str, Any]) -> AsyncIterator[bytes]:
    base = {
        "id": "chatcmpl-" + _digest(body)[:24],
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": body["model"] + MODEL_SUFFIX,
        "system_fingerprint": FINGERPRINT,
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    n = reply["n"]
    yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None} for i in range(n)])
    for delta in _chunk_deltas(reply):
        yield event([{"index": i, "delta": delta, "finish_reason": None} for i in range(n)])
        await asyncio.sleep(0)
    yield event([{"index": i, "delta": {}, "finish_reason": reply["finish_reason"]} for i in range(n)])
    if include_usage:
        yield event([], usage=reply["usage"])
    yield b"data: [DONE]\n\n"


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-free vector in [-1, 1) from the text's hash."""
    seed = hashlib.sha256(text.encode()).digest()
    out: list[float] = []
    counter = 0
    while len(out) < dimensions:
        block = hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        out.extend((b / 128.0) - 1.0 for b in block)
        counter += 1
    return out[:dimensions]


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)


def create_app(slow_delay_s: float = 1.0, faults: Faults | None = None) -> FastAPI:
    """The FastAPI app; `slow_delay_s` is the delay of a `slow-*` model without a number;
    `faults`: the run-time switches (FakeOpenAI passes its own)."""
    faults = faults or Faults()
    # Newer FastAPI traces itself into any configured global provider; a fake must stay invisible.
    off = {"tracing": False, "metrics": False, "logs": False}
    quiet = {"telemetry": off} if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="spanlake fake OpenAI", **quiet)  # type: ignore[arg-type]

    async def outage() -> JSONResponse | None:
        if (taken := faults.take()) is None:
            return None
        kind, release, until = taken
        if kind == "hang":
            while not (release.is_set() or faults.stopping or (until is not None and time.monotonic() >= until)):
                await asyncio.sleep(0.02)
            return _error(503, "injected outage ended while the request hung", "server_error")
        status = int(kind)
        error_type = "rate_limit_exceeded" if status == 429 else "server_error"
        response = _error(status, f"injected outage ({status})", error_type)
        if faults.retry_after_s is not None:
            response.headers["retry-after"] = f"{faults.retry_after_s:g}"
        return response

    async def inject(model: str) -> JSONResponse | None:
        if (down := await outage()) is not None:
            return down
        if model.startswith("fail-"):
            code = model.removeprefix("fail-")
            status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 500
            return _error(status, f"injected failure for model {model}", "server_error")
        if model.startswith("slow-"):
            ms = model.removeprefix("slow-").split("-")[0]
            await asyncio.sleep(int(ms) / 1000 if ms.isdigit() else slow_delay_s)
        return None

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        body = await request.json()
        if not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "model and messages are required", "invalid_request_error")
        model = str(body["model"])
        if model.startswith(JUDGE_PREFIX) and model.removeprefix(JUDGE_PREFIX).split("-")[0] not in JUDGE_BEHAVIOURS:
            return _error(
                400, f"unknown judge model {model!r}: judge-<{'|'.join(JUDGE_BEHAVIOURS)}>", "invalid_request_error"
            )
        faults.enter()
        try:
            if faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            if (failure := await inject(model)) is not None:
                return failure
        finally:
            faults.leave()
        reply = chat_reply(body)
        if body.get("stream"):
            return StreamingResponse(_stream(body, reply), media_type="text/event-stream")
        return _completion(body, reply)

    @app.post("/v1/embeddings", response_model=None)
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        model = body.get("model")
        if not model:
            return _error(400, "model is required", "invalid_request_error")
        faults.enter()
        try:
            if (failure := await inject(model)) is not None:
                return failure
        finally:
            faults.leave()
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dims = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        data = []
        for i, t in enumerate(texts):
            vec = embedding_vector(t, dims)
            value: Any = vec
            if body.get("encoding_format") == "base64":
                value = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(words(t) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model + MODEL_SUFFIX,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": CREATED, "owned_by": "spanlake"} for m in MODELS],
        }

    add_responses_route(app, faults, inject)
    return app


class FakeOpenAI:
    """The fake server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", slow_delay_s: float = 1.0) -> None:
        self.host = host
        self._requested_port = port
        self.port = port
        self._slow_delay_s = slow_delay_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.faults = Faults()

    def outage(
        self,
        kind: str,
        *,
        requests: int | None = None,
        seconds: float | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        """Answer the next `requests` requests (or all for `seconds`; neither: until `restore()`)
        with 429, 503, or hang (no answer until `restore()`, the deadline, a new outage or `stop()`)."""
        self.faults.start(kind, requests, seconds, retry_after_s)

    def restore(self) -> None:
        """End any outage now (hung requests then get a 503)."""
        self.faults.stop()

    @property
    def delay_s(self) -> float:
        """Seconds every chat request waits before it is answered (0 by default)."""
        return self.faults.delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self.faults.delay_s = value

    @property
    def requests(self) -> int:
        """Chat, Responses and embedding requests received so far."""
        return self.faults.requests

    @property
    def in_flight(self) -> int:
        return self.faults.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests being answered at once so far."""
        return self.faults.max_in_flight

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as the openai client's `base_url`."""
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAI:
        """Bind (a free port when port is 0), serve in a daemon thread, return once ready."""
        self.faults.stopping = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited: no Nagle wait before the body
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="off")
        server = self._server = uvicorn.Server(config)
        name = type(self).__name__
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
        self._thread.start()
        for _ in range(500):
            if server.started or not self._thread.is_alive():
                break
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError(f"{type(self).__name__} server did not start")
        return self  # uvicorn serves on `sock` itself and closes it at shutdown

    def _app(self) -> FastAPI:
        """The app to serve (a subclass serves another fake on the same machinery)."""
        return create_app(self._slow_delay_s, self.faults)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread (open streams are cut after 5 s)."""
        self.faults.stopping = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m spanlake.demo.fake_openai --port N`: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--slow-delay", type=float, default=1.0, help="seconds a slow-* model waits")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.slow_delay), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
