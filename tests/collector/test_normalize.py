"""Normalization, tested against the conventions (shared/spec), one dialect at a time.

Every expected value below comes from the spec tables (conventions.md, spanlake-attributes.md)
or from docs/normalization.md, worked out here; none was copied from running the code.
OpenLLMetry, spanlake's own keys and end-to-end decoding are in test_normalize_openllmetry.py,
precedence and disagreements in test_normalize_precedence.py, properties in
test_normalize_properties.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from spanlake.collector.content import split_content
from tests.collector.normalize_helpers import decoded_row, norm, set_columns

# --- OTel GenAI, current (core v1.41.1 + dev repo) ---------------------------------------


def test_otel_inference_span_openai_example() -> None:
    # OpenAI: cached_tokens come from input_tokens_details, reasoning from output_tokens_details,
    # and both are already counted inside input/output (§1.3), so total = input + output.
    inp, out, cached, reasoning = 1500, 800, 1024, 300
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.model": "gpt-4-0613",
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.cache_read.input_tokens": cached,
        "gen_ai.usage.reasoning.output_tokens": reasoning,
        "gen_ai.response.finish_reasons": ["stop", "length"],
        "gen_ai.response.time_to_first_chunk": 0.25,  # seconds
        "gen_ai.conversation.id": "conv_5j66",
        "gen_ai.request.stream": True,
        "server.address": "api.openai.com",
    }
    assert set_columns(attrs) == {
        "category": "llm",
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-4",
        "response_model": "gpt-4-0613",
        "input_tokens": 1500,
        "output_tokens": 800,
        "cache_read_tokens": 1024,
        "reasoning_tokens": 300,
        "total_tokens": inp + out,
        "finish_reasons": ["stop", "length"],
        "time_to_first_token_ms": 250.0,
        "session_id": "conv_5j66",
    }


def test_anthropic_cache_tokens_are_not_added_twice() -> None:
    # Anthropic rule (§1.3): gen_ai.usage.input_tokens = input + cache_read + cache_creation.
    api_input, cache_read, cache_creation, output = 20, 1000, 200, 50
    input_tokens = api_input + cache_read + cache_creation
    row = norm(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output,
            "gen_ai.usage.cache_read.input_tokens": cache_read,
            "gen_ai.usage.cache_creation.input_tokens": cache_creation,
        }
    )
    assert row["input_tokens"] == 1220
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (1000, 200)
    assert row["cache_read_tokens"] + row["cache_write_tokens"] <= row["input_tokens"]
    assert row["total_tokens"] == 1270


ONE_HOUR = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
FIVE_MIN = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"


@pytest.mark.parametrize(
    ("attrs", "want"),
    [
        ({"gen_ai.usage.cache_write.input_tokens": 7, ONE_HOUR: 3, FIVE_MIN: 4}, (7, 3)),  # the client's own span
        ({"gen_ai.usage.cache_write.input_tokens": 7, ONE_HOUR: 0, FIVE_MIN: 7}, (7, 0)),  # all 5-minute
        ({"llm.token_count.prompt_details.cache_write": 7, ONE_HOUR: "7"}, (7, 7)),  # any dialect's count
        ({"gen_ai.usage.cache_write.input_tokens": 4, ONE_HOUR: 9}, (4, 4)),  # never more than the writes
        ({ONE_HOUR: 3, FIVE_MIN: 4}, (None, None)),  # no count: a share of nothing known, none made up
        ({"gen_ai.usage.cache_write.input_tokens": 7, FIVE_MIN: 7}, (7, None)),  # not sent
        ({"gen_ai.usage.cache_write.input_tokens": 7, ONE_HOUR: -1}, (7, None)),  # not a count
    ],
)
def test_one_hour_cache_writes_are_a_part_of_the_cache_writes(attrs: dict[str, Any], want: tuple[Any, Any]) -> None:
    row = decoded_row({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 20, **attrs})
    assert (row["cache_write_tokens"], row["cache_write_1h_tokens"]) == want
    assert (norm(attrs)["cache_write_tokens"], norm(attrs)["cache_write_1h_tokens"]) == want


def test_dev_repo_cache_write_name() -> None:
    # changelog.d/440.breaking.md: cache_creation.input_tokens renamed cache_write.input_tokens.
    assert norm({"gen_ai.usage.cache_write.input_tokens": 64})["cache_write_tokens"] == 64


def test_zero_is_a_count_not_a_missing_value() -> None:
    row = norm({"gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0, "llm.token_count.prompt": 9})
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("operation", "category"),
    [
        # v1.41.1 gen_ai.operation.name values (§1.2)
        ("chat", "llm"),
        ("generate_content", "llm"),
        ("text_completion", "llm"),
        ("embeddings", "embedding"),
        ("retrieval", "retrieval"),
        ("create_agent", "agent"),
        ("invoke_agent", "agent"),
        ("execute_tool", "tool"),
        ("invoke_workflow", "chain"),
        # dev repo (§1.9): plan is an agent step, search_memory reads a store
        ("plan", "agent"),
        ("search_memory", "retrieval"),
        # OpenLLMetry's operation names (§3.2)
        ("llm_request", "llm"),
        ("vector_db_retrieve", "retrieval"),
        ("execute_task", "chain"),
        # open enum: a custom value is kept but says nothing about the category
        ("my_custom_op", "other"),
    ],
)
def test_operation_decides_category(operation: str, category: str) -> None:
    assert set_columns({"gen_ai.operation.name": operation}) == {"category": category, "operation": operation}


@pytest.mark.parametrize(
    ("call_type", "operation", "category"),
    [
        ("acompletion", "chat", "llm"),
        ("embedding", "embeddings", "embedding"),
        ("aembedding", "embeddings", "embedding"),
        ("atext_completion", "text_completion", "llm"),
    ],
)
def test_litellm_call_types_are_otel_operations(call_type: str, operation: str, category: str) -> None:
    """LiteLLM's own callback sends its call type as the operation (only `completion` as `chat`)."""
    assert set_columns({"gen_ai.operation.name": call_type}) == {"category": category, "operation": operation}


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ('["stop"]', ["stop"]),  # LiteLLM's own callback: the list as a JSON string
        ('["stop", "length"]', ["stop", "length"]),
        ("[]", []),
        ("stop", ["stop"]),
        ("[not json", ["[not json"]),
        ("[1, 2]", ["[1, 2]"]),  # not a list of strings: kept as sent
        (["tool_calls"], ["tool_calls"]),
    ],
)
def test_finish_reasons_as_a_json_string(sent: object, stored: list[str]) -> None:
    assert norm({"gen_ai.response.finish_reasons": sent})["finish_reasons"] == stored


