"""Which attributes are message content (prompts, completions, documents, tool I/O).

Content goes to the `content` column so that scans for latency, tokens and cost never
read it. The rule is by key (a fixed list, prefixes of flattened lists, OpenLLMetry's
indexed keys) or by size (any string over CONTENT_VALUE_BYTES). The key part of the
decision is memoized: keys repeat across spans, so a lookup replaces the pattern tests.
"""

from __future__ import annotations

import re
from typing import Any

from spanlake.sdk import attributes as A

try:
    from spanlake.collector import _otlp  # type: ignore[attr-defined]
except ImportError:  # not built: split_content_reference does the work
    _otlp = None

# Content keys go to the `content` column (big text: prompts, completions, documents).
CONTENT_KEYS = frozenset(
    {
        A.GEN_AI_INPUT_MESSAGES,
        A.GEN_AI_OUTPUT_MESSAGES,
        A.GEN_AI_SYSTEM_INSTRUCTIONS,
        A.GEN_AI_TOOL_DEFINITIONS,
        A.GEN_AI_TOOL_CALL_ARGUMENTS,
        A.GEN_AI_TOOL_CALL_RESULT,
        A.GEN_AI_RETRIEVAL_DOCUMENTS,
        A.GEN_AI_RETRIEVAL_QUERY_TEXT,
        A.GEN_AI_PROMPT,
        A.GEN_AI_COMPLETION,
        A.OI_INPUT_VALUE,
        A.OI_OUTPUT_VALUE,
        A.TL_ENTITY_INPUT,
        A.TL_ENTITY_OUTPUT,
        "llm.prompt_template.template",
        "llm.prompt_template.variables",
        "traceloop.prompt.template",
        "traceloop.prompt.template_variables",
        "gen_ai.task.input",
        "gen_ai.task.output",
        "gen_ai.memory.query.text",
        "gen_ai.memory.records",
        "llm.function_call",
        "reranker.query",
        # Vercel AI SDK (docs/instrumentations.md)
        "ai.prompt",
        "ai.prompt.messages",
        "ai.prompt.tools",
        "ai.schema",
        "ai.response.text",
        "ai.response.reasoning",
        "ai.response.toolCalls",
        "ai.response.object",
        "ai.toolCall.args",
        "ai.toolCall.result",
        "ai.value",
        "ai.values",
        "ai.embedding",
        "ai.embeddings",
        "ai.documents",
        "ai.ranking",
        A.PYDANTIC_AI_ALL_MESSAGES,
        A.PYDANTIC_AI_FINAL_RESULT,
        A.PYDANTIC_AI_REQUEST_PARAMETERS,
    }
)
CONTENT_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.choices.",
    "llm.tools.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
    "gen_ai.prompt.variable.",
    "llm.request.functions.",
)
# The same lists sent unflattened (one array or JSON-string attribute) are content too.
_CONTENT_PREFIX_KEYS = frozenset(p.rstrip(".") for p in CONTENT_PREFIXES)
# OpenLLMetry's indexed content: gen_ai.prompt.0.content, gen_ai.completion.1.role, ...
_INDEXED_CONTENT = re.compile(r"^gen_ai\.(prompt|completion)\.\d+\.")
# LiteLLM's own callback copies the raw request and response onto a `raw_gen_ai_request` span as
# llm.<provider>.<field>: the fields that hold messages, replies and tool definitions.
_LITELLM_RAW_CONTENT = re.compile(
    r"^llm\.[a-z0-9_]+\.(messages|choices|system|contents?|tools|stringified_raw_response)$"
)
# Any single string value larger than this (UTF-8 bytes) is content, whatever its key.
CONTENT_VALUE_BYTES = 8 * 1024


_KEY_IS_CONTENT: dict[str, bool] = {}
_KEY_CACHE_MAX = 65_536  # hostile senders can invent keys: bound the memo


def is_content_key(key: str) -> bool:
    """True when the key alone marks content (memoized)."""
    hit = _KEY_IS_CONTENT.get(key)
    if hit is not None:
        return hit
    hit = bool(
        key in CONTENT_KEYS
        or key in _CONTENT_PREFIX_KEYS
        or key.startswith(CONTENT_PREFIXES)
        or _INDEXED_CONTENT.match(key)
        or _LITELLM_RAW_CONTENT.match(key)
    )
    if len(_KEY_IS_CONTENT) >= _KEY_CACHE_MAX:
        _KEY_IS_CONTENT.clear()
    _KEY_IS_CONTENT[key] = hit
    return hit


def is_content(key: str, value: Any) -> bool:
    """True when an attribute holds message content rather than a small fact."""
    if is_content_key(key):
        return True
    if type(value) is not str or len(value) * 4 <= CONTENT_VALUE_BYTES:
        return False
    return len(value) > CONTENT_VALUE_BYTES or len(value.encode("utf-8", "surrogatepass")) > CONTENT_VALUE_BYTES


def split_content_reference(attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split attributes into (small facts, message content): the pure-Python reference."""
    facts: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for k, v in attrs.items():
        (content if is_content(k, v) else facts)[k] = v
    return facts, content


def split_content(attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split attributes into (small facts, message content), each keeping the attributes' order.

    Runs in the C accelerator when it is built (same rule, same memo), else the reference.
    """
    if _otlp is None:
        return split_content_reference(attrs)
    return _otlp.split_attrs(attrs, _KEY_IS_CONTENT, is_content_key, CONTENT_VALUE_BYTES)
