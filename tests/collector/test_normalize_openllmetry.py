"""Normalization of OpenLLMetry (old and new formats) and spanlake's own keys, and the same
rules end to end through decode_spans. Expected values come from conventions.md Part 3 and
spanlake-attributes.md, worked out here.
"""

from __future__ import annotations

import json

import pytest

from spanlake.collector.content import split_content
from spanlake.collector.decode import decode_spans
from tests.collector.normalize_helpers import decoded_row, norm, set_columns
from tests.factories import any_value, make_request, make_span

# --- OpenLLMetry, older flattened format (<= v0.54.0, §3.2) --------------------------------


def test_openllmetry_old_format_chat_span() -> None:
    prompt, completion = 20, 10
    attrs = {
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-3.5-turbo",
        "gen_ai.response.model": "gpt-3.5-turbo-0125",
        "gen_ai.usage.prompt_tokens": prompt,
        "gen_ai.usage.completion_tokens": completion,
        "llm.usage.total_tokens": prompt + completion,
        "gen_ai.usage.cache_read_input_tokens": 8,
        "gen_ai.usage.cache_creation_input_tokens": 4,
        "llm.usage.reasoning_tokens": 3,
        "llm.response.finish_reason": "stop",
        "llm.is_streaming": False,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Tell me a joke",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Why did ...",
        "gen_ai.completion.0.finish_reason": "stop",
        "gen_ai.completion.0.tool_calls.0.arguments": "{}",
        "llm.request.functions.0.name": "get_joke",
    }
    assert set_columns(attrs) == {
        "category": "llm",
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-3.5-turbo",
        "response_model": "gpt-3.5-turbo-0125",
        "input_tokens": 20,
        "output_tokens": 10,
        "total_tokens": 30,
        "cache_read_tokens": 8,
        "cache_write_tokens": 4,
        "reasoning_tokens": 3,
        "finish_reasons": ["stop"],
    }
    facts, content = split_content(attrs)
    assert set(content) == {
        k for k in attrs if k.startswith(("gen_ai.prompt.0", "gen_ai.completion.0", "llm.request.f"))
    }
    assert "gen_ai.usage.cache_read_input_tokens" in facts


@pytest.mark.parametrize(
    ("request_type", "category", "operation"),
    [
        ("chat", "llm", "chat"),
        ("completion", "llm", "text_completion"),
        ("embedding", "embedding", "embeddings"),
        ("rerank", "rerank", "rerank"),
        ("unknown", "other", None),
    ],
)
def test_llm_request_type(request_type: str, category: str, operation: str | None) -> None:
    row = norm({"llm.request.type": request_type})
    assert (row["category"], row["operation"]) == (category, operation)


def test_openllmetry_deprecated_azure_spelling() -> None:
    assert norm({"gen_ai.system": "az.ai.openai"})["provider"] == "azure.ai.openai"


# --- OpenLLMetry, current format (>= v0.55.0) ---------------------------------------------


def test_openllmetry_new_format_chat_span() -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "llm.request.type": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.total_tokens": 140,
        "gen_ai.usage.reasoning_tokens": 12,
        "gen_ai.response.finish_reason": "end_turn",
        "gen_ai.is_streaming": True,
        "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
        "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"hello"}]}]',
    }
    assert set_columns(attrs) == {
        "category": "llm",
        "operation": "chat",
        "provider": "anthropic",
        "request_model": "claude-sonnet-4",
        "input_tokens": 100,
        "output_tokens": 40,
        "total_tokens": 140,
        "reasoning_tokens": 12,
        "finish_reasons": ["end_turn"],
    }
    assert set(split_content(attrs)[1]) == {"gen_ai.input.messages", "gen_ai.output.messages"}


