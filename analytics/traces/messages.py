"""Conversation messages from whatever an instrumentation sent, in one shape.

Every message is a dict `{role, content, tool_calls, tool_call_id, finish_reason, direction}`:
`content` is text (or None), `tool_calls` a list of `{id, name, arguments}` (arguments as
text), `direction` 'input' or 'output'. Sources, first that has messages wins (per direction):

1. OTel GenAI `gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`
   (JSON parts) in the span's `content`, or as attributes of a
   `gen_ai.client.inference.operation.details` log record (openai-v2 latest, event mode);
2. OpenInference `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`;
3. OpenLLMetry `gen_ai.prompt.N.*` / `gen_ai.completion.N.*`;
4. the Vercel AI SDK's `ai.prompt.messages` (the prompt its provider got), `ai.response.text`
   (or `ai.response.object`) and `ai.response.toolCalls`, on its model-call spans only (the span
   around them has its caller's `ai.prompt`, not messages: read, its answer would come first);
5. per-message log events `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice`
   (openai-v2 default, OpenLLMetry with use_attributes=False);
6. single strings: `gen_ai.prompt` / `gen_ai.completion`.

Nothing here renders anything: content stays plain text for the caller to show as text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

Message = dict[str, Any]

EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT = "gen_ai.choice"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_OI = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_TL = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_OI_TOOL = re.compile(r"^tool_calls\.(\d+)\.tool_call\.(.+)$")
_TL_TOOL = re.compile(r"^tool_calls\.(\d+)\.(.+)$")
_OI_CONTENTS = re.compile(r"^contents\.(\d+)\.message_content\.(text|type)$")


def as_text(value: Any) -> str | None:
    """Text for any value: strings as they are, anything else as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads(value: Any) -> Any:
    """A JSON value from a string holding JSON (else the value itself)."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)  # several times faster; the rare text it refuses (NaN, huge numbers) ...
        except ValueError:
            try:
                return json.loads(value)  # ... reads as the standard library reads it
            except ValueError:
                return value
    return value


def message(
    role: str | None,
    content: Any = None,
    tool_calls: Iterable[Mapping[str, Any]] = (),
    tool_call_id: Any = None,
    finish_reason: Any = None,
    direction: str = "input",
) -> Message:
    """One normalized message."""
    return {
        "role": str(role or ("assistant" if direction == "output" else "user")),
        "content": as_text(content),
        "tool_calls": [
            {"id": as_text(c.get("id")), "name": as_text(c.get("name")), "arguments": as_text(c.get("arguments"))}
            for c in tool_calls
        ],
        "tool_call_id": as_text(tool_call_id),
        "finish_reason": as_text(finish_reason),
        "direction": direction,
    }


# --- 1. OTel GenAI parts ----------------------------------------------------------------


def _part_text(part: Any) -> str | None:
    if not isinstance(part, Mapping):
        return as_text(part)
    kind = part.get("type")
    if kind in ("text", "reasoning", None) and "content" in part:
        text = as_text(part.get("content"))
        return f"[reasoning] {text}" if kind == "reasoning" else text
    if kind in ("blob", "uri", "file"):
        where = part.get("uri") or part.get("file_id") or f"{len(str(part.get('content', '')))} bytes"
        return f"[{kind} {part.get('mime_type') or part.get('modality') or ''} {where}]".replace("  ", " ")
    return as_text(part)


def otel_messages(value: Any, direction: str) -> list[Message]:
    """Messages from `gen_ai.input.messages` / `gen_ai.output.messages` (JSON text or a list)."""
    value = loads(value)
    if not isinstance(value, list):
        return []
    out: list[Message] = []
    for m in value:
        if not isinstance(m, Mapping):
            continue
        texts: list[str] = []
        calls: list[Mapping[str, Any]] = []
        responses: list[Mapping[str, Any]] = []
        for part in m.get("parts") or []:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "tool_call":
                calls.append(part)
            elif kind == "tool_call_response":
                responses.append(part)
            else:
                text = _part_text(part)
                if text is not None:
                    texts.append(text)
        role, finish = m.get("role"), m.get("finish_reason")
        if responses and not texts and not calls:
            for r in responses:  # one message per tool result, as chat APIs send them
                out.append(message(role, r.get("response"), (), r.get("id"), finish, direction))
            continue
        content = "\n".join(texts) if texts else None
        if responses:
            content = "\n".join([*texts, *(as_text(r.get("response")) or "" for r in responses)])
        call_id = responses[0].get("id") if responses else None
        out.append(message(role, content, calls, call_id, finish, direction))
    return out


def system_instructions(value: Any) -> list[Message]:
    """`gen_ai.system_instructions` (a list of parts, or text) as one system message."""
    value = loads(value)
    if value is None:
        return []
    parts = value if isinstance(value, list) else [value]
    texts = [t for t in (_part_text(p) for p in parts) if t is not None]
    return [message("system", "\n".join(texts))] if texts else []


def _otel(source: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    inputs = system_instructions(source.get("gen_ai.system_instructions"))
    inputs += otel_messages(source.get("gen_ai.input.messages"), "input")
    return inputs, otel_messages(source.get("gen_ai.output.messages"), "output")


# --- 2. and 3. flattened, indexed keys ----------------------------------------------------


def _indexed(content: Mapping[str, Any], pattern: re.Pattern[str]) -> dict[tuple[str, int], dict[str, Any]]:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for key, value in content.items():
        m = pattern.match(key)
        if m:
            found.setdefault((m.group(1), int(m.group(2))), {})[m.group(3)] = value
    return found


def _calls(fields: Mapping[str, Any], pattern: re.Pattern[str], prefix: str) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        m = pattern.match(key)
        if m:
            name = m.group(2).removeprefix(prefix)
            calls.setdefault(int(m.group(1)), {})[name] = value
    out = []
    for _, c in sorted(calls.items()):
        out.append({"id": c.get("id"), "name": c.get("name"), "arguments": c.get("arguments")})
    return out


def _openinference(content: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    res: dict[str, list[Message]] = {"input": [], "output": []}
    for (kind, _), f in sorted(_indexed(content, _OI).items()):
        text = f.get("content")
        if text is None:
            parts = {}
            for k, v in f.items():
                m = _OI_CONTENTS.match(k)
                if m and m.group(2) == "text":
                    parts[int(m.group(1))] = v
            text = "\n".join(str(v) for _, v in sorted(parts.items())) if parts else None
        calls = _calls(f, _OI_TOOL, "function.")
        res[kind].append(message(f.get("role"), text, calls, f.get("tool_call_id"), None, kind))
    return res["input"], res["output"]


def _openllmetry(content: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    res: dict[str, list[Message]] = {"prompt": [], "completion": []}
    for (kind, _), f in sorted(_indexed(content, _TL).items()):
        direction = "input" if kind == "prompt" else "output"
        calls = _calls(f, _TL_TOOL, "")
        msg = message(f.get("role"), f.get("content"), calls, f.get("tool_call_id"), f.get("finish_reason"), direction)
        res[kind].append(msg)
    return res["prompt"], res["completion"]


# --- 4. the Vercel AI SDK --------------------------------------------------------------------


def _vercel_call(c: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call part or `ai.response.toolCalls` item (`input`; `args` before AI SDK 5)."""
    return {"id": c.get("toolCallId"), "name": c.get("toolName"), "arguments": c.get("input", c.get("args"))}


