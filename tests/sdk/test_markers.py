"""Every marker, in every form (sync, async, generator, async generator, with, async with),
sent through a real collector: assert what the lake stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry import trace

import spanlake.sdk as sl
from tests.sdk.conftest import FORMS, SdkRun, run_form

DOCS = [
    {"id": "kb-1", "score": 0.92, "content": "Refunds take 5 days."},
    ("kb-2", 0.41, "Shipping is free over $50."),
]


class Boom(Exception):
    pass


def _raise(h: Any) -> None:
    raise Boom("kaput")


def _llm_body(h: sl.LlmCall) -> str:
    for _ in h.stream(iter(["Refunds ", "take 5 days."])):  # marks the first chunk in every form
        pass
    h.set_usage(input_tokens=120, output_tokens=30, cached_tokens=64, reasoning_tokens=8)
    h.set_response(model="gpt-4o-mini-2024-07-18", response_id="chatcmpl-1", finish_reasons=["stop"])
    h.set_output("Refunds take 5 days.", "stop")
    return "answered"


def _prompted_body(tracer: trace.Tracer) -> Any:
    def body(h: Any) -> str:
        with tracer.start_as_current_span("plain otel child"), sl.llm_call("gpt-4o", "openai") as call:
            call.set_usage(input_tokens=1, output_tokens=1)
        return "prompted"

    return body


@pytest.mark.parametrize("form", FORMS)
def test_every_marker_is_stored(sdk_run: SdkRun, form: str) -> None:
    f = form
    assert run_form(f, sl.task(f"ok {f}"), lambda h: "fine") == "fine"
    assert run_form(f, sl.task(f"fail {f}"), lambda h: h.fail("no grounded answer")) is None
    with pytest.raises(Boom):
        run_form(f, sl.task(f"boom {f}"), _raise)
    msgs = [{"role": "user", "content": "How long do refunds take?"}]
    assert run_form(f, sl.llm_call("gpt-4o-mini", "openai", messages=msgs), _llm_body) == "answered"
    run_form(f, sl.retrieval("refund time", "kb"), lambda h: h.set_documents(DOCS))
    run_form(f, sl.tool_call("lookup_order", {"order_id": 7}), lambda h: h.set_result({"status": "shipped"}))
    run_form(f, sl.validation(f"schema {f}"), lambda h: h.failed(["missing field: answer"]))
    run_form(f, sl.validation(f"no_pii {f}"), lambda h: h.passed())
    run_form(f, sl.policy(f"pii {f}", "redact"), lambda h: None)
    run_form(f, sl.fallback("timeout", f"bigger {f}"), lambda h: None)
    run_form(f, sl.escalation("angry customer", f"human {f}"), lambda h: None)
    tracer = sdk_run.provider.get_tracer("app")
    with sl.task(f"versioned {f}"):
        assert run_form(f, sl.prompt("answer", "v3"), _prompted_body(tracer)) == "prompted"

    rows = sdk_run.by_name()
    for r in rows.values():
        assert r["project"] == "sdktest" and r["service_name"] == "sdk-test"

    ok, fail, boom = rows[f"ok {f}"], rows[f"fail {f}"], rows[f"boom {f}"]
    assert (ok["category"], ok["task_name"], ok["task_outcome"]) == ("task", f"ok {f}", "success")
    assert ok["status_code"] == "UNSET" and ok["task_outcome_reason"] is None
    assert (fail["task_outcome"], fail["task_outcome_reason"], fail["status_code"]) == (
        "failure",
        "no grounded answer",
        "UNSET",
    )
    assert (boom["task_outcome"], boom["task_outcome_reason"]) == ("failure", "Boom: kaput")
    assert boom["status_code"] == "ERROR" and boom["error_type"].endswith("Boom")

    llm = rows["chat gpt-4o-mini"]
    assert (llm["category"], llm["operation"], llm["provider"], llm["kind"]) == ("llm", "chat", "openai", "CLIENT")
    assert (llm["request_model"], llm["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (llm["input_tokens"], llm["output_tokens"], llm["total_tokens"]) == (120, 30, 150)
    assert (llm["cache_read_tokens"], llm["reasoning_tokens"]) == (64, 8)
    assert llm["finish_reasons"] == ["stop"]
    assert 0 < llm["time_to_first_token_ms"] < llm["duration_ns"] / 1e6
    content = json.loads(llm["content"])
    assert json.loads(content["gen_ai.input.messages"])[0]["parts"][0]["content"] == "How long do refunds take?"
    out = json.loads(content["gen_ai.output.messages"])[0]
    assert out["role"] == "assistant" and out["parts"][0]["content"] == "Refunds take 5 days."

    ret = rows["retrieval kb"]
    assert (ret["category"], ret["operation"]) == ("retrieval", "retrieval")
    rc = json.loads(ret["content"])
    assert rc["gen_ai.retrieval.query.text"] == "refund time"
    docs = json.loads(rc["gen_ai.retrieval.documents"])
    assert [(d["id"], d["score"], d["content"]) for d in docs] == [
        ("kb-1", 0.92, "Refunds take 5 days."),
        ("kb-2", 0.41, "Shipping is free over $50."),
    ]
    assert rc["retrieval.documents.1.document.id"] == "kb-2"
    assert rc["retrieval.documents.0.document.content"] == "Refunds take 5 days."

    tool = rows["execute_tool lookup_order"]
    assert (tool["category"], tool["operation"], tool["tool_name"]) == ("tool", "execute_tool", "lookup_order")
    tc = json.loads(tool["content"])
    assert json.loads(tc["gen_ai.tool.call.arguments"]) == {"order_id": 7}
    assert json.loads(tc["gen_ai.tool.call.result"]) == {"status": "shipped"}

    bad, good = rows[f"validation schema {f}"], rows[f"validation no_pii {f}"]
    assert (bad["category"], bad["validation_name"], bad["validation_passed"]) == ("guardrail", f"schema {f}", False)
    assert json.loads(bad["attributes"])["spanlake.validation.errors"] == ["missing field: answer"]
    assert (good["validation_name"], good["validation_passed"]) == (f"no_pii {f}", True)

    pol = json.loads(rows[f"policy pii {f}"]["attributes"])
    assert rows[f"policy pii {f}"]["category"] == "guardrail"
    assert (pol["spanlake.policy.name"], pol["spanlake.policy.decision"]) == (f"pii {f}", "redact")
    fb, esc = rows[f"fallback bigger {f}"], rows[f"escalation human {f}"]
    assert json.loads(fb["attributes"])["spanlake.fallback.reason"] == "timeout"
    assert json.loads(esc["attributes"])["spanlake.escalation.to"] == f"human {f}"
    assert fb["category"] == esc["category"] == "chain"

    # prompt(): every span started inside has the version, and so has the enclosing task
    versioned, child, nested_llm = rows[f"versioned {f}"], rows["plain otel child"], rows["chat gpt-4o"]
    assert nested_llm["parent_span_id"] == child["span_id"]
    for r in (versioned, child, nested_llm):
        assert (r["prompt_name"], r["prompt_version"]) == ("answer", "v3"), r["name"]


def test_nesting_and_session(sdk_run: SdkRun) -> None:
    with sl.session("sess-1", "user-9"), sl.task("answer_ticket") as t:
        with sl.retrieval("q", "kb") as r:
            r.set_documents(["just text"])
        with sl.llm_call("claude-sonnet", "anthropic") as call:
            call.set_usage(input_tokens=10, output_tokens=2)
        t.succeed("answered from kb")
    rows = sdk_run.by_name()
    task, ret, llm = rows["answer_ticket"], rows["retrieval kb"], rows["chat claude-sonnet"]
    assert ret["parent_span_id"] == llm["parent_span_id"] == task["span_id"]
    assert len({ret["trace_id"], llm["trace_id"], task["trace_id"]}) == 1
    assert (task["task_outcome"], task["task_outcome_reason"]) == ("success", "answered from kb")
    for r in rows.values():
        assert (r["session_id"], r["user_id"]) == ("sess-1", "user-9")
    assert sdk_run.rows("SELECT root_name, span_count, input_tokens FROM traces") == [
        {"root_name": "answer_ticket", "span_count": 3, "input_tokens": 10}
    ]
