"""Attribute keys spanlake writes and reads.

This module is the one definition shared by the SDK (which writes these keys) and the
collector's normalization (which reads them). It has no dependencies, so importing it
never pulls the backend into an application.

The public names (OTel GenAI, OpenInference, OpenLLMetry, the Vercel AI SDK) are listed here too, because
normalization must read every dialect; see docs/normalization.md for precedence rules.
"""

from __future__ import annotations

# --- spanlake's own keys (../shared/spec/spanlake-attributes.md) -------------------------
TASK_NAME = "spanlake.task.name"
TASK_OUTCOME = "spanlake.task.outcome"  # "success" | "failure"
TASK_OUTCOME_REASON = "spanlake.task.outcome_reason"
VALIDATION_NAME = "spanlake.validation.name"
VALIDATION_PASSED = "spanlake.validation.passed"
VALIDATION_ERRORS = "spanlake.validation.errors"
POLICY_NAME = "spanlake.policy.name"
POLICY_DECISION = "spanlake.policy.decision"  # allow | block | redact | review
FALLBACK_REASON = "spanlake.fallback.reason"
FALLBACK_TO = "spanlake.fallback.to"
ESCALATION_REASON = "spanlake.escalation.reason"
ESCALATION_TO = "spanlake.escalation.to"
SPAN_CATEGORY = "spanlake.span.category"  # explicit category override written by the SDK
RESOURCE_PROJECT = "spanlake.project"  # resource attribute
# Experiments (`spanlake experiment run`): on every span of an item's trace, task included.
EXPERIMENT_ID = "spanlake.experiment.id"  # exp-20261205-153012-ab12
EXPERIMENT_ITEM_ID = "spanlake.experiment.item_id"  # the dataset example's id
EXPERIMENT_DATASET = "spanlake.experiment.dataset"  # name@version
EXPERIMENT_META_PREFIX = "spanlake.experiment.meta."  # + a run metadata key (`--meta model=gpt-4o`)

# Values of SPAN_CATEGORY the SDK writes, per marker (a subset of storage.schema.CATEGORIES).
CATEGORY_TASK = "task"
CATEGORY_LLM = "llm"
CATEGORY_RETRIEVAL = "retrieval"
CATEGORY_TOOL = "tool"
CATEGORY_GUARDRAIL = "guardrail"  # validation() and policy()
CATEGORY_CHAIN = "chain"  # fallback() and escalation(): a step of the flow

TASK_OUTCOMES = ("success", "failure")
POLICY_DECISIONS = ("allow", "block", "redact", "review")

# --- OpenTelemetry GenAI semantic conventions (v1.41 and the dev repo) -------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated since v1.37, still sent by many instrumentations
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"  # deprecated (v1.28)
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"  # deprecated (v1.28)
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"  # dev-repo rename
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
GEN_AI_PROMPT_VERSION = "gen_ai.prompt.version"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"  # function | extension | datastore
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_WORKFLOW_NAME = "gen_ai.workflow.name"
GEN_AI_PROMPT = "gen_ai.prompt"  # obsolete single string, or OpenLLMetry's indexed prefix
GEN_AI_COMPLETION = "gen_ai.completion"
ERROR_TYPE = "error.type"
SESSION_ID = "session.id"  # OpenInference
USER_ID = "user.id"  # OpenInference
SERVICE_NAME = "service.name"  # resource

# --- OpenInference -------------------------------------------------------------------
OI_SPAN_KIND = "openinference.span.kind"
OI_PROJECT_NAME = "openinference.project.name"  # resource
OI_LLM_MODEL_NAME = "llm.model_name"
OI_LLM_REQUEST_MODEL_NAME = "llm.request.model_name"
OI_LLM_RESPONSE_MODEL_NAME = "llm.response.model_name"
OI_LLM_SYSTEM = "llm.system"
OI_LLM_PROVIDER = "llm.provider"
OI_TOKEN_PROMPT = "llm.token_count.prompt"
OI_TOKEN_COMPLETION = "llm.token_count.completion"
OI_TOKEN_TOTAL = "llm.token_count.total"
OI_TOKEN_CACHE_READ = "llm.token_count.prompt_details.cache_read"
OI_TOKEN_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
OI_TOKEN_REASONING = "llm.token_count.completion_details.reasoning"
OI_COST_TOTAL = "llm.cost.total"
OI_FINISH_REASON = "llm.finish_reason"
OI_PROMPT_TEMPLATE_VERSION = "llm.prompt_template.version"
OI_INPUT_VALUE = "input.value"
OI_OUTPUT_VALUE = "output.value"
OI_TOOL_NAME = "tool.name"
OI_EMBEDDING_MODEL_NAME = "embedding.model_name"
OI_RERANKER_MODEL_NAME = "reranker.model_name"
OI_AGENT_NAME = "agent.name"
# Retrieved documents, flattened: f"{OI_RETRIEVAL_DOCUMENTS}.{i}.{OI_DOCUMENT_ID}" etc.
OI_RETRIEVAL_DOCUMENTS = "retrieval.documents"
OI_DOCUMENT_ID = "document.id"
OI_DOCUMENT_SCORE = "document.score"
OI_DOCUMENT_CONTENT = "document.content"
OI_DOCUMENT_METADATA = "document.metadata"  # JSON string

