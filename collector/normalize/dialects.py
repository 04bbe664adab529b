"""Dialect key tables: which attribute keys each normalized column reads, in precedence order.

The order of each tuple is the rule written down in docs/normalization.md: spanlake's own
keys first, then the current OTel GenAI names, then the deprecated OTel names, then
OpenInference, then OpenLLMetry (Traceloop), then the Vercel AI SDK's own `ai.*` keys, then a
framework's own extension of the OTel names (Pydantic AI). The dicts map a dialect's values
(operation names, span kinds, provider spellings) to spanlake's. Both the readable reference
(normalize.reference) and the fast path (normalize.fast) read these tables, never their own.
"""

from __future__ import annotations

from spanlake.sdk import attributes as A
from spanlake.storage.schema import CATEGORIES

INPUT_TOKENS = (
    A.GEN_AI_USAGE_INPUT_TOKENS,
    A.GEN_AI_USAGE_PROMPT_TOKENS,
    A.OI_TOKEN_PROMPT,
    A.VERCEL_INPUT_TOKENS,
    A.VERCEL_PROMPT_TOKENS,
)
OUTPUT_TOKENS = (
    A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.GEN_AI_USAGE_COMPLETION_TOKENS,
    A.OI_TOKEN_COMPLETION,
    A.VERCEL_OUTPUT_TOKENS,
    A.VERCEL_COMPLETION_TOKENS,
)
CACHE_READ_TOKENS = (
    A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    A.OI_TOKEN_CACHE_READ,
    A.TL_CACHE_READ_TOKENS,
    A.VERCEL_CACHE_READ_TOKENS,
    A.VERCEL_CACHED_INPUT_TOKENS,
)
CACHE_WRITE_TOKENS = (
    A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    A.OI_TOKEN_CACHE_WRITE,
    A.TL_CACHE_CREATION_TOKENS,
    A.VERCEL_CACHE_WRITE_TOKENS,
)
# The 1-hour share of the cache writes: only the anthropic client 2.x's own span sends it (beside
# `..._5m_input_tokens`, the rest). Kept only beside a cache-write count, and never above it
# (normalize.reference.cache_write_1h; docs/normalization.md).
ANTHROPIC_CACHE_WRITE_1H = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
CACHE_WRITE_1H_TOKENS = (ANTHROPIC_CACHE_WRITE_1H,)
REASONING_TOKENS = (
    A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    A.OI_TOKEN_REASONING,
    A.TL_REASONING_TOKENS,
    A.TL_REASONING_TOKENS_OLD,
    A.VERCEL_REASONING_TOKENS,
    A.VERCEL_REASONING_TOKENS_OLD,
    A.PYDANTIC_AI_REASONING_TOKENS,  # OpenAI's reasoning_tokens, as Pydantic AI passes them on
)
TOTAL_TOKENS = (A.OI_TOKEN_TOTAL, A.TL_TOTAL_TOKENS, A.TL_TOTAL_TOKENS_OLD, A.VERCEL_TOTAL_TOKENS)
# Request model: these keys, then "model" inside OpenInference's JSON invocation parameters
# (openinference-instrumentation-openai sends the requested model only there; its
# llm.model_name / embedding.model_name is the model that answered), then REQUEST_MODEL_FALLBACK.
REQUEST_MODEL = (A.GEN_AI_REQUEST_MODEL, A.OI_LLM_REQUEST_MODEL_NAME)
OI_INVOCATION_PARAMETERS = ("llm.invocation_parameters", "embedding.invocation_parameters")
REQUEST_MODEL_FALLBACK = (A.OI_LLM_MODEL_NAME, A.OI_EMBEDDING_MODEL_NAME, A.OI_RERANKER_MODEL_NAME, A.VERCEL_MODEL_ID)
RESPONSE_MODEL = (
    A.GEN_AI_RESPONSE_MODEL,
    A.OI_LLM_RESPONSE_MODEL_NAME,
    A.OI_LLM_MODEL_NAME,
    A.OI_EMBEDDING_MODEL_NAME,
    A.VERCEL_RESPONSE_MODEL,
)
PROVIDER = (A.GEN_AI_PROVIDER_NAME, A.GEN_AI_SYSTEM, A.OI_LLM_PROVIDER, A.OI_LLM_SYSTEM, A.VERCEL_MODEL_PROVIDER)
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
TOOL_NAME = (A.GEN_AI_TOOL_NAME, A.OI_TOOL_NAME, A.VERCEL_TOOL_CALL_NAME)
# Time to first token in seconds (Pydantic AI names its span attribute after OTel's metric).
TIME_TO_FIRST_CHUNK = (A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, A.PYDANTIC_AI_TIME_TO_FIRST_CHUNK)
# A cost the instrumentation computed itself (USD): shown beside spanlake's, never mixed in.
REPORTED_COST = (A.OI_COST_TOTAL, A.PYDANTIC_AI_OPERATION_COST)
# The anthropic client 2.x's own span sends its stop reason only here (docs/instrumentations.md).
ANTHROPIC_STOP_REASON = "anthropic.message.stop_reason"
FINISH_REASON_SINGLE = (
    A.OI_FINISH_REASON,
    A.TL_FINISH_REASON,
    A.TL_FINISH_REASON_OLD,
    ANTHROPIC_STOP_REASON,
    A.VERCEL_FINISH_REASON,
)