def _vercel_result(part: Mapping[str, Any]) -> Any:
    """A tool result part's output (`{type, value}`; `result` before AI SDK 5)."""
    out = part.get("output", part.get("result"))
    return out.get("value") if isinstance(out, Mapping) and "value" in out else out


def _vercel_message(m: Mapping[str, Any]) -> list[Message]:
    parts = m.get("content")
    role = m.get("role")
    if not isinstance(parts, list):
        return [message(role, parts)]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[Mapping[str, Any]] = []
    for part in parts:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "tool-call":
            calls.append(_vercel_call(part))
        elif kind == "tool-result":
            results.append(part)
        elif kind in ("text", "reasoning") and isinstance(part, Mapping):
            text = as_text(part.get("text")) or ""
            texts.append(f"[reasoning] {text}" if kind == "reasoning" else text)
        elif kind is not None:
            texts.append(f"[{kind}]")  # file, image: no text to show
    if results and not texts and not calls:  # one message per tool result, as chat APIs send them
        return [message(role, _vercel_result(r), (), r.get("toolCallId")) for r in results]
    return [message(role, "\n".join(texts) if texts else None, calls)]


def _vercel(content: Mapping[str, Any]) -> tuple[list[Message], list[Message]]:
    prompt = loads(content.get("ai.prompt.messages"))
    if not isinstance(prompt, list):
        return [], []
    inputs = [x for m in prompt if isinstance(m, Mapping) for x in _vercel_message(m)]
    text = content.get("ai.response.text", content.get("ai.response.object"))
    raw_calls = loads(content.get("ai.response.toolCalls"))
    calls = [_vercel_call(c) for c in raw_calls if isinstance(c, Mapping)] if isinstance(raw_calls, list) else []
    outputs = [message("assistant", text, calls, direction="output")] if text is not None or calls else []
    return inputs, outputs