def test_litellm_raw_request_fields_are_content() -> None:
    """LiteLLM's `raw_gen_ai_request` span: llm.<provider>.<field> of the raw request and response."""
    attrs = {
        "llm.openai.messages": "[{'role': 'user', 'content': 'hi'}]",
        "llm.openai.choices": "[{'message': {'content': 'hello'}}]",
        "llm.anthropic.system": "be terse",
        "llm.anthropic.content": "[{'type': 'text', 'text': 'hello'}]",
        "llm.openai.model": "gpt-4o-mini-2025-01-01",
        "llm.openai.usage": "{'prompt_tokens': 1}",
        "llm.token_count.prompt": 1,
    }
    facts, content = split_content(attrs)
    assert set(content) == {
        "llm.openai.messages",
        "llm.openai.choices",
        "llm.anthropic.system",
        "llm.anthropic.content",
    }
    assert set(facts) == {"llm.openai.model", "llm.openai.usage", "llm.token_count.prompt"}


WELL_KNOWN_PROVIDERS = [
    "openai", "anthropic", "cohere", "deepseek", "groq", "perplexity", "x_ai", "mistral_ai", "ibm.watsonx.ai",
    "aws.bedrock", "azure.ai.inference", "azure.ai.openai", "gcp.gen_ai", "gcp.vertex_ai", "gcp.gemini", "moonshot_ai",
]  # fmt: skip


@pytest.mark.parametrize("provider", WELL_KNOWN_PROVIDERS)
def test_well_known_provider_values_are_kept(provider: str) -> None:
    assert norm({"gen_ai.provider.name": provider})["provider"] == provider
    assert norm({"gen_ai.provider.name": provider.upper()})["provider"] == provider


def test_execute_tool_span() -> None:
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_VSPy",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.arguments": '{"location": "Paris"}',
        "gen_ai.tool.call.result": "rainy, 57°F",
    }
    assert set_columns(attrs) == {"category": "tool", "operation": "execute_tool", "tool_name": "get_weather"}
    facts, content = split_content(attrs)
    assert set(content) == {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
    assert set(facts) == {"gen_ai.operation.name", "gen_ai.tool.name", "gen_ai.tool.call.id", "gen_ai.tool.type"}


def test_otel_content_attributes_go_to_content() -> None:
    # The Opt-In attributes of §1.3/§1.5/§1.8/§1.9 are message content.
    content_keys = {
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"Weather in Paris?"}]}]',
        "gen_ai.output.messages": [{"role": "assistant", "parts": [], "finish_reason": "stop"}],
        "gen_ai.system_instructions": '[{"type":"text","content":"Be brief."}]',
        "gen_ai.tool.definitions": '[{"type":"function","name":"get_weather"}]',
        "gen_ai.retrieval.query.text": "refund policy",
        "gen_ai.retrieval.documents": '[{"id":"doc1","score":0.9}]',
        "gen_ai.prompt.variable.customer": "Ada",
        "gen_ai.memory.query.text": "what did Ada order?",
        "gen_ai.memory.records": "[]",
    }
    fact_keys = {
        "gen_ai.data_source.id": "kb",
        "gen_ai.prompt.name": "ticket_reply",  # not OpenLLMetry's gen_ai.prompt.N.* content
        "gen_ai.prompt.version": "3",
        "gen_ai.request.model": "gpt-4",
        "gen_ai.response.finish_reasons": ["stop"],
    }
    facts, content = split_content({**content_keys, **fact_keys})
    assert (facts, content) == (fact_keys, content_keys)


