"""The fake OpenAI server's Responses API: ``POST /v1/responses``, plain or ``stream: true`` (SSE).

Mounted by `spanlake.demo.fake_openai.create_app` (same port, same failure injection: ``fail-<code>``,
``slow-<ms>``, outages, ``delay_s``, the request counters). Every answer is a pure function of
the request, the same rule as the chat completions fake's, so tests can assert exact numbers:

- ``words(s)`` is ``len(s.split())``. The input items are ``input`` (a string is one user
  message); an item's text is a message's ``content`` string or the ``text`` of its parts
  (``input_text``, ``output_text``), or a ``function_call_output``'s ``output``; a
  ``function_call`` item and tool definitions count nothing.
- ``input_tokens`` = ``words(instructions)`` + sum of ``words`` over the items' text;
  ``input_tokens_details.cached_tokens`` = ``input_tokens // 2``, ``cache_write_tokens`` = 0.
- The reply:
  - function ``tools`` given, the last user message contains "weather" and the last input item
    is not a ``function_call_output`` (so an agent loop ends): one ``function_call`` item to the
    first function tool, ``call_id="call_fake_0"``, ``arguments='{"location": "Paris"}'`` (as
    chat completions'); its visible text is ``f"{name} {arguments}"``;
  - ``text.format`` of type ``json_schema``/``json_object``: ``{"answer": "<last user text>"}``;
  - else ``"Fake reply: <last user text>"``, as one ``message`` item with one ``output_text`` part;
  - with ``max_output_tokens`` = m and more than m words: the first m words, ``status``
    ``incomplete`` with ``incomplete_details.reason`` ``max_output_tokens``; else ``completed``.
- ``output_tokens_details.reasoning_tokens`` = the number of input items, plus one for
  ``instructions`` (as chat counts the system message); ``output_tokens`` = ``words(visible
  text)`` + reasoning; ``total_tokens`` = ``input_tokens + output_tokens``.
- ``model`` = request model + ``"-2025-01-01"``; ids: ``"resp_"``, ``"msg_"`` or ``"fc_"`` + 24 hex
  of the request's hash; ``created_at`` = 1_700_000_000.
- Streaming sends ``response.created``, ``response.in_progress``, ``response.output_item.added``;
  for a message ``response.content_part.added``, one ``response.output_text.delta`` per word,
  ``response.output_text.done``, ``response.content_part.done``; for a function call two
  ``response.function_call_arguments.delta`` and ``.done``; then ``response.output_item.done``
  and ``response.completed`` (``response.incomplete`` when cut) with the whole response and its
  usage. Each SSE event has an ``event:`` line and a ``sequence_number`` from 0; no ``[DONE]``.

Run it: ``with FakeOpenAI() as server: OpenAI(base_url=server.base_url, api_key="x").responses.create(...)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

CREATED = 1_700_000_000
MODEL_SUFFIX = "-2025-01-01"
TOOL_CALL_ID = "call_fake_0"
TOOL_ARGUMENTS = '{"location": "Paris"}'
TEXT_PARTS = ("input_text", "output_text", "text")


class Admission(Protocol):
    """What the route needs of the server's run-time switches (fake_faults.Faults)."""

    delay_s: float

    def enter(self) -> None: ...

    def leave(self) -> None: ...


def words(text: str) -> int:
    """The fake tokenizer: whitespace-separated words."""
    return len(text.split())


def item_text(item: Any) -> str:
    """An input item's text: a message's content string or text parts, a function call's output."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    if item.get("type") == "function_call_output":
        output = item.get("output")
        return output if isinstance(output, str) else _parts_text(output)
    content = item.get("content")
    return content if isinstance(content, str) else _parts_text(content)


def _parts_text(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and p.get("type") in TEXT_PARTS)


def input_items(body: dict[str, Any]) -> list[Any]:
    """The request's input as a list of items (a string input is one user message)."""
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return list(raw) if isinstance(raw, list) else []


