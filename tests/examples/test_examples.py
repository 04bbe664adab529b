"""The runnable examples, each run as `python examples/X.py` against a real collector and the
shipped fake OpenAI server: what each stored (tasks, outcomes, prompts, documents, validations,
tools, feedback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.fake_openai import FakeOpenAI
from tests.conftest import RunningCollector, start_collector
from tests.examples.helpers import ROOT, attr, clean_env, content, document_ids, finish, popen

EXAMPLES = ("openai_app", "rag_app", "agent_app")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, dict[str, str]]]:
    """Run every example at once, each into its own project; yields the collector and their stdout."""
    collector, stop = start_collector(tmp_path_factory.mktemp("examples") / "data")
    try:
        with FakeOpenAI() as fake:
            procs = {
                name: popen(
                    [str(Path("examples") / f"{name}.py")],
                    clean_env(
                        OPENAI_BASE_URL=fake.base_url,
                        OPENAI_API_KEY="sk-fake",
                        OTEL_EXPORTER_OTLP_ENDPOINT=collector.http,
                        SPANLAKE_PROJECT=name,
                    ),
                    cwd=ROOT,
                )
                for name in EXAMPLES
            }
            out = {name: finish(p) for name, p in procs.items()}
        collector.flush()
        yield collector, out
    finally:
        stop()


def spans(collector: RunningCollector, project: str) -> list[dict[str, Any]]:
    return collector.query("SELECT * FROM spans WHERE project = ? ORDER BY start_time", [project])


def tasks_of(rows: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(r["name"], r["task_outcome"], r["task_outcome_reason"]) for r in rows if r["category"] == "task"]


def test_openai_app(lake: tuple[RunningCollector, dict[str, str]]) -> None:
    """openai-v2 records the calls; the SDK's tasks own them, with outcome and prompt version."""
    collector, out = lake
    assert len(out["openai_app"].strip().splitlines()) == 3
    rows = spans(collector, "openai_app")
    assert tasks_of(rows) == [
        ("translate", "success", None),
        ("translate", "success", None),
        ("translate", "failure", "reply cut off by max_tokens"),
    ]
    tasks = {r["span_id"]: r for r in rows if r["category"] == "task"}
    llms = [r for r in rows if r["category"] == "llm"]
    assert len(llms) == 3
    for llm in llms:
        assert llm["scope_name"].startswith("opentelemetry.")  # openai-v2 (its GenAI handler), not the SDK
        assert llm["parent_span_id"] in tasks and llm["request_model"] == "gpt-4o-mini"
        assert (llm["prompt_name"], llm["prompt_version"]) == ("translate_fr", "v1")
        assert content(llm, "gen_ai.input.messages")  # captured on the span (span_only)
    assert llms[-1]["finish_reasons"] == ["length"]
    assert {r["service_name"] for r in rows} == {"translator"}


def test_rag_app(lake: tuple[RunningCollector, dict[str, str]]) -> None:
    """Retrieval documents, llm_call usage, validations, outcomes, session, and user feedback."""
    collector, _ = lake
    rows = spans(collector, "rag_app")
    assert tasks_of(rows) == [
        ("answer_question", "success", None),
        ("answer_question", "success", None),
        ("answer_question", "failure", "no source for this question"),
    ]
    traces = [r["trace_id"] for r in rows if r["category"] == "task"]
    by_trace = {t: [r for r in rows if r["trace_id"] == t] for t in traces}

    def one(trace: str, name: str) -> dict[str, Any] | None:
        found = [r for r in by_trace[trace] if r["name"] == name]
        assert len(found) <= 1
        return found[0] if found else None

    retrievals = [one(t, "retrieval faq") for t in traces]
    assert [document_ids(r) for r in retrievals if r] == [["faq-returns", "faq-shipping"], ["faq-shipping"], []]
    assert attr(retrievals[0], "gen_ai.data_source.id") == "faq"  # type: ignore[arg-type]
    first_doc = content(retrievals[0], "gen_ai.retrieval.documents")[0]  # type: ignore[arg-type]
    assert first_doc["content"].startswith("Items can be returned") and first_doc["score"] > 0
    sources = [one(t, "validation has_sources") for t in traces]
    assert [r["validation_passed"] for r in sources if r] == [True, True, False]
    assert attr(sources[2], "spanlake.validation.errors") == ["no document matched"]  # type: ignore[arg-type]
    answers = [one(t, "validation json_schema:Answer") for t in traces]
    assert [r["validation_passed"] if r else None for r in answers] == [True, True, None]
    llms = [r for r in rows if r["category"] == "llm"]
    assert len(llms) == 2
    for llm in llms:
        assert (llm["scope_name"], llm["provider"], llm["request_model"]) == ("spanlake.sdk", "openai", "gpt-4o-mini")
        assert llm["response_model"].startswith("gpt-4o-mini") and llm["input_tokens"] > 0 and llm["output_tokens"] > 0
        assert content(llm, "gen_ai.output.messages")[0]["role"] == "assistant"
    for r in rows:
        assert (r["session_id"], r["user_id"], r["prompt_name"], r["prompt_version"]) == (
            "faq-session-1", "user-1", "faq_answer", "v2",
        )  # fmt: skip
    labels = collector.query("SELECT * FROM labels WHERE project = 'rag_app'")
    assert sorted((lb["trace_id"], lb["value"], lb["author"], lb["source"]) for lb in labels) == sorted(
        [(traces[0], "up", "user-1", "user_feedback"), (traces[1], "up", "user-1", "user_feedback"),
         (traces[2], "down", "user-1", "user_feedback")]
    )  # fmt: skip


def test_agent_app(lake: tuple[RunningCollector, dict[str, str]]) -> None:
    """Model turns, tool runs with arguments/results/call ids, policies, outcomes."""
    collector, _ = lake
    rows = spans(collector, "agent_app")
    assert tasks_of(rows) == [("assist", "success", None), ("assist", "success", None),
                              ("assist", "failure", "request out of scope")]  # fmt: skip
    traces = [r["trace_id"] for r in rows if r["category"] == "task"]
    weather, hello, homework = ([r for r in rows if r["trace_id"] == t] for t in traces)

    def names(trace_rows: list[dict[str, Any]]) -> list[str]:
        return [r["name"] for r in trace_rows if r["category"] != "task"]

    # the fake model answers the tool's result with text (demo/fake_openai.py), so the loop ends there
    assert names(weather) == ["policy allowed_topics", "chat gpt-4o-mini", "execute_tool get_weather",
                              "chat gpt-4o-mini"]  # fmt: skip
    assert names(hello) == ["policy allowed_topics", "chat gpt-4o-mini"]
    assert names(homework) == ["policy allowed_topics"]
    decisions = [attr(r, "spanlake.policy.decision") for r in rows if r["name"].startswith("policy")]
    assert decisions == ["allow", "allow", "block"]
    (tool,) = (r for r in weather if r["category"] == "tool")
    assert (tool["tool_name"], attr(tool, "gen_ai.tool.call.id")) == ("get_weather", "call_fake_0")
    assert content(tool, "gen_ai.tool.call.arguments") == {"location": "Paris"}
    assert content(tool, "gen_ai.tool.call.result")["sky"] == "light rain"
    llm_first = next(r for r in weather if r["category"] == "llm")
    assert llm_first["finish_reasons"] == ["tool_calls"] and llm_first["prompt_version"] == "v3"