def test_traceloop_workflow_is_a_task() -> None:
    attrs = {
        "traceloop.span.kind": "workflow",
        "traceloop.entity.name": "joke_generator",
        "traceloop.workflow.name": "joke_generator",
        "traceloop.entity.input": '{"args": [], "kwargs": {"topic": "cats"}}',
        "traceloop.entity.output": '"Why did the cat ..."',
        "traceloop.association.properties.session_id": "sess-9",
        "traceloop.association.properties.user_id": "user-3",
        "gen_ai.task.status": "success",
    }
    assert set_columns(attrs) == {
        "category": "task",
        "task_name": "joke_generator",
        "task_outcome": "success",
        "session_id": "sess-9",
        "user_id": "user-3",
    }
    assert set(split_content(attrs)[1]) == {"traceloop.entity.input", "traceloop.entity.output"}


@pytest.mark.parametrize(("kind", "category"), [("task", "chain"), ("agent", "agent"), ("tool", "tool")])
def test_traceloop_spans_under_a_workflow_are_not_tasks(kind: str, category: str) -> None:
    # traceloop.workflow.name is propagated to every span underneath: it marks nothing.
    attrs = {"traceloop.span.kind": kind, "traceloop.entity.name": "step", "traceloop.workflow.name": "wf"}
    row = norm(attrs)
    assert (row["category"], row["task_name"]) == (category, None)
    assert row["tool_name"] == ("step" if kind == "tool" else None)


def test_openllmetry_task_extension_marks_a_task() -> None:
    attrs = {
        "gen_ai.operation.name": "execute_task",
        "gen_ai.task.name": "classify_email",
        "gen_ai.task.status": "failure",
        "gen_ai.task.input": '{"email": "..."}',
        "gen_ai.task.output": '{"label": null}',
    }
    assert set_columns(attrs) == {
        "category": "task",
        "operation": "execute_task",
        "task_name": "classify_email",
        "task_outcome": "failure",
    }
    assert set(split_content(attrs)[1]) == {"gen_ai.task.input", "gen_ai.task.output"}


def test_openllmetry_langchain_steps_are_not_tasks() -> None:
    """OpenLLMetry 0.62.4's LangChain instrumentation names every step of a chain or graph with
    `gen_ai.task.name` (each prompt, parser and LangGraph node; observed in
    tests/collector/test_instrumentations_langchain.py): a Traceloop `task` span is a step inside
    the workflow that is the task, so only spanlake's own key makes it one."""
    step = {
        "traceloop.workflow.name": "LangGraph",
        "traceloop.entity.path": "agent",
        "traceloop.span.kind": "task",
        "traceloop.entity.name": "call_model",
        "gen_ai.provider.name": "langgraph",
        "gen_ai.operation.name": "execute_task",
        "gen_ai.task.name": "call_model",
        "gen_ai.task.status": "success",
    }
    assert set_columns(step) == {
        "category": "chain",
        "operation": "execute_task",
        "provider": "langgraph",
        "task_outcome": "success",
    }
    assert set_columns({**step, "spanlake.task.name": "answer"})["category"] == "task"
    workflow = {
        "traceloop.workflow.name": "LangGraph",
        "traceloop.span.kind": "workflow",
        "traceloop.entity.name": "LangGraph",
        "gen_ai.operation.name": "invoke_agent",
    }
    row = norm(workflow)
    assert (row["category"], row["task_name"], row["operation"]) == ("task", "LangGraph", "invoke_agent")
    assert decoded_row(step)["category"] == "chain" and decoded_row(workflow)["task_name"] == "LangGraph"


def test_traceloop_prompt_management() -> None:
    attrs = {"traceloop.prompt.key": "joke", "traceloop.prompt.version": 4, "traceloop.prompt.template": "Tell {x}"}
    row = norm(attrs)
    assert (row["prompt_name"], row["prompt_version"]) == ("joke", "4")
    assert set(split_content(attrs)[1]) == {"traceloop.prompt.template"}


# --- spanlake's own keys (spanlake-attributes.md) ------------------------------------------


def test_spanlake_task_span() -> None:
    attrs = {
        "spanlake.task.name": "answer_ticket",
        "spanlake.task.outcome": "failure",
        "spanlake.task.outcome_reason": "reply failed schema validation",
    }
    assert set_columns(attrs) == {
        "category": "task",
        "task_name": "answer_ticket",
        "task_outcome": "failure",
        "task_outcome_reason": "reply failed schema validation",
    }