def test_retrieval_span() -> None:
    attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb", "gen_ai.request.top_k": 5}
    assert set_columns(attrs) == {"category": "retrieval", "operation": "retrieval"}


def test_error_type_attribute_then_exception_event() -> None:
    exc = [{"time_unix_nano": 2_000, "name": "exception", "attributes": {"exception.type": "RateLimitError"}}]
    assert norm({"error.type": "timeout"}, exc, "ERROR")["error_type"] == "timeout"
    assert norm({}, exc, "ERROR")["error_type"] == "RateLimitError"
    assert norm({}, exc, "UNSET")["error_type"] is None  # an exception event on a span that did not fail


# --- OTel GenAI, deprecated names (§1.4) --------------------------------------------------


def test_deprecated_otel_names() -> None:
    attrs = {"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5}
    assert set_columns(attrs) == {
        "category": "other",
        "provider": "openai",
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
    }


@pytest.mark.parametrize(
    ("deprecated", "current"),
    [
        ("vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini"),
        ("az.ai.inference", "azure.ai.inference"),
        ("az.ai.openai", "azure.ai.openai"),
        ("xai", "x_ai"),
    ],
)
def test_deprecated_gen_ai_system_values_map_to_provider_names(deprecated: str, current: str) -> None:
    assert norm({"gen_ai.system": deprecated})["provider"] == current


def test_pydantic_ai_conversation_and_request_parameters_are_content() -> None:
    # Pydantic AI 2.68 (tests/collector/test_instrumentations_pydantic_ai.py): its agent run span
    # carries the whole conversation and the output, its model spans the instructions' text.
    attrs = {
        "pydantic_ai.all_messages": '[{"role":"user","parts":[{"type":"text","content":"Hi"}]}]',
        "final_result": "Hello!",
        "model_request_parameters": '{"function_tools":[],"instruction_parts":[{"content":"Be brief."}]}',
        "gen_ai.agent.name": "assistant",
        "gen_ai.aggregated_usage.input_tokens": 9,
        "logfire.json_schema": '{"type":"object"}',
    }
    facts, content = split_content(attrs)
    assert set(content) == {"pydantic_ai.all_messages", "final_result", "model_request_parameters"}
    assert set(facts) == {"gen_ai.agent.name", "gen_ai.aggregated_usage.input_tokens", "logfire.json_schema"}


def test_deprecated_prompt_and_completion_strings_are_content() -> None:
    facts, content = split_content({"gen_ai.prompt": "Hi", "gen_ai.completion": "Hello!", "gen_ai.system": "openai"})
    assert (set(facts), set(content)) == ({"gen_ai.system"}, {"gen_ai.prompt", "gen_ai.completion"})


# --- OpenInference (Part 2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "category", "operation"),
    [
        ("LLM", "llm", "chat"),
        ("EMBEDDING", "embedding", "embeddings"),
        ("CHAIN", "chain", None),
        ("RETRIEVER", "retrieval", "retrieval"),
        ("RERANKER", "rerank", None),
        ("TOOL", "tool", "execute_tool"),
        ("AGENT", "agent", "invoke_agent"),
        ("GUARDRAIL", "guardrail", None),
        ("EVALUATOR", "guardrail", None),
        ("PROMPT", "chain", None),
        ("UNKNOWN", "other", None),
    ],
)
def test_openinference_span_kinds(kind: str, category: str, operation: str | None) -> None:
    row = norm({"openinference.span.kind": kind})
    assert (row["category"], row["operation"]) == (category, operation)


def test_openinference_legacy_completions_api_is_text_completion() -> None:
    row = norm({"openinference.span.kind": "LLM", "llm.prompts.0.prompt.text": "Once upon"})
    assert (row["category"], row["operation"]) == ("llm", "text_completion")


