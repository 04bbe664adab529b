"""The Vercel AI SDK's `ai.*` dialect on designed spans (docs/normalization.md; what the real SDK
sends is in test_instrumentations_vercel_ai.py and docs/instrumentations.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from spanlake.collector.normalize import normalize_reference
from tests.collector.normalize_helpers import decoded_row, norm


@pytest.mark.parametrize(
    ("operation_id", "category", "operation"),
    [
        ("ai.generateText.doGenerate", "llm", "chat"),
        ("ai.streamText.doStream", "llm", "chat"),
        ("ai.generateObject.doGenerate", "llm", "chat"),
        ("ai.streamObject.doStream", "llm", "chat"),
        ("ai.embed.doEmbed", "embedding", "embeddings"),
        ("ai.embedMany.doEmbed", "embedding", "embeddings"),
        ("ai.rerank.doRerank", "rerank", "rerank"),
        ("ai.toolCall", "tool", "execute_tool"),
        ("ai.generateText", "chain", None),
        ("ai.streamText", "chain", None),
        ("ai.generateObject", "chain", None),
        ("ai.streamObject", "chain", None),
        ("ai.embed", "chain", None),
        ("ai.embedMany", "chain", None),
        ("ai.rerank", "chain", None),
        ("ai.somethingNew", "other", None),
    ],
)
def test_operation_id_decides_category(operation_id: str, category: str, operation: str | None) -> None:
    row = norm({"ai.operationId": operation_id, "operation.name": f"{operation_id} my-function"})
    assert (row["category"], row["operation"]) == (category, operation)


def test_operation_name_alone_decides_nothing() -> None:
    # operation.name carries the telemetry functionId; only ai.operationId is read.
    assert norm({"operation.name": "ai.generateText.doGenerate"})["category"] == "other"


def test_other_dialects_win_over_the_operation_id() -> None:
    # OpenInference's Vercel span processor adds its kinds to the SDK's spans; they come first.
    attrs = {"ai.operationId": "ai.generateText", "openinference.span.kind": "LLM"}
    assert (norm(attrs)["category"], norm(attrs)["operation"]) == ("llm", "chat")
    attrs = {"ai.operationId": "ai.generateText.doGenerate", "gen_ai.operation.name": "text_completion"}
    assert (norm(attrs)["category"], norm(attrs)["operation"]) == ("llm", "text_completion")
    assert norm({"ai.operationId": "ai.toolCall", "spanlake.task.name": "t"})["category"] == "task"


@pytest.mark.parametrize(
    ("provider_id", "provider"),
    [
        ("openai.chat", "openai"),
        ("openai.responses", "openai"),
        ("OpenAI.Chat", "openai"),
        ("anthropic.messages", "anthropic"),
        ("azure.chat", "azure.ai.openai"),
        ("google.generative-ai", "gcp.gemini"),
        ("google.vertex.chat", "gcp.vertex_ai"),
        ("vertex.anthropic.messages", "gcp.vertex_ai"),
        ("amazon-bedrock", "aws.bedrock"),
        ("xai.chat", "x_ai"),
        ("mistral.chat", "mistral_ai"),
        ("togetherai.chat", "together_ai"),
        ("groq.chat", "groq"),
        ("my-gateway.chat", "my-gateway"),  # createOpenAICompatible({ name: "my-gateway" })
    ],
)
def test_vercel_provider_ids(provider_id: str, provider: str) -> None:
    call = {"gen_ai.system": provider_id, "ai.model.provider": provider_id}
    assert norm(call)["provider"] == provider
    assert norm({"ai.model.provider": provider_id})["provider"] == provider  # the chain around the calls


def test_only_the_span_s_own_provider_id_is_mapped() -> None:
    # A value another dialect sent (not the SDK's id) keeps the ordinary alias rule.
    assert norm({"gen_ai.provider.name": "aws.bedrock", "ai.model.provider": "amazon-bedrock"})["provider"] == (
        "aws.bedrock"
    )
    assert norm({"gen_ai.provider.name": "openai.chat"})["provider"] == "openai.chat"
    assert norm({"gen_ai.system": "gemini", "ai.model.provider": "gemini"})["provider"] == "gcp.gemini"


def test_usage_of_ai_sdk_6() -> None:
    """A call span as AI SDK 6 sends it (OTel keys and its own, which agree)."""
    attrs: dict[str, Any] = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.provider": "openai.chat",
        "ai.model.id": "gpt-5-nano",
        "gen_ai.system": "openai.chat",
        "gen_ai.request.model": "gpt-5-nano",
        "gen_ai.usage.input_tokens": 9,
        "gen_ai.usage.output_tokens": 10,
        "ai.usage.inputTokens": 9,
        "ai.usage.inputTokenDetails.noCacheTokens": 5,
        "ai.usage.inputTokenDetails.cacheReadTokens": 4,
        "ai.usage.cachedInputTokens": 4,
        "ai.usage.outputTokens": 10,
        "ai.usage.outputTokenDetails.textTokens": 8,
        "ai.usage.outputTokenDetails.reasoningTokens": 2,
        "ai.usage.reasoningTokens": 2,
        "ai.usage.totalTokens": 19,
        "gen_ai.response.finish_reasons": ["stop"],
        "ai.response.finishReason": "stop",
    }
    row = norm(attrs)
    got = {
        k: row[k] for k in ("input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens", "total_tokens")
    }
    assert got == {
        "input_tokens": 9,
        "cache_read_tokens": 4,
        "output_tokens": 10,
        "reasoning_tokens": 2,
        "total_tokens": 19,
    }
    assert (row["provider"], row["request_model"], row["finish_reasons"]) == ("openai", "gpt-5-nano", ["stop"])
    assert row == normalize_reference(attrs, [], 1_000, "UNSET")


def test_usage_of_ai_sdk_4_and_5() -> None:
    v4 = norm({"ai.operationId": "ai.generateText", "ai.usage.promptTokens": 12, "ai.usage.completionTokens": 3})
    assert (v4["category"], v4["input_tokens"], v4["output_tokens"], v4["total_tokens"]) == ("chain", 12, 3, 15)
    v5 = norm({"ai.usage.inputTokens": 20, "ai.usage.cachedInputTokens": 8, "ai.usage.reasoningTokens": 1})
    assert (v5["input_tokens"], v5["cache_read_tokens"], v5["reasoning_tokens"]) == (20, 8, 1)
    write = norm({"ai.usage.inputTokens": 20, "ai.usage.inputTokenDetails.cacheWriteTokens": 6})
    assert write["cache_write_tokens"] == 6


def test_first_chunk_event_is_the_time_to_first_token() -> None:
    events = [{"time_unix_nano": 1_000 + 250_000_000, "name": "ai.stream.firstChunk", "attributes": {}}]
    assert norm({"ai.operationId": "ai.streamText.doStream"}, events)["time_to_first_token_ms"] == 250.0


def test_prompts_and_responses_are_content() -> None:
    row = decoded_row(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.prompt.messages": '[{"role":"user","content":[{"type":"text","text":"hi"}]}]',
            "ai.prompt.tools": ['{"type":"function","name":"w"}'],
            "ai.prompt.toolChoice": '{"type":"auto"}',
            "ai.response.text": "hello",
            "ai.response.toolCalls": "[]",
            "ai.toolCall.args": "{}",
            "ai.toolCall.result": '"ok"',
            "ai.response.providerMetadata": "{}",
        }
    )
    assert set(json.loads(row["content"])) == {
        "ai.prompt.messages",
        "ai.prompt.tools",
        "ai.response.text",
        "ai.response.toolCalls",
        "ai.toolCall.args",
        "ai.toolCall.result",
    }
    assert set(json.loads(row["attributes"])) == {
        "ai.operationId",
        "ai.prompt.toolChoice",
        "ai.response.providerMetadata",
    }