# --- 5. log events --------------------------------------------------------------------------


def _openai_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for c in calls if isinstance(calls, list) else []:
        if isinstance(c, Mapping):
            fn = c.get("function") if isinstance(c.get("function"), Mapping) else c
            out.append({"id": c.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")})
    return out


def _events(logs: Iterable[Mapping[str, Any]]) -> tuple[list[Message], list[Message]]:
    inputs: list[Message] = []
    outputs: list[Message] = []
    for rec in logs:
        name = rec.get("event_name")
        body = loads(rec.get("body"))
        body = body if isinstance(body, Mapping) else {"content": body}
        if name in EVENT_ROLES:
            role = body.get("role") or EVENT_ROLES[name]
            calls = _openai_calls(body.get("tool_calls"))
            inputs.append(message(role, body.get("content"), calls, body.get("id") or body.get("tool_call_id")))
        elif name == CHOICE_EVENT:
            msg = body.get("message") if isinstance(body.get("message"), Mapping) else {}
            calls = _openai_calls(msg.get("tool_calls") or body.get("tool_calls"))
            role = msg.get("role") or "assistant"
            outputs.append(message(role, msg.get("content"), calls, None, body.get("finish_reason"), "output"))
    return inputs, outputs


# --- all together -----------------------------------------------------------------------------


def span_messages(content: Mapping[str, Any] | None, logs: Iterable[Mapping[str, Any]] = ()) -> list[Message]:
    """The input then output messages of one span, from its `content` and its log records
    (dicts with `event_name`, `body` and `attributes`, in the order they were emitted)."""
    content = content or {}
    logs = list(logs)
    details: dict[str, Any] = {}
    for rec in logs:
        if rec.get("event_name") == DETAILS_EVENT:
            attrs = loads(rec.get("attributes"))
            details = dict(attrs) if isinstance(attrs, Mapping) else {}
    if not content and not logs:
        return []
    inputs: list[Message] = []
    outputs: list[Message] = []
    sources = (
        lambda: _otel(content),
        lambda: _otel(details),
        lambda: _openinference(content),
        lambda: _openllmetry(content),
        lambda: _vercel(content),
        lambda: _events(logs),
    )
    for source in sources:  # in order, until both directions have messages
        found_in, found_out = source()
        inputs = inputs or found_in
        outputs = outputs or found_out
        if inputs and outputs:
            break
    if not inputs and content.get("gen_ai.prompt") is not None:
        inputs = [message("user", content.get("gen_ai.prompt"))]
    if not outputs and content.get("gen_ai.completion") is not None:
        outputs = [message("assistant", content.get("gen_ai.completion"), direction="output")]
    return inputs + outputs


def _key(m: Message) -> tuple[Any, ...]:
    calls = tuple((c["id"], c["name"]) for c in m["tool_calls"])
    return (m["role"], (m["content"] or "").strip(), calls, m["tool_call_id"])


def merge_conversation(per_call: Iterable[list[Message]]) -> list[Message]:
    """One conversation from the messages of successive model calls (in start order).

    Each call's input repeats the history, so an input message is appended only when the
    conversation does not already hold it (counted, so a repeated "yes" still shows twice).
    """
    out: list[Message] = []
    for msgs in per_call:
        unused = Counter(_key(m) for m in out)
        for m in msgs:
            k = _key(m)
            if m["direction"] == "input" and unused[k] > 0:
                unused[k] -= 1
                continue
            out.append(m)
    return out
