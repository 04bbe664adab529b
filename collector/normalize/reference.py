"""The readable reference: one rule per normalized column, written to be read.

`normalize_reference` is what normalization means; the fast path (normalize.fast) must give
the same values for any attribute dict (tests/collector/test_normalize_properties.py).
Precedence of keys is in normalize.dialects; what counts as a usable value in
normalize.coerce. Where a real library sends a fact only inside another value, the rule
reads it there: OpenInference's requested model is "model" in its JSON invocation
parameters, OpenLLMetry's time to first token its first completion chunk event.
"""

from __future__ import annotations

import json
import math
from typing import Any

from spanlake.collector.content import CONTENT_VALUE_BYTES
from spanlake.collector.normalize.coerce import as_bool, as_float, as_int, as_str, first, first_int
from spanlake.collector.normalize.dialects import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_1H_TOKENS,
    CACHE_WRITE_TOKENS,
    FINISH_REASON_SINGLE,
    FIRST_TOKEN_EVENTS,
    INPUT_EXCLUDES_CACHE_SCOPES,
    INPUT_TOKENS,
    LLM_REQUEST_TYPE,
    OI_INVOCATION_PARAMETERS,
    OPENINFERENCE_CATEGORY,
    OPERATION_ALIASES,
    OPERATION_CATEGORY,
    OUTPUT_TOKENS,
    PROMPT_NAME,
    PROMPT_VERSION,
    PROVIDER,
    PROVIDER_ALIASES,
    REASONING_TOKENS,
    REPORTED_COST,
    REQUEST_MODEL,
    REQUEST_MODEL_FALLBACK,
    RESPONSE_MODEL,
    SESSION_ID,
    TASK_NAME,
    TASK_OUTCOME,
    TIME_TO_FIRST_CHUNK,
    TOOL_NAME,
    TOTAL_TOKENS,
    TRACELOOP_CATEGORY,
    USER_ID,
    VALID_CATEGORIES,
    VECTOR_DB_SYSTEMS,
    VERCEL_OPERATIONS,
    VERCEL_PROVIDERS,
)
from spanlake.sdk import attributes as A


def normalize_reference(
    attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str, scope: str | None = None
) -> dict[str, Any]:
    """The normalized column values for one span, rule by rule: the reference `normalize` must equal.

    `scope` is the span's instrumentation scope name (a few libraries' token counts mean
    something else: INPUT_EXCLUDES_CACHE_SCOPES)."""
    category, operation = category_and_operation(attrs)
    input_tokens = first_int(attrs, INPUT_TOKENS)
    output_tokens = first_int(attrs, OUTPUT_TOKENS)
    total = first_int(attrs, TOTAL_TOKENS)
    cache_read = first_int(attrs, CACHE_READ_TOKENS)
    cache_write = first_int(attrs, CACHE_WRITE_TOKENS)
    if scope in INPUT_EXCLUDES_CACHE_SCOPES:
        input_tokens, total = with_cache_in_input(input_tokens, total, cache_read, cache_write)
    if total is None and (input_tokens is not None or output_tokens is not None):
        total = as_int((input_tokens or 0) + (output_tokens or 0))  # None if past int64

    validation_name = as_str(first(attrs, (A.VALIDATION_NAME,)))
    tool = as_str(first(attrs, TOOL_NAME))
    if tool is None and attrs.get(A.TL_SPAN_KIND) == "tool":
        tool = as_str(first(attrs, (A.TL_ENTITY_NAME,)))

    return {
        "category": category,
        "operation": operation,
        "provider": provider_name(attrs),
        "request_model": request_model(attrs),
        "response_model": as_str(first(attrs, RESPONSE_MODEL)),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": first_int(attrs, REASONING_TOKENS),
        "total_tokens": total,
        "finish_reasons": finish_reasons(attrs),
        "time_to_first_token_ms": time_to_first_token_ms(attrs, events, start_ns),
        "session_id": as_str(first(attrs, SESSION_ID)),
        "user_id": as_str(first(attrs, USER_ID)),
        "prompt_name": as_str(first(attrs, PROMPT_NAME)),
        "prompt_version": as_str(first(attrs, PROMPT_VERSION)),
        "error_type": error_type(attrs, events, status_code),
        "task_name": task_name(attrs),
        "task_outcome": task_outcome(attrs),
        "task_outcome_reason": as_str(first(attrs, (A.TASK_OUTCOME_REASON,))),
        "validation_name": validation_name,
        "validation_passed": validation_passed(attrs),
        "tool_name": tool,
        "reported_cost": next((v for k in REPORTED_COST if (v := as_float(attrs.get(k))) is not None), None),
        "cache_write_1h_tokens": cache_write_1h(first_int(attrs, CACHE_WRITE_1H_TOKENS), cache_write),
    }


