"""Who wins when dialects disagree on one span (docs/normalization.md, "Disagreements").

The rule: spanlake's own keys, then current OTel GenAI names (dev-repo names before v1.41.1
names), then deprecated OTel names, then OpenInference, then OpenLLMetry, then the Vercel AI
SDK's `ai.*` keys (a newer SDK version's before an older one's). The ladders below
restate that rule key by key from the spec; they are not read from collector/normalize/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from spanlake.collector import normalize as N
from spanlake.sdk import attributes as A
from tests.collector.normalize_helpers import norm

DOC = Path(__file__).resolve().parents[2] / "docs" / "normalization.md"

INT_LADDERS: dict[str, list[str]] = {
    "input_tokens": [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "ai.usage.inputTokens",
        "ai.usage.promptTokens",
    ],
    "output_tokens": [
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
    ],
    "cache_read_tokens": [
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_read_input_tokens",
        "ai.usage.inputTokenDetails.cacheReadTokens",
        "ai.usage.cachedInputTokens",
    ],
    "cache_write_tokens": [
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_creation_input_tokens",
        "ai.usage.inputTokenDetails.cacheWriteTokens",
    ],
    "reasoning_tokens": [
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
        "ai.usage.outputTokenDetails.reasoningTokens",
        "ai.usage.reasoningTokens",
        "gen_ai.usage.details.reasoning_tokens",  # Pydantic AI
    ],
    "total_tokens": [
        "llm.token_count.total",
        "gen_ai.usage.total_tokens",
        "llm.usage.total_tokens",
        "ai.usage.totalTokens",
    ],
}
STR_LADDERS: dict[str, list[str]] = {
    "request_model": [
        "gen_ai.request.model",
        "llm.request.model_name",
        "llm.model_name",
        "embedding.model_name",
        "reranker.model_name",
        "ai.model.id",
    ],
    "response_model": [
        "gen_ai.response.model",
        "llm.response.model_name",
        "llm.model_name",
        "embedding.model_name",
        "ai.response.model",
    ],
    "provider": ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"],
    "session_id": ["session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id"],
    "user_id": ["user.id", "traceloop.association.properties.user_id"],
    "prompt_name": ["gen_ai.prompt.name", "traceloop.prompt.key"],
    "prompt_version": ["gen_ai.prompt.version", "llm.prompt_template.version", "traceloop.prompt.version"],
    "tool_name": ["gen_ai.tool.name", "tool.name", "ai.toolCall.name"],
    "task_name": ["spanlake.task.name", "gen_ai.task.name"],
}
FINISH_LADDER = [
    "gen_ai.response.finish_reasons",
    "llm.finish_reason",
    "gen_ai.response.finish_reason",
    "llm.response.finish_reason",
    "anthropic.message.stop_reason",  # the anthropic client 2.x's own span
    "ai.response.finishReason",  # the Vercel AI SDK
]


def ladder_cases(ladders: dict[str, list[str]]) -> list[tuple[str, list[str], int]]:
    """(column, keys, i): keys[i:] all sent with different values, keys[i] must win."""
    return [(col, keys, i) for col, keys in ladders.items() for i in range(len(keys))]


@pytest.mark.parametrize(("column", "keys", "i"), ladder_cases(INT_LADDERS))
def test_token_precedence(column: str, keys: list[str], i: int) -> None:
    attrs = {k: 100 + j for j, k in enumerate(keys) if j >= i}
    assert norm(attrs)[column] == 100 + i


@pytest.mark.parametrize(("column", "keys", "i"), ladder_cases(STR_LADDERS))
def test_string_precedence(column: str, keys: list[str], i: int) -> None:
    attrs = {k: f"v{j}" for j, k in enumerate(keys) if j >= i}
    assert norm(attrs)[column] == f"v{i}"


def test_time_to_first_chunk_and_reported_cost_precedence() -> None:
    # Seconds to first chunk: OTel's span attribute, then Pydantic AI's (named after OTel's metric).
    both = {"gen_ai.response.time_to_first_chunk": 0.25, "gen_ai.client.operation.time_to_first_chunk": 0.5}
    assert norm(both)["time_to_first_token_ms"] == 250.0
    assert norm({**both, "gen_ai.response.time_to_first_chunk": "NaN"})["time_to_first_token_ms"] == 500.0
    # A cost the instrumentation computed: OpenInference's, then Pydantic AI's.
    costs = {"llm.cost.total": 0.25, "operation.cost": 0.5}
    assert (norm(costs)["reported_cost"], norm({**costs, "llm.cost.total": "n/a"})["reported_cost"]) == (0.25, 0.5)
    assert norm({"operation.cost": 4.27e-06})["reported_cost"] == 4.27e-06


def test_request_model_from_openinference_invocation_parameters() -> None:
    # openinference-instrumentation-openai puts the requested model only in the invocation
    # parameters; llm.model_name is the model that answered (docs/instrumentations.md).
    params = '{"model": "gpt-4o", "temperature": 0}'
    attrs = {"llm.invocation_parameters": params, "llm.model_name": "gpt-4o-2024-08-06"}
    assert (norm(attrs)["request_model"], norm(attrs)["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert norm({**attrs, "llm.request.model_name": "gpt-4o-mini"})["request_model"] == "gpt-4o-mini"
    assert norm({"llm.invocation_parameters": "{not json", "llm.model_name": "m"})["request_model"] == "m"


@pytest.mark.parametrize("i", range(len(FINISH_LADDER)))
def test_finish_reason_precedence(i: int) -> None:
    attrs: dict[str, Any] = {k: f"r{j}" for j, k in enumerate(FINISH_LADDER) if j >= i}
    if i == 0:
        attrs[FINISH_LADDER[0]] = ["r0", "length"]
    assert norm(attrs)["finish_reasons"] == (["r0", "length"] if i == 0 else [f"r{i}"])


# Category: each marker beats every marker below it.
CATEGORY_LADDER: list[tuple[dict[str, Any], str]] = [
    ({"spanlake.span.category": "rerank"}, "rerank"),
    ({"spanlake.task.name": "answer_ticket"}, "task"),
    ({"gen_ai.task.name": "classify"}, "task"),
    ({"traceloop.span.kind": "workflow", "traceloop.entity.name": "wf"}, "task"),
    ({"spanlake.validation.name": "no_pii"}, "guardrail"),
    ({"gen_ai.operation.name": "execute_tool"}, "tool"),
    ({"openinference.span.kind": "AGENT"}, "agent"),
    ({"llm.request.type": "embedding"}, "embedding"),
    ({"ai.operationId": "ai.toolCall"}, "tool"),
    ({"db.system": "qdrant"}, "retrieval"),
    ({}, "other"),
]


@pytest.mark.parametrize("i", range(len(CATEGORY_LADDER)))
def test_category_decision_order(i: int) -> None:
    attrs: dict[str, Any] = {}
    for markers, _ in CATEGORY_LADDER[i:]:
        attrs.update(markers)
    assert norm(attrs)["category"] == CATEGORY_LADDER[i][1]


def test_openinference_kind_beats_traceloop_kind_and_request_type() -> None:
    attrs = {"openinference.span.kind": "TOOL", "traceloop.span.kind": "agent", "llm.request.type": "chat"}
    assert (norm(attrs)["category"], norm(attrs)["operation"]) == ("tool", "execute_tool")
    assert norm({"traceloop.span.kind": "tool", "llm.request.type": "chat"})["category"] == "tool"


def test_sent_operation_beats_derived_ones() -> None:
    attrs = {"gen_ai.operation.name": "embeddings", "openinference.span.kind": "LLM", "llm.request.type": "chat"}
    assert (norm(attrs)["category"], norm(attrs)["operation"]) == ("embedding", "embeddings")


def test_cross_dialect_disagreement_on_one_span() -> None:
    # An app instrumented twice (OTel GenAI + OpenInference + OpenLLMetry) on one span.
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.system": "openai",
        "llm.provider": "azure",
        "gen_ai.request.model": "gpt-4o",
        "llm.model_name": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1000,
        "llm.token_count.prompt": 990,
        "gen_ai.usage.output_tokens": 200,
        "llm.token_count.completion": 201,
        "gen_ai.usage.cache_read.input_tokens": 512,
        "gen_ai.usage.cache_read_input_tokens": 500,
        "gen_ai.conversation.id": "conv-1",
        "traceloop.association.properties.session_id": "sess-1",
        "spanlake.task.outcome": "success",
        "gen_ai.task.status": "failure",
    }
    row = norm(attrs)
    assert row["provider"] == "azure.ai.openai"
    # gen_ai.response.model is absent, so llm.model_name (the effective model) answers for it.
    assert (row["request_model"], row["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (1000, 200, 512)
    assert row["total_tokens"] == 1000 + 200  # from the winning counts, not mixed
    assert (row["session_id"], row["task_outcome"]) == ("conv-1", "success")


def test_unusable_value_falls_through_to_the_next_key() -> None:
    row = norm(
        {
            "gen_ai.usage.input_tokens": "n/a",
            "gen_ai.usage.prompt_tokens": -5,
            "llm.token_count.prompt": 90,
            "gen_ai.usage.output_tokens": True,  # a bool is not a count
            "llm.token_count.completion": 10.0,  # an integral double is
            "spanlake.validation.passed": "yes",
        }
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (90, 10, 100)
    assert row["validation_passed"] is None


def test_total_as_sent_wins_over_the_sum() -> None:
    assert (
        norm({"llm.token_count.prompt": 5, "llm.token_count.completion": 6, "llm.token_count.total": 13})[
            "total_tokens"
        ]
        == 13
    )


def test_task_outcome_precedence() -> None:
    assert norm({"spanlake.task.outcome": "failure", "gen_ai.task.status": "success"})["task_outcome"] == "failure"
    assert norm({"spanlake.task.outcome": "bogus", "gen_ai.task.status": "success"})["task_outcome"] is None


def test_task_name_from_workflow_only_when_nothing_else_names_it() -> None:
    wf = {"traceloop.span.kind": "workflow", "traceloop.entity.name": "wf"}
    assert norm(wf)["task_name"] == "wf"
    assert norm({**wf, "gen_ai.task.name": "t"})["task_name"] == "t"
    assert norm({"traceloop.span.kind": "workflow"})["category"] == "chain"  # no name: nothing marks a task


# --- docs/normalization.md names every key collector/normalize/ reads ------------------


def normalize_key_tables() -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(N).items()
        if name.isupper() and isinstance(value, tuple | frozenset | dict) and not name.startswith("_")
    }


def test_doc_mentions_every_key_normalize_reads() -> None:
    doc = DOC.read_text()
    mentioned = set(re.findall(r"`([^`]+)`", doc))
    source = "".join(p.read_text() for p in sorted(Path(N.__file__).parent.glob("*.py")))  # the package
    read_directly = {getattr(A, c) for c in re.findall(r"\bA\.([A-Z_]+)", source)}  # A.KEY in the code
    missing = [f"A.*: {k}" for v in read_directly for k in (v if isinstance(v, tuple) else (v,)) if k not in mentioned]
    for name, table in normalize_key_tables().items():
        keys = list(table.items()) if isinstance(table, dict) else [(k, None) for k in table]
        for key, value in keys:
            for text in (key, value):
                if isinstance(text, str) and text not in mentioned:
                    missing.append(f"{name}: {text}")
                elif isinstance(text, tuple):
                    missing += [f"{name}: {t}" for t in text if isinstance(t, str) and t not in mentioned]
    assert not missing, "docs/normalization.md does not mention:\n" + "\n".join(missing)
