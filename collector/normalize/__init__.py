"""Normalize a span's attributes from any GenAI dialect into spanlake's typed columns.

Pure functions: attributes in, column values out. The precedence of sources for each
column is the order of the key tuples below, and it is the rule written down in
docs/normalization.md: spanlake's own keys first, then the current OTel GenAI names, then
the deprecated OTel names, then OpenInference, then OpenLLMetry. The raw attributes are
always stored as well, so a rule here can only add information, never hide it.

Where a real library sends a fact only inside another value, the rule reads it there, in
the same dialect order: OpenInference's requested model is "model" in its JSON invocation
parameters (its llm.model_name is the answering model); OpenLLMetry's time to first token
is its first `gen_ai.content.completion.chunk` span event. docs/instrumentations.md lists
what each library was observed to send.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

try:
    from spanlake.collector import _otlp  # type: ignore[attr-defined]
except ImportError:  # not built: lookup_reference does the work
    _otlp = None

from spanlake.collector.content import CONTENT_VALUE_BYTES, is_content  # noqa: F401 (is_content: used via this module by tests)
from spanlake.sdk import attributes as A
from spanlake.storage.schema import CATEGORIES

# --- precedence tables --------------------------------------------------------------

INPUT_TOKENS = (A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_PROMPT_TOKENS, A.OI_TOKEN_PROMPT)
OUTPUT_TOKENS = (A.GEN_AI_USAGE_OUTPUT_TOKENS, A.GEN_AI_USAGE_COMPLETION_TOKENS, A.OI_TOKEN_COMPLETION)
CACHE_READ_TOKENS = (A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, A.OI_TOKEN_CACHE_READ, A.TL_CACHE_READ_TOKENS)
CACHE_WRITE_TOKENS = (
    A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.OI_TOKEN_CACHE_WRITE,
    A.TL_CACHE_CREATION_TOKENS,
)
REASONING_TOKENS = (
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    A.OI_TOKEN_REASONING,
    A.TL_REASONING_TOKENS,
    A.TL_REASONING_TOKENS_OLD,
)
TOTAL_TOKENS = (A.OI_TOKEN_TOTAL, A.TL_TOTAL_TOKENS, A.TL_TOTAL_TOKENS_OLD)
# Request model: these keys, then "model" inside OpenInference's JSON invocation parameters
# (openinference-instrumentation-openai sends the requested model only there; its
# llm.model_name / embedding.model_name is the model that answered), then REQUEST_MODEL_FALLBACK.
REQUEST_MODEL = (A.GEN_AI_REQUEST_MODEL, A.OI_LLM_REQUEST_MODEL_NAME)
OI_INVOCATION_PARAMETERS = ("llm.invocation_parameters", "embedding.invocation_parameters")
REQUEST_MODEL_FALLBACK = (A.OI_LLM_MODEL_NAME, A.OI_EMBEDDING_MODEL_NAME, A.OI_RERANKER_MODEL_NAME)
RESPONSE_MODEL = (
    A.GEN_AI_RESPONSE_MODEL,
    A.OI_LLM_RESPONSE_MODEL_NAME,
    A.OI_LLM_MODEL_NAME,
    A.OI_EMBEDDING_MODEL_NAME,
)
PROVIDER = (A.GEN_AI_PROVIDER_NAME, A.GEN_AI_SYSTEM, A.OI_LLM_PROVIDER, A.OI_LLM_SYSTEM)
SESSION_ID = (
    A.SESSION_ID,
    A.GEN_AI_CONVERSATION_ID,
    A.TL_ASSOCIATION_PREFIX + "session_id",
)
USER_ID = (A.USER_ID, A.TL_ASSOCIATION_PREFIX + "user_id")
PROMPT_NAME = (A.GEN_AI_PROMPT_NAME, A.TL_PROMPT_KEY)
PROMPT_VERSION = (A.GEN_AI_PROMPT_VERSION, A.OI_PROMPT_TEMPLATE_VERSION, A.TL_PROMPT_VERSION)
TASK_NAME = (A.TASK_NAME, A.TL_TASK_NAME)
TASK_OUTCOME = (A.TASK_OUTCOME, A.TL_TASK_STATUS)
TOOL_NAME = (A.GEN_AI_TOOL_NAME, A.OI_TOOL_NAME)
FINISH_REASON_SINGLE = (A.OI_FINISH_REASON, A.TL_FINISH_REASON, A.TL_FINISH_REASON_OLD)

# Deprecated or dialect spellings of a provider → the OTel well-known value.
PROVIDER_ALIASES = {
    "az.ai.openai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google": "gcp.gen_ai",
    "xai": "x_ai",
    "mistralai": "mistral_ai",
    "aws": "aws.bedrock",
    "amazon": "aws.bedrock",
    "together": "together_ai",
    "moonshot": "moonshot_ai",
}

OPERATION_CATEGORY = {
    "chat": "llm",
    "generate_content": "llm",
    "text_completion": "llm",
    "llm_request": "llm",
    "embeddings": "embedding",
    "retrieval": "retrieval",
    "vector_db_retrieve": "retrieval",
    "search_memory": "retrieval",
    "rerank": "rerank",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "plan": "agent",
    "invoke_workflow": "chain",
    "execute_task": "chain",
}
OPENINFERENCE_CATEGORY = {
    "LLM": "llm",
    "EMBEDDING": "embedding",
    "RETRIEVER": "retrieval",
    "RERANKER": "rerank",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "guardrail",
    "PROMPT": "chain",
}
# A workflow with a name is a task (decided before this table); a nameless one is glue.
TRACELOOP_CATEGORY = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
LLM_REQUEST_TYPE = {
    "chat": ("llm", "chat"),
    "completion": ("llm", "text_completion"),
    "embedding": ("embedding", "embeddings"),
    "rerank": ("rerank", "rerank"),
}
VECTOR_DB_SYSTEMS = frozenset({"chroma", "pinecone", "qdrant", "milvus", "weaviate", "lancedb", "marqo"})
VALID_CATEGORIES = frozenset(CATEGORIES)
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"^\s*\+?([0-9]+)\s*$")


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    get = attrs.get
    for k in keys:
        v = get(k)
        if v is not None and v != "":
            return v
    return None


def _str(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def _int(v: Any) -> int | None:
    """A count: int, integral float or ASCII decimal string in [0, 2**63). Anything else is ignored."""
    if type(v) is int:  # the common case, first (bool is a subclass, so it can't take this path)
        return v if 0 <= v <= INT64_MAX else None
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float) and v.is_integer():  # False for inf and NaN
        v = int(v)
    elif isinstance(v, str) and (m := _DECIMAL.match(v)):
        v = int(m.group(1))
    return v if isinstance(v, int) and 0 <= v <= INT64_MAX else None


def _first_int(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    get = attrs.get
    for k in keys:
        v = get(k)
        if v is not None and (v := _int(v)) is not None:
            return v
    return None


def _float(v: Any) -> float | None:
    """A finite float from a number or numeric string; NaN, infinities and others are ignored."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    try:
        f = float(v)
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def provider_name(attrs: dict[str, Any]) -> str | None:
    """The provider in OTel's well-known spelling, from whichever dialect sent it."""
    v = _str(_first(attrs, PROVIDER))
    if v is None:
        return None
    v = v.lower()
    return PROVIDER_ALIASES.get(v, v)


