"""Turn app values (messages, documents, tool I/O) into OTel GenAI attribute values.

Everything here is tolerant: any input shape yields a JSON string, never an exception the
caller has to handle (callers still wrap these in the SDK's own guard).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from spanlake.sdk import attributes as A


def _plain(value: Any) -> Any:
    """A JSON-friendly version of pydantic models, dataclasses and other objects."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except TypeError:
            return dump()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return dataclasses.asdict(value)
    return str(value)


def to_json(value: Any) -> str:
    """JSON text for any value; strings are kept as they are."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":"))


def _parts(content: Any) -> list[dict[str, Any]]:
    """OTel message parts from a string, a list of OpenAI/Anthropic-style parts, or anything."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for p in content:
            if isinstance(p, str):
                parts.append({"type": "text", "content": p})
            elif isinstance(p, Mapping) and p.get("type") == "text" and "text" in p:
                parts.append({"type": "text", "content": p["text"]})
            elif isinstance(p, Mapping):
                parts.append(dict(p))
            else:
                parts.append({"type": "text", "content": str(p)})
        return parts
    return [{"type": "text", "content": to_json(content)}]


def _message(m: Any, default_role: str) -> dict[str, Any]:
    if isinstance(m, str):
        return {"role": default_role, "parts": _parts(m)}
    if not isinstance(m, Mapping):
        m = _plain(m)
        if not isinstance(m, Mapping):
            return {"role": default_role, "parts": _parts(m)}
    if "parts" in m:  # already in the OTel shape
        return dict(m)
    role = m.get("role") or default_role
    out: dict[str, Any] = {"role": role}
    if role == "tool" and "tool_call_id" in m:
        out["parts"] = [{"type": "tool_call_response", "id": m["tool_call_id"], "response": m.get("content")}]
        return out
    parts = _parts(m.get("content"))
    for call in m.get("tool_calls") or ():
        fn = call.get("function", call) if isinstance(call, Mapping) else {}
        parts.append(
            {"type": "tool_call", "id": call.get("id"), "name": fn.get("name"), "arguments": fn.get("arguments")}
        )
    out["parts"] = parts
    if m.get("name"):
        out["name"] = m["name"]
    if m.get("finish_reason"):
        out["finish_reason"] = m["finish_reason"]
    return out


def input_messages(messages: Any) -> str:
    """`gen_ai.input.messages` JSON from a string, or OpenAI-style or OTel-style message dicts."""
    if isinstance(messages, str | Mapping):
        messages = [messages]
    return to_json([_message(m, "user") for m in messages])


def output_messages(messages: Any, finish_reason: str | None = None) -> str:
    """`gen_ai.output.messages` JSON; a plain string is one assistant message."""
    if isinstance(messages, str | Mapping):
        messages = [messages]
    out = [_message(m, "assistant") for m in messages]
    for m in out:
        m.setdefault("finish_reason", finish_reason or "stop")
    return to_json(out)


def _document(d: Any) -> dict[str, Any]:
    """{id, score, content, metadata} from a dict, an (id, score, content) tuple, a string or an object."""
    if isinstance(d, str):
        return {"content": d}
    if isinstance(d, tuple):
        return dict(zip(("id", "score", "content", "metadata"), d, strict=False))
    if isinstance(d, Mapping):
        doc = dict(d)
    else:  # LangChain / LlamaIndex style objects
        doc = {
            k: getattr(d, k) for k in ("id", "score", "page_content", "text", "content", "metadata") if hasattr(d, k)
        }
    for alias in ("page_content", "text"):
        if "content" not in doc and alias in doc:
            doc["content"] = doc.pop(alias)
    return {k: doc[k] for k in ("id", "score", "content", "metadata") if doc.get(k) is not None}


def documents(docs: Iterable[Any], capture_content: bool) -> dict[str, Any]:
    """Attributes for retrieved documents: `gen_ai.retrieval.documents` and OpenInference's
    `retrieval.documents.N.document.*`. Content and metadata only when capture_content."""
    attrs: dict[str, Any] = {}
    genai: list[dict[str, Any]] = []
    for i, raw in enumerate(docs):
        doc = _document(raw)
        if not capture_content:
            doc.pop("content", None)
            doc.pop("metadata", None)
        if "id" in doc:
            doc["id"] = str(doc["id"])
        if "score" in doc:
            try:
                doc["score"] = float(doc["score"])
            except (TypeError, ValueError):
                del doc["score"]
        genai.append(doc)
        prefix = f"{A.OI_RETRIEVAL_DOCUMENTS}.{i}."
        if "id" in doc:
            attrs[prefix + A.OI_DOCUMENT_ID] = doc["id"]
        if "score" in doc:
            attrs[prefix + A.OI_DOCUMENT_SCORE] = doc["score"]
        if "content" in doc:
            attrs[prefix + A.OI_DOCUMENT_CONTENT] = to_json(doc["content"])
        if "metadata" in doc:
            attrs[prefix + A.OI_DOCUMENT_METADATA] = to_json(doc["metadata"])
    attrs[A.GEN_AI_RETRIEVAL_DOCUMENTS] = to_json(genai)
    return attrs
