"""A small, deterministic Gemini API (generateContent) server for tests (no network, no model).

Endpoints: ``POST /v1/models/{model}:generateContent`` and
``POST /v1/models/{model}:streamGenerateContent?alt=sse`` (``v1beta`` too; google-genai 3 uses
``v1``), in the REST shapes of the ``google-genai`` package's types (``GenerateContentResponse``,
``UsageMetadata``). Every answer is a pure function of the request, so tests can assert exact numbers:

- ``words(s)`` is ``len(s.split())``; the prompt is the ``text`` parts of ``systemInstruction``
  and ``contents``; ``promptTokenCount`` = its words. Gemini caches implicitly:
  ``cachedContentTokenCount`` = ``promptTokenCount // 2`` (a part *of* the prompt count).
- The reply: ``tools`` with ``functionDeclarations`` and the last user text contains "weather":
  one ``functionCall`` part (the first declaration's name, ``args={"location": "Paris"}``),
  visible text ``f"{name} {json.dumps(args)}"``; else ``"Fake reply: <last user text>"``, cut to
  ``generationConfig.maxOutputTokens`` words with ``finishReason`` ``MAX_TOKENS``, else ``STOP``.
- ``generationConfig.thinkingConfig`` with a ``thinkingBudget`` other than 0: the model thinks
  ``"Thinking about: <last user text>"``; its words are ``thoughtsTokenCount`` (reported apart
  from ``candidatesTokenCount``, as Gemini does), and with ``includeThoughts`` it comes back as a
  ``thought: true`` part first.
- ``candidatesTokenCount`` = visible words; ``totalTokenCount`` = prompt + candidates + thoughts.
- ``modelVersion`` = the request model; ``responseId`` = 24 hex of the request's hash.
- Streaming (SSE, ``data: <json>`` events): one chunk per word (a function call or a thought in
  one chunk), the last one with ``finishReason`` and ``usageMetadata``.

The ``generationConfig`` fields above are read in either JSON spelling, camelCase or the proto
field name (``thinking_budget``), as Google's API accepts both: google-genai 2.x and 3.x send
``thinkingConfig``'s fields as ``include_thoughts`` and ``thinking_budget``.

Failure injection by model name: ``fail-<code>`` answers that status with a Google error body
(429 ``RESOURCE_EXHAUSTED``, 400 ``INVALID_ARGUMENT``, 503 ``UNAVAILABLE``, else ``INTERNAL``).

Run it: ``with FakeGemini() as s: genai.Client(api_key="x", http_options={"base_url": s.url})``.
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

FUNCTION_ARGS = {"location": "Paris"}
STATUSES = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def _texts(content: dict[str, Any] | None) -> list[str]:
    return [str(p["text"]) for p in (content or {}).get("parts") or [] if isinstance(p, dict) and "text" in p]


def _field(obj: dict[str, Any], camel: str) -> Any:
    """`obj[camel]`, else the proto field name's spelling (`thinkingBudget` → `thinking_budget`)."""
    if camel in obj:
        return obj[camel]
    return obj.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _last_user_text(contents: list[dict[str, Any]]) -> str:
    for c in reversed(contents):
        if c.get("role", "user") == "user" and _texts(c):
            return " ".join(_texts(c))
    return ""


def reply(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The complete `GenerateContentResponse` that answers `body`."""
    contents = body.get("contents") or []
    prompt = sum(words(t) for c in [body.get("systemInstruction"), *contents] for t in _texts(c))
    last = _last_user_text(contents)
    config = body.get("generationConfig") or {}
    thinking = _field(config, "thinkingConfig")
    parts: list[dict[str, Any]] = []
    thoughts = None
    if thinking is not None and _field(thinking, "thinkingBudget") != 0:
        thought = f"Thinking about: {last}"
        thoughts = words(thought)
        if _field(thinking, "includeThoughts"):
            parts.append({"text": thought, "thought": True})
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    finish = "STOP"
    if declarations and "weather" in last.lower():
        name = declarations[0].get("name", "tool")
        parts.append({"functionCall": {"name": name, "args": FUNCTION_ARGS}})
        visible = words(f"{name} {json.dumps(FUNCTION_ARGS)}")
    else:
        text = f"Fake reply: {last}"
        limit = _field(config, "maxOutputTokens")
        if limit is not None and words(text) > int(limit):
            text, finish = " ".join(text.split()[: int(limit)]), "MAX_TOKENS"
        parts.append({"text": text})
        visible = words(text)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "cachedContentTokenCount": prompt // 2,
        "candidatesTokenCount": visible,
        "totalTokenCount": prompt + visible + (thoughts or 0),
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": prompt // 2}],
    }
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    digest = hashlib.sha256(json.dumps([model, body], sort_keys=True).encode()).hexdigest()
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": digest[:24],
    }


def _chunks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The streamed chunks of a response: one per word (or per thought / function call)."""
    (candidate,) = response["candidates"]
    pieces: list[dict[str, Any]] = []
    for part in candidate["content"]["parts"]:
        if "text" in part and not part.get("thought"):
            ws = part["text"].split(" ")
            pieces += [{"text": w if i == len(ws) - 1 else w + " "} for i, w in enumerate(ws)]
        else:
            pieces.append(part)
    base = {"modelVersion": response["modelVersion"], "responseId": response["responseId"]}
    out = [{**base, "candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}]} for p in pieces]
    out[-1]["candidates"][0]["finishReason"] = candidate["finishReason"]
    out[-1]["usageMetadata"] = response["usageMetadata"]
    return out


async def _stream(response: dict[str, Any]) -> AsyncIterator[bytes]:
    for chunk in _chunks(response):
        yield b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"
        await asyncio.sleep(0)


def _error(status: int, message: str) -> JSONResponse:
    body = {"error": {"code": status, "message": message, "status": STATUSES.get(status, "INTERNAL")}}
    return JSONResponse(body, status)


def create_app() -> FastAPI:
    """The FastAPI app."""
    off = {"tracing": False, "metrics": False, "logs": False}  # a fake must stay out of the app's traces
    quiet = {"telemetry": off} if "telemetry" in inspect.signature(FastAPI).parameters else {}
    app = FastAPI(title="spanlake fake Gemini", **quiet)  # type: ignore[arg-type]

    @app.post("/{version}/models/{call}", response_model=None)
    async def generate(version: str, call: str, request: Request) -> Any:
        model, _, method = call.partition(":")
        if version not in ("v1", "v1beta") or method not in ("generateContent", "streamGenerateContent"):
            return _error(404, f"unknown method {method!r}")
        body = await request.json()
        if not isinstance(body.get("contents"), list):
            return _error(400, "contents is required")
        if model.startswith("fail-"):
            code = model.removeprefix("fail-")
            status = int(code) if code.isdigit() and 400 <= int(code) <= 599 else 500
            return _error(status, f"injected failure for model {model}")
        response = reply(model, body)
        if method == "streamGenerateContent":
            return StreamingResponse(_stream(response), media_type="text/event-stream")
        return response

    return app


class FakeGemini(FakeOpenAI):
    """The fake Gemini server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(port=port, host=host)

    def _app(self) -> FastAPI:
        return create_app()

    def __enter__(self) -> FakeGemini:
        self.start()
        return self