def category_and_operation(attrs: dict[str, Any]) -> tuple[str, str | None]:
    """Decide the span category and the GenAI operation. Precedence in docs/normalization.md."""
    sent = operation = _str(_first(attrs, (A.GEN_AI_OPERATION_NAME,)))
    explicit = _str(attrs.get(A.SPAN_CATEGORY))
    oi_kind = _str(attrs.get(A.OI_SPAN_KIND))
    oi_kind = oi_kind.upper() if oi_kind else None
    request_type = LLM_REQUEST_TYPE.get(_str(attrs.get(A.TL_LLM_REQUEST_TYPE)) or "")
    if operation is None and oi_kind:
        operation = _openinference_operation(oi_kind, attrs)
    if operation is None and request_type:
        operation = request_type[1]

    if explicit in VALID_CATEGORIES:
        category = explicit
    elif task_name(attrs) is not None:
        category = "task"
    elif _first(attrs, (A.VALIDATION_NAME,)) is not None:
        category = "guardrail"
    elif sent in OPERATION_CATEGORY:
        category = OPERATION_CATEGORY[sent]
    elif oi_kind in OPENINFERENCE_CATEGORY:
        category = OPENINFERENCE_CATEGORY[oi_kind]
    elif (tl := _str(attrs.get(A.TL_SPAN_KIND))) in TRACELOOP_CATEGORY:
        category = TRACELOOP_CATEGORY[tl]
    elif request_type:
        category = request_type[0]
    elif _str(attrs.get("db.system")) in VECTOR_DB_SYSTEMS:
        category = "retrieval"
    else:
        category = "other"
    return category, operation


