"""Dialect key tables: which attribute keys each normalized column reads, in precedence order.

The order of each tuple is the rule written down in docs/normalization.md: spanlake's own
keys first, then the current OTel GenAI names, then the deprecated OTel names, then
OpenInference, then OpenLLMetry (Traceloop). The dicts map a dialect's values (operation
names, span kinds, provider spellings) to spanlake's. Both the readable reference
(normalize.reference) and the fast path (normalize.fast) read these tables, never their own.
"""

from __future__ import annotations

from spanlake.sdk import attributes as A
from spanlake.storage.schema import CATEGORIES

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
# The anthropic client 2.x's own span sends its stop reason only here (docs/instrumentations.md).
ANTHROPIC_STOP_REASON = "anthropic.message.stop_reason"
FINISH_REASON_SINGLE = (A.OI_FINISH_REASON, A.TL_FINISH_REASON, A.TL_FINISH_REASON_OLD, ANTHROPIC_STOP_REASON)

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
# OpenInference's first-token event; OpenLLMetry's one event per streamed chunk (the earliest counts).
FIRST_TOKEN_EVENTS = frozenset(
    {"First Token Stream Event", "gen_ai.content.first_token", "gen_ai.content.completion.chunk"}
)