@pytest.mark.parametrize(("sent", "stored"), [("success", "success"), ("FAILURE", "failure"), ("maybe", None)])
def test_task_outcome_values(sent: str, stored: str | None) -> None:
    assert norm({"spanlake.task.outcome": sent})["task_outcome"] == stored


def test_spanlake_validation_span() -> None:
    attrs = {
        "spanlake.validation.name": "json_schema:TicketReply",
        "spanlake.validation.passed": False,
        "spanlake.validation.errors": ["'reply' is a required property"],
    }
    assert set_columns(attrs) == {
        "category": "guardrail",
        "validation_name": "json_schema:TicketReply",
        "validation_passed": False,
    }
    assert split_content(attrs) == (attrs, {})  # errors are small facts


def evaluation(label: str) -> dict:
    attrs = {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.label": label}
    return {"time_unix_nano": 2_000, "name": "gen_ai.evaluation.result", "attributes": attrs}


def test_evaluation_events_are_no_validation() -> None:
    # gen_ai.evaluation.result events become judge labels (evaluators.external), never a
    # validation: a fail among them must not decide the task's outcome
    assert norm({}, [evaluation("pass")])["validation_passed"] is None
    assert norm({}, [evaluation("pass"), evaluation("fail")])["validation_passed"] is None
    assert norm({"spanlake.validation.passed": True}, [evaluation("fail")])["validation_passed"] is True
    assert norm({"spanlake.validation.passed": False}, [evaluation("pass")])["validation_passed"] is False


def test_policy_fallback_escalation_are_kept_as_attributes() -> None:
    attrs = {
        "spanlake.policy.name": "no_pii",
        "spanlake.policy.decision": "redact",
        "spanlake.fallback.reason": "timeout",
        "spanlake.fallback.to": "gpt-4o",
        "spanlake.escalation.reason": "angry customer",
        "spanlake.escalation.to": "human",
    }
    assert set_columns(attrs) == {"category": "other"}
    assert split_content(attrs) == (attrs, {})


@pytest.mark.parametrize("category", ["llm", "embedding", "retrieval", "rerank", "tool", "agent", "chain", "other"])
def test_explicit_category_override(category: str) -> None:
    attrs = {"spanlake.span.category": category, "spanlake.task.name": "t", "gen_ai.operation.name": "chat"}
    assert norm(attrs)["category"] == category


def test_unknown_explicit_category_is_ignored() -> None:
    assert norm({"spanlake.span.category": "banana", "gen_ai.operation.name": "chat"})["category"] == "llm"


def test_empty_names_mark_nothing() -> None:
    row = norm({"spanlake.task.name": "", "spanlake.validation.name": "", "gen_ai.operation.name": ""})
    assert (row["category"], row["task_name"], row["validation_name"], row["operation"]) == ("other", None, None, None)


# --- end to end through decode_spans --------------------------------------------------------


def test_decode_openinference_span_splits_content_from_attributes() -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": 40,
        "llm.token_count.completion": 2,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Say hi",
        "llm.output_messages.0.message.content": "Hi",
    }
    row = decoded_row(attrs)
    assert (row["category"], row["request_model"], row["total_tokens"]) == ("llm", "gpt-4o-mini", 40 + 2)
    assert json.loads(row["attributes"]) == {k: v for k, v in attrs.items() if ".message." not in k}
    assert json.loads(row["content"]) == {k: v for k, v in attrs.items() if ".message." in k}


def test_decode_span_without_content_has_null_content() -> None:
    row = decoded_row({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3})
    assert row["content"] is None
    assert json.loads(row["attributes"]) == {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3}


