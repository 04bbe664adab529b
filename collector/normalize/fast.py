"""The fast path: normalize() and normalize_row(), which the decoder calls for every span.

Every attribute the rules need is read in one `lookup` call: the C accelerator
(collector/_otlp.c, `_otlp.lookup`) when it was built, else `lookup_reference`, the same
reads in Python. The rules of normalize.reference are then applied to those values, inline.
Tests assert that `_otlp.lookup` equals `lookup_reference` and that `normalize` equals
`normalize_reference` on any attribute dict.
"""

from __future__ import annotations

import math
from typing import Any

try:
    from spanlake.collector import _otlp  # type: ignore[attr-defined]
except ImportError:  # not built: lookup_reference does the work
    _otlp = None

from spanlake.collector.normalize.coerce import as_bool, as_float, as_int, as_str, first
from spanlake.collector.normalize.dialects import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_1H_TOKENS,
    CACHE_WRITE_TOKENS,
    FINISH_REASON_SINGLE,
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
)
from spanlake.collector.normalize.reference import (
    events_error_type,
    events_first_token_ms,
    finish_reason_list,
    invocation_model,
    openinference_operation,
    provider_alias,
    with_cache_in_input,
)
from spanlake.sdk import attributes as A
from spanlake.storage.schema import SPANS

# The columns normalize() fills, in storage.schema.SPANS order (normalize_row's order).
NORMALIZED_COLUMNS = tuple(c.name for c in SPANS.columns if c.normalized)

# Lookup modes (collector/_otlp.c numbers them the same) and the reads normalize_row unpacks, in order.
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
    (GET, (TIME_TO_FIRST_CHUNK[0],)),
    (GET, (TIME_TO_FIRST_CHUNK[1],)),
    (FIRST_STR, SESSION_ID),
    (FIRST_STR, USER_ID),
    (FIRST_STR, PROMPT_NAME),
    (FIRST_STR, PROMPT_VERSION),
    (FIRST_STR, (A.ERROR_TYPE,)),
    (FIRST_STR, TASK_OUTCOME),
    (FIRST_STR, (A.TASK_OUTCOME_REASON,)),
    (GET, (A.VALIDATION_PASSED,)),
    (GET, (REPORTED_COST[0],)),
    (GET, (REPORTED_COST[1],)),
    (GET, (OI_INVOCATION_PARAMETERS[0],)),
    (GET, (OI_INVOCATION_PARAMETERS[1],)),
    (GET_STR, (A.VERCEL_OPERATION_ID,)),
    (GET_STR, (A.VERCEL_MODEL_PROVIDER,)),
    (FIRST_INT, CACHE_WRITE_1H_TOKENS),
)


def lookup_reference(
    attrs: dict[str, Any], rules: tuple[tuple[int, tuple[str, ...]], ...], to_int: Any = as_int
) -> tuple[Any, ...]:
    """One value per (mode, keys) rule: GET attrs.get(keys[0]), GET_STR its as_str, FIRST first,
    FIRST_STR its as_str, FIRST_INT first_int (with `to_int` for values other than plain ints)."""
    out: list[Any] = []
    for mode, keys in rules:
        if mode == GET:
            v = attrs.get(keys[0]) if keys else None
        elif mode == GET_STR:
            v = as_str(attrs.get(keys[0]) if keys else None)
        elif mode == FIRST:
            v = first(attrs, keys)
        elif mode == FIRST_STR:
            v = as_str(first(attrs, keys))
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


def lookup_index(rules: tuple[tuple[int, tuple[str, ...]], ...]) -> dict[str, tuple[int, ...]]:
    """{key: (rule << 8 | position, ...)} over every key of `rules` (its first 64 per rule): with it,
    `_otlp.lookup` walks a span's few attributes once instead of trying every key of every rule."""
    index: dict[str, list[int]] = {}
    for r, (_, keys) in enumerate(rules):
        for at, key in enumerate(keys[:64]):
            index.setdefault(key, []).append(r << 8 | at)
    return {key: tuple(slots) for key, slots in index.items()}


LOOKUP_INDEX = lookup_index(LOOKUPS)


def _lookup_reference(
    attrs: dict[str, Any], rules: tuple[tuple[int, tuple[str, ...]], ...], to_int: Any, index: Any = None
) -> tuple[Any, ...]:
    return lookup_reference(attrs, rules, to_int)


_lookup = _lookup_reference if _otlp is None else _otlp.lookup


