"""Normalize a span's attributes from any GenAI dialect into spanlake's typed columns.

Pure functions: attributes in, column values out. The precedence of sources for each
column is the order of the key tuples in `dialects`, and it is the rule written down in
docs/normalization.md: spanlake's own keys first, then the current OTel GenAI names, then
the deprecated OTel names, then OpenInference, then OpenLLMetry, then the Vercel AI SDK's
`ai.*` keys. The raw attributes are always stored as well, so a rule here can only add
information, never hide it.

Where a real library sends a fact only inside another value, the rule reads it there, in
the same dialect order: OpenInference's requested model is "model" in its JSON invocation
parameters (its llm.model_name is the answering model); OpenLLMetry's time to first token
is its first `gen_ai.content.completion.chunk` span event. docs/instrumentations.md lists
what each library was observed to send.

The modules:
- `dialects`: the key tables (OTel GenAI, OpenInference, OpenLLMetry, Vercel AI SDK), in precedence order;
- `coerce`: what counts as a usable string, count, number or boolean;
- `reference`: the readable rules, one per column (`normalize_reference`);
- `fast`: `normalize` and `normalize_row`, the same rules over one batched attribute
  lookup (the C accelerator `_otlp.lookup` when built), which the decoder calls per span.
"""

from __future__ import annotations

from spanlake.collector.content import CONTENT_VALUE_BYTES, is_content
from spanlake.collector.normalize.coerce import INT64_MAX
from spanlake.collector.normalize.coerce import as_bool as _bool
from spanlake.collector.normalize.coerce import as_float as _float
from spanlake.collector.normalize.coerce import as_int as _int
from spanlake.collector.normalize.coerce import as_str as _str
from spanlake.collector.normalize.coerce import first as _first
from spanlake.collector.normalize.coerce import first_int as _first_int
from spanlake.collector.normalize.dialects import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_1H_TOKENS,
    CACHE_WRITE_TOKENS,
    EVALUATION_EVENT,
    EVALUATION_LABEL,
    FINISH_REASON_SINGLE,
    FIRST_TOKEN_EVENTS,
    INPUT_TOKENS,
    LLM_REQUEST_TYPE,
    OI_INVOCATION_PARAMETERS,
    OPENINFERENCE_CATEGORY,
    OPERATION_CATEGORY,
    OUTPUT_TOKENS,
    PROMPT_NAME,
    PROMPT_VERSION,
    PROVIDER,
    PROVIDER_ALIASES,
    REASONING_TOKENS,
    REQUEST_MODEL,
    REQUEST_MODEL_FALLBACK,
    RESPONSE_MODEL,
    SESSION_ID,
    TASK_NAME,
    TASK_OUTCOME,
    TOOL_NAME,
    TOTAL_TOKENS,
    TRACELOOP_CATEGORY,
    USER_ID,
    VALID_CATEGORIES,
    VECTOR_DB_SYSTEMS,
    VERCEL_OPERATIONS,
    VERCEL_PROVIDERS,
)
from spanlake.collector.normalize.fast import (
    FIRST,
    FIRST_INT,
    FIRST_STR,
    GET,
    GET_STR,
    LOOKUPS,
    NORMALIZED_COLUMNS,
    _otlp,
    lookup_index,
    lookup_reference,
    normalize,
    normalize_row,
)
from spanlake.collector.normalize.reference import (
    category_and_operation,
    error_type,
    finish_reasons,
    normalize_reference,
    provider_name,
    request_model,
    task_name,
    task_outcome,
    time_to_first_token_ms,
    validation_passed,
)

# The package's names as they were when it was one module (the tests and the decoder import
# these, the private helpers included).
__all__ = [
    "CACHE_READ_TOKENS",
    "CACHE_WRITE_1H_TOKENS",
    "CACHE_WRITE_TOKENS",
    "CONTENT_VALUE_BYTES",
    "EVALUATION_EVENT",
    "EVALUATION_LABEL",
    "FINISH_REASON_SINGLE",
    "FIRST",
    "FIRST_INT",
    "FIRST_STR",
    "FIRST_TOKEN_EVENTS",
    "GET",
    "GET_STR",
    "INPUT_TOKENS",
    "INT64_MAX",
    "LLM_REQUEST_TYPE",
    "LOOKUPS",
    "NORMALIZED_COLUMNS",
    "OI_INVOCATION_PARAMETERS",
    "OPENINFERENCE_CATEGORY",
    "OPERATION_CATEGORY",
    "OUTPUT_TOKENS",
    "PROMPT_NAME",
    "PROMPT_VERSION",
    "PROVIDER",
    "PROVIDER_ALIASES",
    "REASONING_TOKENS",
    "REQUEST_MODEL",
    "REQUEST_MODEL_FALLBACK",
    "RESPONSE_MODEL",
    "SESSION_ID",
    "TASK_NAME",
    "TASK_OUTCOME",
    "TOOL_NAME",
    "TOTAL_TOKENS",
    "TRACELOOP_CATEGORY",
    "USER_ID",
    "VALID_CATEGORIES",
    "VECTOR_DB_SYSTEMS",
    "VERCEL_OPERATIONS",
    "VERCEL_PROVIDERS",
    "_bool",
    "_first",
    "_first_int",
    "_float",
    "_int",
    "_otlp",
    "_str",
    "category_and_operation",
    "error_type",
    "finish_reasons",
    "is_content",
    "lookup_index",
    "lookup_reference",
    "normalize",
    "normalize_reference",
    "normalize_row",
    "provider_name",
    "request_model",
    "task_name",
    "task_outcome",
    "time_to_first_token_ms",
    "validation_passed",
]