def _openinference_operation(kind: str, attrs: dict[str, Any]) -> str | None:
    if kind == "LLM":
        if any(k.startswith("llm.prompts.") for k in attrs):
            return "text_completion"
        return "chat"
    return {"EMBEDDING": "embeddings", "RETRIEVER": "retrieval", "TOOL": "execute_tool", "AGENT": "invoke_agent"}.get(
        kind
    )


def finish_reasons(attrs: dict[str, Any]) -> list[str] | None:
    v = attrs.get(A.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(v, list):
        return [str(x) for x in v]
    if isinstance(v, str) and v:
        return [v]
    single = _first(attrs, FINISH_REASON_SINGLE)
    if single is not None:
        return [str(x) for x in single] if isinstance(single, list) else [str(single)]
    return None


def task_name(attrs: dict[str, Any]) -> str | None:
    """The task this span marks: spanlake's key, OpenLLMetry's, or a named Traceloop workflow."""
    v = _first(attrs, TASK_NAME)
    if v is None and attrs.get(A.TL_SPAN_KIND) == "workflow":
        v = _first(attrs, (A.TL_ENTITY_NAME,))
    return _str(v)


def validation_passed(attrs: dict[str, Any], events: list[dict[str, Any]]) -> bool | None:
    """`spanlake.validation.passed`, else the pass/fail labels of `gen_ai.evaluation.result` span events."""
    v = _bool(attrs.get(A.VALIDATION_PASSED))
    if v is not None:
        return v
    labels = [str(e["attributes"].get(EVALUATION_LABEL)).lower() for e in events if e["name"] == EVALUATION_EVENT]
    verdicts = [label == "pass" for label in labels if label in ("pass", "fail")]
    return all(verdicts) if verdicts else None


def task_outcome(attrs: dict[str, Any]) -> str | None:
    v = _str(_first(attrs, TASK_OUTCOME))
    if v is None:
        return None
    v = v.lower()
    return v if v in A.TASK_OUTCOMES else None


def normalize_reference(
    attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str
) -> dict[str, Any]:
    """The normalized column values for one span, rule by rule: the reference `normalize` must equal."""
    category, operation = category_and_operation(attrs)
    input_tokens = _first_int(attrs, INPUT_TOKENS)
    output_tokens = _first_int(attrs, OUTPUT_TOKENS)
    total = _first_int(attrs, TOTAL_TOKENS)
    if total is None and (input_tokens is not None or output_tokens is not None):
        total = _int((input_tokens or 0) + (output_tokens or 0))  # None if past int64

    validation_name = _str(_first(attrs, (A.VALIDATION_NAME,)))
    tool = _str(_first(attrs, TOOL_NAME))
    if tool is None and attrs.get(A.TL_SPAN_KIND) == "tool":
        tool = _str(_first(attrs, (A.TL_ENTITY_NAME,)))

    return {
        "category": category,
        "operation": operation,
        "provider": provider_name(attrs),
        "request_model": request_model(attrs),
        "response_model": _str(_first(attrs, RESPONSE_MODEL)),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": _first_int(attrs, CACHE_READ_TOKENS),
        "cache_write_tokens": _first_int(attrs, CACHE_WRITE_TOKENS),
        "reasoning_tokens": _first_int(attrs, REASONING_TOKENS),
        "total_tokens": total,
        "finish_reasons": finish_reasons(attrs),
        "time_to_first_token_ms": time_to_first_token_ms(attrs, events, start_ns),
        "session_id": _str(_first(attrs, SESSION_ID)),
        "user_id": _str(_first(attrs, USER_ID)),
        "prompt_name": _str(_first(attrs, PROMPT_NAME)),
        "prompt_version": _str(_first(attrs, PROMPT_VERSION)),
        "error_type": error_type(attrs, events, status_code),
        "task_name": task_name(attrs),
        "task_outcome": task_outcome(attrs),
        "task_outcome_reason": _str(_first(attrs, (A.TASK_OUTCOME_REASON,))),
        "validation_name": validation_name,
        "validation_passed": validation_passed(attrs, events),
        "tool_name": tool,
        "reported_cost": _float(attrs.get(A.OI_COST_TOTAL)),
    }


# OpenInference's first-token event; OpenLLMetry's one event per streamed chunk (the earliest counts).
FIRST_TOKEN_EVENTS = frozenset(
    {"First Token Stream Event", "gen_ai.content.first_token", "gen_ai.content.completion.chunk"}
)


def time_to_first_token_ms(attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int) -> float | None:
    """`gen_ai.response.time_to_first_chunk` (seconds), else the earliest first-token or chunk event."""
    v = _float(attrs.get(A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    if v is not None and math.isfinite(v * 1000.0):
        return v * 1000.0
    times = [e["time_unix_nano"] for e in events if e["name"] in FIRST_TOKEN_EVENTS and e["time_unix_nano"] >= start_ns]
    return (min(times) - start_ns) / 1e6 if times else None


def request_model(attrs: dict[str, Any]) -> str | None:
    """REQUEST_MODEL keys, then "model" in OpenInference's invocation parameters, then REQUEST_MODEL_FALLBACK."""
    v = _str(_first(attrs, REQUEST_MODEL))
    if v is None:
        v = _invocation_model(attrs)
    return v if v is not None else _str(_first(attrs, REQUEST_MODEL_FALLBACK))


def _invocation_model(attrs: dict[str, Any]) -> str | None:
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
    v = _str(_first(attrs, (A.ERROR_TYPE,)))
    if v is not None or status_code != "ERROR":
        return v
    for e in events:
        if e["name"] == "exception":
            t = e["attributes"].get("exception.type")
            if t:
                return str(t)
    return None


# --- the fast path ------------------------------------------------------------------
# normalize() reads every attribute it needs in one `lookup` call (C accelerator, else
# lookup_reference), then applies the same rules as normalize_reference to those values.
# Tests assert that the two agree on any attribute dict.

GET, GET_STR, FIRST, FIRST_STR, FIRST_INT = range(5)
LOOKUPS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (FIRST_STR, (A.GEN_AI_OPERATION_NAME,)),
    (GET_STR, (A.SPAN_CATEGORY,)),
    (GET_STR, (A.OI_SPAN_KIND,)),
    (GET_STR, (A.TL_LLM_REQUEST_TYPE,)),
    (FIRST_STR, TASK_NAME),
    (GET, (A.TL_SPAN_KIND,)),
    (FIRST_STR, (A.TL_ENTITY_NAME,)),
    (FIRST_STR, (A.VALIDATION_NAME,)),
    (GET_STR, ("db.system",)),
    (FIRST_INT, INPUT_TOKENS),
    (FIRST_INT, OUTPUT_TOKENS),
    (FIRST_INT, TOTAL_TOKENS),
    (FIRST_INT, CACHE_READ_TOKENS),
    (FIRST_INT, CACHE_WRITE_TOKENS),
    (FIRST_INT, REASONING_TOKENS),
    (FIRST_STR, TOOL_NAME),
    (FIRST_STR, PROVIDER),
    (FIRST_STR, REQUEST_MODEL),
    (FIRST_STR, REQUEST_MODEL_FALLBACK),
    (FIRST_STR, RESPONSE_MODEL),
    (GET, (A.GEN_AI_RESPONSE_FINISH_REASONS,)),
    (FIRST, FINISH_REASON_SINGLE),
    (GET, (A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,)),
    (FIRST_STR, SESSION_ID),
    (FIRST_STR, USER_ID),
    (FIRST_STR, PROMPT_NAME),
    (FIRST_STR, PROMPT_VERSION),
    (FIRST_STR, (A.ERROR_TYPE,)),
    (FIRST_STR, TASK_OUTCOME),
    (FIRST_STR, (A.TASK_OUTCOME_REASON,)),
    (GET, (A.VALIDATION_PASSED,)),
    (GET, (A.OI_COST_TOTAL,)),
    (GET, (OI_INVOCATION_PARAMETERS[0],)),
    (GET, (OI_INVOCATION_PARAMETERS[1],)),
)


def lookup_reference(
    attrs: dict[str, Any], rules: tuple[tuple[int, tuple[str, ...]], ...], to_int: Any = _int
) -> tuple[Any, ...]:
    """One value per (mode, keys) rule: GET attrs.get(keys[0]), GET_STR its _str, FIRST _first,
    FIRST_STR its _str, FIRST_INT _first_int (with `to_int` for values other than plain ints)."""
    out: list[Any] = []
    for mode, keys in rules:
        if mode == GET:
            v = attrs.get(keys[0]) if keys else None
        elif mode == GET_STR:
            v = _str(attrs.get(keys[0]) if keys else None)
        elif mode == FIRST:
            v = _first(attrs, keys)
        elif mode == FIRST_STR:
            v = _str(_first(attrs, keys))
        elif mode == FIRST_INT:
            v = None
            for k in keys:
                x = attrs.get(k)
                if x is not None and (x := to_int(x)) is not None:
                    v = x
                    break
        else:
            raise ValueError("unknown lookup mode")
        out.append(v)
    return tuple(out)


_lookup = lookup_reference if _otlp is None else _otlp.lookup


def _events_verdict(events: list[dict[str, Any]]) -> bool | None:
    labels = [str(e["attributes"].get(EVALUATION_LABEL)).lower() for e in events if e["name"] == EVALUATION_EVENT]
    verdicts = [label == "pass" for label in labels if label in ("pass", "fail")]
    return all(verdicts) if verdicts else None


def _events_first_token_ms(events: list[dict[str, Any]], start_ns: int) -> float | None:
    times = [e["time_unix_nano"] for e in events if e["name"] in FIRST_TOKEN_EVENTS and e["time_unix_nano"] >= start_ns]
    return (min(times) - start_ns) / 1e6 if times else None


def _events_error_type(events: list[dict[str, Any]]) -> str | None:
    for e in events:
        if e["name"] == "exception":
            t = e["attributes"].get("exception.type")
            if t:
                return str(t)
    return None


def normalize(attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str) -> dict[str, Any]:
    """Return the normalized column values for one span (keys are storage.schema.SPANS names).

    Same result as normalize_reference; the attribute reads are batched into one lookup.
    """
    return dict(zip(NORMALIZED_COLUMNS, normalize_row(attrs, events, start_ns, status_code), strict=True))


# The columns normalize() fills, in storage.schema.SPANS order (normalize_row's order).
NORMALIZED_COLUMNS = (
    "category",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "finish_reasons",
    "time_to_first_token_ms",
    "session_id",
    "user_id",
    "prompt_name",
    "prompt_version",
    "error_type",
    "task_name",
    "task_outcome",
    "task_outcome_reason",
    "validation_name",
    "validation_passed",
    "tool_name",
    "reported_cost",
)


def normalize_row(
    attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str
) -> tuple[Any, ...]:
    """normalize() as a tuple of values in NORMALIZED_COLUMNS order (for the decoder's rows)."""
    (
        operation,
        explicit,
        oi_kind,
        tl_request_type,
        task,
        tl_kind,
        entity,
        validation_name,
        db_system,
        input_tokens,
        output_tokens,
        total,
        cache_read,
        cache_write,
        reasoning,
        tool,
        provider,
        req_model,
        req_model_fallback,
        resp_model,
        fr,
        fr_single,
        ttft,
        session,
        user,
        prompt_name,
        prompt_version,
        err,
        outcome,
        outcome_reason,
        passed,
        cost,
        llm_params,
        embedding_params,
    ) = _lookup(attrs, LOOKUPS, _int)

    # category and operation (category_and_operation)
    sent = operation
    oi_kind = oi_kind.upper() if oi_kind else None
    request_type = LLM_REQUEST_TYPE.get(tl_request_type or "")
    if operation is None and oi_kind:
        operation = _openinference_operation(oi_kind, attrs)
    if operation is None and request_type:
        operation = request_type[1]
    if task is None and tl_kind == "workflow":
        task = entity
    if explicit in VALID_CATEGORIES:
        category = explicit
    elif task is not None:
        category = "task"
    elif validation_name is not None:
        category = "guardrail"
    elif sent in OPERATION_CATEGORY:
        category = OPERATION_CATEGORY[sent]
    elif oi_kind in OPENINFERENCE_CATEGORY:
        category = OPENINFERENCE_CATEGORY[oi_kind]
    elif (tl := _str(tl_kind)) in TRACELOOP_CATEGORY:
        category = TRACELOOP_CATEGORY[tl]
    elif request_type:
        category = request_type[0]
    elif db_system in VECTOR_DB_SYSTEMS:
        category = "retrieval"
    else:
        category = "other"

    if total is None and (input_tokens is not None or output_tokens is not None):
        total = _int((input_tokens or 0) + (output_tokens or 0))
    if tool is None and tl_kind == "tool":
        tool = entity
    if provider is not None:
        provider = provider.lower()
        provider = PROVIDER_ALIASES.get(provider, provider)
    if req_model is None:
        if llm_params is not None or embedding_params is not None:
            req_model = _invocation_model(attrs)
        if req_model is None:
            req_model = req_model_fallback

    if isinstance(fr, list):
        reasons: list[str] | None = [str(x) for x in fr]
    elif isinstance(fr, str) and fr:
        reasons = [fr]
    elif fr_single is not None:
        reasons = [str(x) for x in fr_single] if isinstance(fr_single, list) else [str(fr_single)]
    else:
        reasons = None

    first_token = None if ttft is None else _float(ttft)
    if first_token is not None and math.isfinite(first_token * 1000.0):
        first_token = first_token * 1000.0
    else:
        first_token = _events_first_token_ms(events, start_ns) if events else None
    if err is None and status_code == "ERROR" and events:
        err = _events_error_type(events)
    if outcome is not None:
        outcome = outcome.lower()
        if outcome not in A.TASK_OUTCOMES:
            outcome = None
    verdict = None if passed is None else _bool(passed)
    if verdict is None and events:
        verdict = _events_verdict(events)

    return (
        category,
        operation,
        provider,
        req_model,
        resp_model,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        total,
        reasons,
        first_token,
        session,
        user,
        prompt_name,
        prompt_version,
        err,
        task,
        outcome,
        outcome_reason,
        validation_name,
        verdict,
        tool,
        None if cost is None else _float(cost),
    )