def normalize(
    attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str, scope: str | None = None
) -> dict[str, Any]:
    """Return the normalized column values for one span (keys are storage.schema.SPANS names).

    Same result as normalize_reference; the attribute reads are batched into one lookup.
    """
    return dict(zip(NORMALIZED_COLUMNS, normalize_row(attrs, events, start_ns, status_code, scope), strict=True))


def normalize_row(
    attrs: dict[str, Any], events: list[dict[str, Any]], start_ns: int, status_code: str, scope: str | None = None
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
        ttft_2,
        session,
        user,
        prompt_name,
        prompt_version,
        err,
        outcome,
        outcome_reason,
        passed,
        cost,
        cost_2,
        llm_params,
        embedding_params,
        vercel_operation,
        vercel_provider,
        cache_write_1h,
    ) = _lookup(attrs, LOOKUPS, as_int, LOOKUP_INDEX)

    # category and operation (category_and_operation)
    if operation is not None:  # operation_name, inline
        operation = OPERATION_ALIASES.get(operation, operation)
    sent = operation
    oi_kind = oi_kind.upper() if oi_kind else None
    request_type = LLM_REQUEST_TYPE.get(tl_request_type or "")
    if operation is None and oi_kind:
        operation = openinference_operation(oi_kind, attrs)
    if operation is None and request_type:
        operation = request_type[1]
    vercel = None if vercel_operation is None else VERCEL_OPERATIONS.get(vercel_operation)
    if operation is None and vercel:
        operation = vercel[1]
    if task is None and tl_kind == "workflow":
        task = entity
    elif task is not None and tl_kind == "task":  # a step in a workflow: only spanlake's key marks it a task
        task = as_str(first(attrs, (A.TASK_NAME,)))
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
    elif (tl := as_str(tl_kind)) in TRACELOOP_CATEGORY:
        category = TRACELOOP_CATEGORY[tl]
    elif request_type:
        category = request_type[0]
    elif vercel:
        category = vercel[0]
    elif db_system in VECTOR_DB_SYSTEMS:
        category = "retrieval"
    else:
        category = "other"

    if scope in INPUT_EXCLUDES_CACHE_SCOPES:
        input_tokens, total = with_cache_in_input(input_tokens, total, cache_read, cache_write)
    if total is None and (input_tokens is not None or output_tokens is not None):
        total = as_int((input_tokens or 0) + (output_tokens or 0))
    if tool is None and tl_kind == "tool":
        tool = entity
    if provider is not None:
        provider = provider.lower()
        if provider in PROVIDER_ALIASES:  # provider_alias, its common case inline
            provider = PROVIDER_ALIASES[provider]
        elif vercel_provider is not None:
            provider = provider_alias(provider, vercel_provider)
    if req_model is None:
        if llm_params is not None or embedding_params is not None:
            req_model = invocation_model(attrs)
        if req_model is None:
            req_model = req_model_fallback

    # finish_reason_list, its common cases (a list, a plain string) inline
    if fr is None:
        reasons = None
    elif type(fr) is list:
        reasons = [str(x) for x in fr]
    elif type(fr) is str and fr and fr[0] != "[":
        reasons = [fr]
    else:
        reasons = finish_reason_list(fr)
    if reasons is None and fr_single is not None:
        reasons = [str(x) for x in fr_single] if isinstance(fr_single, list) else [str(fr_single)]

    first_token = None
    if ttft is not None or ttft_2 is not None:
        for sent_s in (ttft, ttft_2):  # TIME_TO_FIRST_CHUNK, in order
            seconds = None if sent_s is None else as_float(sent_s)
            if seconds is not None and math.isfinite(seconds * 1000.0):
                first_token = seconds * 1000.0
                break
    if first_token is None and events:
        first_token = events_first_token_ms(events, start_ns)
    if err is None and status_code == "ERROR" and events:
        err = events_error_type(events)
    if outcome is not None:
        outcome = outcome.lower()
        if outcome not in A.TASK_OUTCOMES:
            outcome = None
    verdict = None if passed is None else as_bool(passed)
    reported_cost = None
    if cost is not None:
        reported_cost = as_float(cost)
    if reported_cost is None and cost_2 is not None:
        reported_cost = as_float(cost_2)  # gen_ai.evaluation.result events: judge labels

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
        reported_cost,
        None if cache_write_1h is None or cache_write is None else min(cache_write_1h, cache_write),
    )