def test_openinference_llm_span() -> None:
    prompt, completion, total = 500, 120, 620
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-2024-08-06",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": completion,
        "llm.token_count.total": total,
        "llm.token_count.prompt_details.cache_read": 256,
        "llm.token_count.prompt_details.cache_write": 0,
        "llm.token_count.completion_details.reasoning": 64,
        "llm.cost.total": 0.0042,
        "llm.finish_reason": "stop",
        "llm.prompt_template.version": "v2",
        "session.id": "sess-1",
        "user.id": "user-7",
    }
    assert set_columns(attrs) == {
        "category": "llm",
        "operation": "chat",
        "provider": "openai",
        # llm.model_name is the response model when known, else the requested one: without
        # llm.request.model_name (set only when they differ) it is both.
        "request_model": "gpt-4o-2024-08-06",
        "response_model": "gpt-4o-2024-08-06",
        "input_tokens": 500,
        "output_tokens": 120,
        "total_tokens": 620,
        "cache_read_tokens": 256,
        "cache_write_tokens": 0,
        "reasoning_tokens": 64,
        "reported_cost": 0.0042,
        "finish_reasons": ["stop"],
        "prompt_version": "v2",
        "session_id": "sess-1",
        "user_id": "user-7",
    }


def test_openinference_request_and_response_model_names() -> None:
    row = norm(
        {
            "llm.model_name": "gpt-4o-2024-08-06",
            "llm.request.model_name": "gpt-4o",
            "llm.response.model_name": "gpt-4o-2024-08-06",
        }
    )
    assert (row["request_model"], row["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")


def test_openinference_embedding_and_reranker_models() -> None:
    assert norm({"embedding.model_name": "text-embedding-3-small"})["request_model"] == "text-embedding-3-small"
    assert norm({"reranker.model_name": "rerank-v3.5"})["request_model"] == "rerank-v3.5"


@pytest.mark.parametrize(
    ("value", "provider"),
    [
        # llm.system values (§2.2) not spelled the OTel way
        ("vertexai", "gcp.vertex_ai"),
        ("mistralai", "mistral_ai"),
        ("xai", "x_ai"),
        ("amazon", "aws.bedrock"),
        # llm.provider values (§2.2)
        ("google", "gcp.gen_ai"),
        ("aws", "aws.bedrock"),
        ("azure", "azure.ai.openai"),
        ("together", "together_ai"),
        ("moonshot", "moonshot_ai"),
        # already OTel spellings, or with no OTel equivalent: kept
        ("anthropic", "anthropic"),
        ("deepseek", "deepseek"),
        ("fireworks", "fireworks"),
        ("ollama", "ollama"),
    ],
)
def test_openinference_provider_aliases(value: str, provider: str) -> None:
    assert norm({"llm.provider": value})["provider"] == provider
    assert norm({"llm.system": value})["provider"] == provider


def test_openinference_flattened_content_and_facts() -> None:
    content = {
        "input.value": '{"question": "refund?"}',
        "output.value": "Refunds take 5 days.",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "refund?",
        "llm.input_messages.1.message.contents.0.message_content.image.image.url": "https://x/img.png",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"id": 1}',
        "llm.prompts.0.prompt.text": "Once upon",
        "llm.choices.0.completion.text": "a time",
        "llm.tools.0.tool.json_schema": '{"name": "lookup"}',
        "llm.prompt_template.template": "Answer {question}",
        "llm.prompt_template.variables": '{"question": "refund?"}',
        "llm.function_call": '{"name": "lookup", "arguments": "{}"}',
        "retrieval.documents.0.document.content": "Refund policy ...",
        "retrieval.documents.0.document.id": "doc-1",
        "reranker.query": "refund",
        "reranker.input_documents.0.document.content": "A",
        "reranker.output_documents.0.document.score": 0.7,
        "embedding.embeddings.0.embedding.text": "hello",
        "embedding.embeddings.0.embedding.vector": [0.1, 0.2],
        # the same lists sent unflattened, as one attribute
        "llm.input_messages": '[{"message.role": "user"}]',
        "retrieval.documents": [{"document.id": "d"}],
    }
    facts = {
        "openinference.span.kind": "LLM",
        "llm.invocation_parameters": '{"temperature": 0}',
        "input.mime_type": "application/json",
        "metadata": '{"k": "v"}',
        "tag.tags": ["a"],
        "session.id": "s",
    }
    assert split_content({**content, **facts}) == (facts, content)


def test_openinference_cost_as_string_and_guardrail_span() -> None:
    assert norm({"llm.cost.total": "0.5"})["reported_cost"] == 0.5
    row = norm({"openinference.span.kind": "GUARDRAIL"})
    assert (row["category"], row["validation_name"]) == ("guardrail", None)


def test_large_string_under_any_key_is_content() -> None:
    small, big, wide = "x" * 8192, "x" * 8193, "é" * 4097  # é is 2 bytes in UTF-8: 8194 bytes
    facts, content = split_content({"a": small, "b": big, "c": wide, "d": [small, small]})
    assert (set(facts), set(content)) == ({"a", "d"}, {"b", "c"})