def _last_user_text(items: list[Any]) -> str:
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return item_text(item)
    return ""


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def response_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The reply to a Responses request: text or function call, status and usage."""
    items = input_items(body)
    last = _last_user_text(items)
    functions = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    last_item = items[-1] if items else None
    answering_a_tool = isinstance(last_item, dict) and last_item.get("type") == "function_call_output"
    call, text, incomplete = None, None, False
    if functions and "weather" in last.lower() and not answering_a_tool:
        name = str(functions[0].get("name", "tool"))
        call = {"name": name, "arguments": TOOL_ARGUMENTS, "call_id": TOOL_CALL_ID}
        visible = words(f"{name} {TOOL_ARGUMENTS}")
    else:
        fmt = ((body.get("text") or {}).get("format") or {}).get("type")
        text = json.dumps({"answer": last}) if fmt in ("json_schema", "json_object") else f"Fake reply: {last}"
        limit = body.get("max_output_tokens")
        if limit is not None and words(text) > int(limit):
            text, incomplete = " ".join(text.split()[: int(limit)]), True
        visible = words(text)
    instructions = body.get("instructions")
    instructions_text = instructions if isinstance(instructions, str) else ""
    prompt = words(instructions_text) + sum(words(item_text(i)) for i in items)
    reasoning = len(items) + (1 if instructions_text else 0)
    output = visible + reasoning
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": prompt // 2, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }
    return {"text": text, "call": call, "incomplete": incomplete, "usage": usage}


def _item(body: dict[str, Any], reply: dict[str, Any], done: bool) -> dict[str, Any]:
    """The one output item, finished (`done`) or as first announced in a stream."""
    digest = _digest(body)[:24]
    if reply["call"]:
        call = reply["call"]
        return {
            "type": "function_call",
            "id": "fc_" + digest,
            "call_id": call["call_id"],
            "name": call["name"],
            "arguments": call["arguments"] if done else "",
            "status": "completed" if done else "in_progress",
        }
    status = ("incomplete" if reply["incomplete"] else "completed") if done else "in_progress"
    content = [_part(reply["text"])] if done else []
    return {"type": "message", "id": "msg_" + digest, "role": "assistant", "status": status, "content": content}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(body: dict[str, Any], reply: dict[str, Any], done: bool = True) -> dict[str, Any]:
    """The Response resource: finished, or `in_progress` with no output (a stream's first events)."""
    status = ("incomplete" if reply["incomplete"] else "completed") if done else "in_progress"
    return {
        "id": "resp_" + _digest(body)[:24],
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and reply["incomplete"] else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": str(body["model"]) + MODEL_SUFFIX,
        "output": [_item(body, reply, True)] if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning"),
        "store": body.get("store", True),
        "temperature": body.get("temperature"),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": body.get("truncation") or "disabled",
        "usage": reply["usage"] if done else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def stream_events(body: dict[str, Any], reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events of a streamed response, in order, without their sequence numbers."""
    started = response_object(body, reply, done=False)
    item = _item(body, reply, True)
    at = {"item_id": item["id"], "output_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": _item(body, reply, False)},
    ]
    if reply["call"]:
        args = reply["call"]["arguments"]
        half = len(args) // 2
        events += [
            {"type": "response.function_call_arguments.delta", **at, "delta": d} for d in (args[:half], args[half:])
        ]
        events.append({"type": "response.function_call_arguments.done", **at, "arguments": args})
    else:
        text = reply["text"]
        part = {**at, "content_index": 0}
        events.append({"type": "response.content_part.added", **part, "part": _part("")})
        pieces = text.split(" ")
        for i, p in enumerate(pieces):
            delta = p if i == len(pieces) - 1 else p + " "
            events.append({"type": "response.output_text.delta", **part, "delta": delta, "logprobs": []})
        events.append({"type": "response.output_text.done", **part, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **part, "part": _part(text)})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    end = "response.incomplete" if reply["incomplete"] else "response.completed"
    events.append({"type": end, "response": response_object(body, reply)})
    return events


async def _stream(body: dict[str, Any], reply: dict[str, Any]) -> AsyncIterator[bytes]:
    for n, event in enumerate(stream_events(body, reply)):
        data = json.dumps({**event, "sequence_number": n})
        yield f"event: {event['type']}\ndata: {data}\n\n".encode()
        await asyncio.sleep(0)


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}, 400
    )


def _invalid(body: dict[str, Any]) -> str | None:
    """Why the optional fields the rule reads are unusable, or None."""
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        return "max_output_tokens must be a positive integer"
    if not isinstance(body.get("text") or {}, dict) or not isinstance(
        (body.get("text") or {}).get("format") or {}, dict
    ):
        return "text.format must be an object"
    if not isinstance(body.get("tools") or [], list):
        return "tools must be a list"
    if not isinstance(body.get("instructions") or "", (str, list)):
        return "instructions must be a string or a list of items"
    return None


def add_responses_route(
    app: FastAPI, faults: Admission, inject: Callable[[str], Awaitable[JSONResponse | None]]
) -> None:
    """Serve ``POST /v1/responses`` on `app`; `inject(model)` answers an injected failure (or None)."""

    @app.post("/v1/responses", response_model=None)
    async def responses(request: Request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return _bad_request("the body must be JSON")
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("input"), (str, list)):
            return _bad_request("model and input are required")
        if (problem := _invalid(body)) is not None:
            return _bad_request(problem)
        faults.enter()
        try:
            if faults.delay_s:
                await asyncio.sleep(faults.delay_s)
            if (failure := await inject(str(body["model"]))) is not None:
                return failure
        finally:
            faults.leave()
        reply = response_reply(body)
        if body.get("stream"):
            return StreamingResponse(_stream(body, reply), media_type="text/event-stream")
        return response_object(body, reply)