def test_decode_openllmetry_workflow_trace() -> None:
    trace = b"\x01" * 16
    root = make_span(
        "joke_generator.workflow",
        trace_id=trace,
        span_id=b"\x02" * 8,
        attributes={"traceloop.span.kind": "workflow", "traceloop.entity.name": "joke_generator"},
    )
    llm = make_span(
        "openai.chat",
        trace_id=trace,
        parent_span_id=b"\x02" * 8,
        attributes={
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.usage.prompt_tokens": "12",  # a numeric string where an int belongs
            "gen_ai.usage.completion_tokens": 8,
            "traceloop.workflow.name": "joke_generator",
        },
    )
    (cols,) = decode_spans(make_request([root, llm]), ingested_at_ns=0).values()
    rows = {cols["name"][i]: {k: v[i] for k, v in cols.items()} for i in range(2)}
    workflow = rows["joke_generator.workflow"]
    assert (workflow["category"], workflow["task_name"]) == ("task", "joke_generator")
    chat = rows["openai.chat"]
    assert (chat["category"], chat["provider"], chat["task_name"]) == ("llm", "openai", None)
    assert (chat["input_tokens"], chat["output_tokens"], chat["total_tokens"]) == (12, 8, 20)


def test_decode_failed_span_with_exception_and_first_token_event() -> None:
    start = 1_700_000_000_000_000_000
    span = make_span(start_ns=start, status_code=2, attributes={"openinference.span.kind": "LLM"})
    span.events.add(time_unix_nano=start + 150_000_000, name="First Token Stream Event")
    exc = span.events.add(time_unix_nano=start + 900_000_000, name="exception")
    exc.attributes.add(key="exception.type", value=any_value("APIError"))
    (cols,) = decode_spans(make_request([span]), ingested_at_ns=0).values()
    assert cols["status_code"] == ["ERROR"]
    assert cols["error_type"] == ["APIError"]
    assert cols["time_to_first_token_ms"] == [150.0]  # 150_000_000 ns


# --- OpenLLMetry's Bedrock instrumentation: input without the cache --------------------------

BEDROCK_SCOPE = "opentelemetry.instrumentation.bedrock"
# As opentelemetry-instrumentation-bedrock 0.62.4 sends a Converse call (observed in
# tests/collector/test_instrumentations_bedrock.py): Bedrock's inputTokens (6, the uncached
# part), the cache apart (5 read, 5 written), total = input + output.
BEDROCK_USAGE = {
    "gen_ai.provider.name": "aws.bedrock",
    "gen_ai.operation.name": "chat",
    "gen_ai.usage.input_tokens": 6,
    "gen_ai.usage.output_tokens": 8,
    "gen_ai.usage.total_tokens": 14,
    "gen_ai.usage.cache_read.input_tokens": 5,
    "gen_ai.usage.cache_creation.input_tokens": 5,
}


def _tokens(row: dict[str, object]) -> tuple[object, ...]:
    return tuple(row[k] for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens"))


def test_openllmetry_bedrock_input_gets_the_cache_added_by_scope() -> None:
    """Only that scope's counts are corrected (6 + 5 + 5 = 16; total 14 + 10 = 24): the same
    attributes from any other scope are OTel's meaning already and stored as sent."""
    req = make_request([make_span(attributes=BEDROCK_USAGE)], scope=BEDROCK_SCOPE)
    (cols,) = decode_spans(req, ingested_at_ns=0).values()
    assert _tokens({k: v[0] for k, v in cols.items()}) == (16, 5, 5, 24)
    assert _tokens(decoded_row(BEDROCK_USAGE)) == (6, 5, 5, 14)  # scope "tests"
    assert _tokens(norm(BEDROCK_USAGE)) == (6, 5, 5, 14)  # no scope given


def test_openllmetry_bedrock_without_cache_or_total() -> None:
    no_cache = {k: v for k, v in BEDROCK_USAGE.items() if "cache" not in k and "total" not in k}
    req = make_request([make_span(attributes=no_cache)], scope=BEDROCK_SCOPE)
    (cols,) = decode_spans(req, ingested_at_ns=0).values()
    assert _tokens({k: v[0] for k, v in cols.items()}) == (6, None, None, 14)
    only_read = {**no_cache, "gen_ai.usage.cache_read.input_tokens": 4}
    req = make_request([make_span(attributes=only_read)], scope=BEDROCK_SCOPE)
    (cols,) = decode_spans(req, ingested_at_ns=0).values()
    assert _tokens({k: v[0] for k, v in cols.items()}) == (10, 4, None, 18)