def cache_write_1h(sent: int | None, cache_write: int | None) -> int | None:
    """The 1-hour share of the cache writes: as sent, but a part of `cache_write` (never more than
    it) and only beside it (without a cache-write count, its share of what is unknown)."""
    if sent is None or cache_write is None:
        return None
    return min(sent, cache_write)


def with_cache_in_input(
    input_tokens: int | None, total: int | None, cache_read: int | None, cache_write: int | None
) -> tuple[int | None, int | None]:
    """(input, total) of a library whose input count leaves the cache out, with the cache put in:
    OTel's meaning. A count that was not sent stays unsent; past int64 it becomes NULL."""
    cached = (cache_read or 0) + (cache_write or 0)
    if not cached:
        return input_tokens, total
    return (
        None if input_tokens is None else as_int(input_tokens + cached),
        None if total is None else as_int(total + cached),
    )


def provider_name(attrs: dict[str, Any]) -> str | None:
    """The provider in OTel's well-known spelling, from whichever dialect sent it."""
    v = as_str(first(attrs, PROVIDER))
    if v is None:
        return None
    return provider_alias(v.lower(), as_str(attrs.get(A.VERCEL_MODEL_PROVIDER)))


def provider_alias(v: str, vercel_provider: str | None) -> str:
    """A lower-cased provider → the OTel name: the alias table; else, when it is the span's
    Vercel AI SDK provider id (`openai.chat`), that id's head (vercel_provider_name)."""
    if v in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[v]
    if vercel_provider is not None and vercel_provider.lower() == v:
        return vercel_provider_name(v)
    return v


def vercel_provider_name(v: str) -> str:
    """An AI SDK provider id (`openai.chat`, `google.vertex.chat`, `amazon-bedrock`) → the OTel
    name of its longest head in VERCEL_PROVIDERS, else its first part through PROVIDER_ALIASES."""
    parts = v.split(".")
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in VERCEL_PROVIDERS:
            return VERCEL_PROVIDERS[head]
    return PROVIDER_ALIASES.get(parts[0], parts[0])


def category_and_operation(attrs: dict[str, Any]) -> tuple[str, str | None]:
    """Decide the span category and the GenAI operation. Precedence in docs/normalization.md."""
    sent = operation = operation_name(as_str(first(attrs, (A.GEN_AI_OPERATION_NAME,))))
    explicit = as_str(attrs.get(A.SPAN_CATEGORY))
    oi_kind = as_str(attrs.get(A.OI_SPAN_KIND))
    oi_kind = oi_kind.upper() if oi_kind else None
    request_type = LLM_REQUEST_TYPE.get(as_str(attrs.get(A.TL_LLM_REQUEST_TYPE)) or "")
    if operation is None and oi_kind:
        operation = openinference_operation(oi_kind, attrs)
    if operation is None and request_type:
        operation = request_type[1]
    vercel = VERCEL_OPERATIONS.get(as_str(attrs.get(A.VERCEL_OPERATION_ID)) or "")
    if operation is None and vercel:
        operation = vercel[1]

    if explicit in VALID_CATEGORIES:
        category = explicit
    elif task_name(attrs) is not None:
        category = "task"
    elif first(attrs, (A.VALIDATION_NAME,)) is not None:
        category = "guardrail"
    elif sent in OPERATION_CATEGORY:
        category = OPERATION_CATEGORY[sent]
    elif oi_kind in OPENINFERENCE_CATEGORY:
        category = OPENINFERENCE_CATEGORY[oi_kind]
    elif (tl := as_str(attrs.get(A.TL_SPAN_KIND))) in TRACELOOP_CATEGORY:
        category = TRACELOOP_CATEGORY[tl]
    elif request_type:
        category = request_type[0]
    elif vercel:
        category = vercel[0]
    elif as_str(attrs.get("db.system")) in VECTOR_DB_SYSTEMS:
        category = "retrieval"
    else:
        category = "other"
    return category, operation


def operation_name(sent: str | None) -> str | None:
    """`gen_ai.operation.name` as sent, a dialect's alias (LiteLLM's call types) as OTel's name."""
    return OPERATION_ALIASES.get(sent, sent) if sent is not None else None