# Instrumentation scopes observed to send `gen_ai.usage.input_tokens` WITHOUT the cache reads and
# writes they send beside it (Bedrock's and Anthropic's own meaning, not OTel's): their spans'
# input (and a sent total) get the cache counts added, so cache tokens stay a subset of input
# (docs/normalization.md, "Token counts"; observed in tests/collector/test_instrumentations_bedrock.py).
INPUT_EXCLUDES_CACHE_SCOPES = frozenset({"opentelemetry.instrumentation.bedrock"})

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
# LiteLLM's own OTel callback sends its call type as `gen_ai.operation.name` (only `completion`
# becomes `chat`): the async and embedding call types → the OTel operation they are.
OPERATION_ALIASES = {
    "acompletion": "chat",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "atext_completion": "text_completion",
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
# The Vercel AI SDK's spans, by `ai.operationId` → (category, operation). A do* span is one call
# to the provider; the span around it (ai.generateText, ...) is the SDK's loop of calls and tool
# runs, whose `ai.usage.*` repeat its calls' usage summed: a chain, never a call, so its tokens
# count nowhere (as OpenInference's own Vercel mapping reads it: CHAIN).
VERCEL_OPERATIONS = {
    "ai.generateText.doGenerate": ("llm", "chat"),
    "ai.streamText.doStream": ("llm", "chat"),
    "ai.generateObject.doGenerate": ("llm", "chat"),
    "ai.streamObject.doStream": ("llm", "chat"),
    "ai.embed.doEmbed": ("embedding", "embeddings"),
    "ai.embedMany.doEmbed": ("embedding", "embeddings"),
    "ai.rerank.doRerank": ("rerank", "rerank"),
    "ai.toolCall": ("tool", "execute_tool"),
    "ai.generateText": ("chain", None),
    "ai.streamText": ("chain", None),
    "ai.generateObject": ("chain", None),
    "ai.streamObject": ("chain", None),
    "ai.embed": ("chain", None),
    "ai.embedMany": ("chain", None),
    "ai.rerank": ("chain", None),
}
# The AI SDK names providers `<provider>.<api>` (`openai.chat`, `google.vertex.chat`); its
# provider id → the OTel name, by the longest matching head (the whole id or the part before a
# dot). Heads not listed are kept (`openai`, `anthropic`, `groq`, ...), through PROVIDER_ALIASES.
VERCEL_PROVIDERS = {
    "google.vertex": "gcp.vertex_ai",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "amazon-bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
    "togetherai": "together_ai",
    "moonshotai": "moonshot_ai",
}
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
# OpenInference's first-token event; OpenLLMetry's one event per streamed chunk (the earliest
# counts); the Vercel AI SDK's first-chunk event.
FIRST_TOKEN_EVENTS = frozenset(
    {
        "First Token Stream Event",
        "gen_ai.content.first_token",
        "gen_ai.content.completion.chunk",
        "ai.stream.firstChunk",
    }
)