# --- OpenLLMetry (Traceloop) ---------------------------------------------------------
TL_SPAN_KIND = "traceloop.span.kind"  # workflow | task | agent | tool | unknown
TL_ENTITY_NAME = "traceloop.entity.name"
TL_ENTITY_INPUT = "traceloop.entity.input"
TL_ENTITY_OUTPUT = "traceloop.entity.output"
TL_WORKFLOW_NAME = "traceloop.workflow.name"
TL_PROMPT_KEY = "traceloop.prompt.key"
TL_PROMPT_VERSION = "traceloop.prompt.version"
TL_ASSOCIATION_PREFIX = "traceloop.association.properties."
TL_LLM_REQUEST_TYPE = "llm.request.type"  # chat | completion | embedding | rerank | unknown
TL_TOTAL_TOKENS_OLD = "llm.usage.total_tokens"
TL_TOTAL_TOKENS = "gen_ai.usage.total_tokens"
TL_CACHE_READ_TOKENS = "gen_ai.usage.cache_read_input_tokens"
TL_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation_input_tokens"
TL_REASONING_TOKENS_OLD = "llm.usage.reasoning_tokens"
TL_REASONING_TOKENS = "gen_ai.usage.reasoning_tokens"
TL_FINISH_REASON_OLD = "llm.response.finish_reason"
TL_FINISH_REASON = "gen_ai.response.finish_reason"
TL_TASK_NAME = "gen_ai.task.name"
TL_TASK_STATUS = "gen_ai.task.status"

# --- Vercel AI SDK (`ai`, experimental_telemetry; observed: docs/instrumentations.md) -------
VERCEL_OPERATION_ID = "ai.operationId"  # ai.generateText, ai.generateText.doGenerate, ai.toolCall, ...
VERCEL_MODEL_PROVIDER = "ai.model.provider"  # the AI SDK's provider id: openai.chat, anthropic.messages, ...
VERCEL_MODEL_ID = "ai.model.id"
VERCEL_RESPONSE_MODEL = "ai.response.model"
VERCEL_FINISH_REASON = "ai.response.finishReason"
VERCEL_TOOL_CALL_NAME = "ai.toolCall.name"
VERCEL_INPUT_TOKENS = "ai.usage.inputTokens"  # v5+; cache reads and writes included (v6)
VERCEL_PROMPT_TOKENS = "ai.usage.promptTokens"  # v4, and generateObject in v6
VERCEL_OUTPUT_TOKENS = "ai.usage.outputTokens"  # v5+; reasoning included
VERCEL_COMPLETION_TOKENS = "ai.usage.completionTokens"  # v4, and generateObject in v6
VERCEL_TOTAL_TOKENS = "ai.usage.totalTokens"
VERCEL_CACHE_READ_TOKENS = "ai.usage.inputTokenDetails.cacheReadTokens"  # v6
VERCEL_CACHED_INPUT_TOKENS = "ai.usage.cachedInputTokens"  # v5 (still sent by v6)
VERCEL_CACHE_WRITE_TOKENS = "ai.usage.inputTokenDetails.cacheWriteTokens"  # v6
VERCEL_REASONING_TOKENS = "ai.usage.outputTokenDetails.reasoningTokens"  # v6
VERCEL_REASONING_TOKENS_OLD = "ai.usage.reasoningTokens"  # v5 (still sent by v6)

# --- Pydantic AI (its own OTel GenAI output: the provider's usage details as gen_ai.usage.details.*) ---
PYDANTIC_AI_REASONING_TOKENS = "gen_ai.usage.details.reasoning_tokens"
PYDANTIC_AI_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"  # seconds, on a streamed call
PYDANTIC_AI_OPERATION_COST = "operation.cost"  # USD, its genai-prices price of the call
PYDANTIC_AI_ALL_MESSAGES = "pydantic_ai.all_messages"  # the agent run span: the whole conversation (JSON)
PYDANTIC_AI_FINAL_RESULT = "final_result"  # the agent run span: the run's output
PYDANTIC_AI_REQUEST_PARAMETERS = "model_request_parameters"  # model spans: tool schemas, instruction text (JSON)