def openinference_operation(kind: str, attrs: dict[str, Any]) -> str | None:
    """The GenAI operation of an OpenInference span kind (upper case)."""
    if kind == "LLM":
        if any(k.startswith("llm.prompts.") for k in attrs):
            return "text_completion"
        return "chat"
    return {"EMBEDDING": "embeddings", "RETRIEVER": "retrieval", "TOOL": "execute_tool", "AGENT": "invoke_agent"}.get(
        kind
    )


def finish_reasons(attrs: dict[str, Any]) -> list[str] | None:
    v = finish_reason_list(attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS))
    if v is not None:
        return v
    single = first(attrs, FINISH_REASON_SINGLE)
    if single is not None:
        return [str(x) for x in single] if isinstance(single, list) else [str(single)]
    return None


def finish_reason_list(v: Any) -> list[str] | None:
    """`gen_ai.response.finish_reasons` as a list: a list as sent, a string holding a JSON list
    (LiteLLM's own callback sends `'["stop"]'`) as that list, another string as a one-item list."""
    if isinstance(v, str) and v.startswith("["):
        try:
            parsed = json.loads(v)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            v = parsed
    if isinstance(v, list):
        return [str(x) for x in v]
    if isinstance(v, str) and v:
        return [v]
    return None


def task_name(attrs: dict[str, Any]) -> str | None:
    """The task this span marks: spanlake's key, OpenLLMetry's (not on a Traceloop `task` span: a step
    inside a workflow, which OpenLLMetry's LangChain instrumentation names so), or a named
    Traceloop workflow."""
    kind = attrs.get(A.TL_SPAN_KIND)
    v = first(attrs, (A.TASK_NAME,) if kind == "task" else TASK_NAME)
    if v is None and kind == "workflow":
        v = first(attrs, (A.TL_ENTITY_NAME,))
    return as_str(v)


def validation_passed(attrs: dict[str, Any]) -> bool | None:
    """`spanlake.validation.passed`. Not `gen_ai.evaluation.result` span events: those are judge
    labels (evaluators.external), which never decide a task's outcome as a failed validation would."""
    return as_bool(attrs.get(A.VALIDATION_PASSED))


def task_outcome(attrs: dict[str, Any]) -> str | None:
    v = as_str(first(attrs, TASK_OUTCOME))
    if v is None:
        return None
    v = v.lower()
    return v if v in A.TASK_OUTCOMES else None


def time_to_first_token_ms(attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int) -> float | None:
    """The first TIME_TO_FIRST_CHUNK key in seconds, else the earliest first-token or chunk event."""
    for key in TIME_TO_FIRST_CHUNK:
        v = as_float(attrs.get(key))
        if v is not None and math.isfinite(v * 1000.0):
            return v * 1000.0
    return events_first_token_ms(events, start_ns)


def events_first_token_ms(events: list[dict[str, Any]], start_ns: int) -> float | None:
    """Milliseconds from the span's start to its earliest first-token or chunk event (not before the start)."""
    times = [e["time_unix_nano"] for e in events if e["name"] in FIRST_TOKEN_EVENTS and e["time_unix_nano"] >= start_ns]
    return (min(times) - start_ns) / 1e6 if times else None


def request_model(attrs: dict[str, Any]) -> str | None:
    """REQUEST_MODEL keys, then "model" in OpenInference's invocation parameters, then REQUEST_MODEL_FALLBACK."""
    v = as_str(first(attrs, REQUEST_MODEL))
    if v is None:
        v = invocation_model(attrs)
    return v if v is not None else as_str(first(attrs, REQUEST_MODEL_FALLBACK))


def invocation_model(attrs: dict[str, Any]) -> str | None:
    """ "model" in OpenInference's JSON invocation parameters (LLM, then embedding)."""
    for key in OI_INVOCATION_PARAMETERS:
        raw = attrs.get(key)
        if not isinstance(raw, str) or '"model"' not in raw or len(raw) > CONTENT_VALUE_BYTES:
            continue
        try:
            params = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: pathologically nested JSON
            continue
        model = params.get("model") if isinstance(params, dict) else None
        if isinstance(model, str) and model:
            return model
    return None


def error_type(attrs: dict[str, Any], events: list[dict[str, Any]], status_code: str) -> str | None:
    """`error.type`, else the type of an `exception` event on a failed span."""
    v = as_str(first(attrs, (A.ERROR_TYPE,)))
    if v is not None or status_code != "ERROR":
        return v
    return events_error_type(events)


def events_error_type(events: list[dict[str, Any]]) -> str | None:
    """The `exception.type` of the first `exception` event that has one."""
    for e in events:
        if e["name"] == "exception":
            t = e["attributes"].get("exception.type")
            if t:
                return str(t)
    return None
