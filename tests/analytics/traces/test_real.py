"""The explore layer on what real instrumentations sent: six library configurations (OTel
openai-v2 default/latest/events, OpenInference, OpenLLMetry attributes/events) tracing the
agent app (agent_app.py) through a real collector. Each lands in its own project."""

from __future__ import annotations

import pytest

from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.trace_list import list_sessions, list_traces, session_traces
from tests.analytics.traces import agent_app as app
from tests.analytics.traces.conftest import RealRuns

CONFIGS = list(app.CONFIGS)
REPLY = f"Fake reply: {app.WEATHER}"


def brief(msgs: list[dict]) -> list[tuple]:
    return [(m["role"], m["content"], [(c["id"], c["name"]) for c in m["tool_calls"]], m["tool_call_id"])
            for m in msgs]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
def test_tool_roundtrip_conversation(real: RealRuns, config: str) -> None:
    d = trace_detail(real.analytics, real.trace(config, "tool_roundtrip"), config)
    assert d is not None
    # OpenLLMetry's gen_ai.tool.message event carries no tool call id
    call_id = None if config == "traceloop_events" else "call_fake_0"
    conv = brief(d.conversation)
    assert conv[:3] == [
        ("system", app.SYSTEM, [], None),
        ("user", app.WEATHER, [], None),
        ("assistant", None, [("call_fake_0", "get_weather")], None),
    ]
    role, content, calls, tool_call_id = conv[3]
    assert (role, calls, tool_call_id) == ("tool", [], call_id)
    assert content.replace(" ", "") == app.TOOL_RESULT.replace(" ", "")
    assert conv[4:] == [("assistant", REPLY, [], None)]
    assert [m["direction"] for m in d.conversation] == ["input", "input", "output", "input", "output"]
    args = d.conversation[2]["tool_calls"][0]["arguments"].replace(" ", "")
    assert args == '{"location":"Paris"}'


@pytest.mark.parametrize("config", CONFIGS)
def test_trace_parts(real: RealRuns, config: str) -> None:
    d = trace_detail(real.analytics, real.trace(config, "tool_roundtrip"))
    assert d is not None
    assert d.spans[0]["name"] == "answer_ticket" and d.spans[0]["depth"] == 0
    assert {s["depth"] for s in d.spans[1:]} == {1}
    assert [(x["id"], x["score"]) for x in d.documents] == [("kb-1", 0.92), ("kb-2", 0.41)]
    assert [(v["name"], v["passed"]) for v in d.validations] == [("no_pii", True)]
    assert [(m["kind"], m["name"], m["decision"]) for m in d.markers] == [("policy", "content_filter", "allow")]
    s = d.summary()
    assert (s["outcome"], s["llm_calls"], s["input_tokens"], s["session_id"]) == ("success", 2, 28, f"{config}-A")

    f = trace_detail(real.analytics, real.trace(config, "fallback"))
    assert f is not None and f.summary()["outcome"] == "failure"
    assert f.summary()["outcome_reason"] == "escalated to a human"
    assert [(v["name"], v["passed"], v["errors"]) for v in f.validations] == [
        ("json_schema:Reply", False, ["field 'answer' missing"])
    ]
    assert [(m["kind"], m["to"]) for m in f.markers] == [("fallback", "gpt-4o"), ("escalation", "human")]
    assert [m["content"] for m in f.conversation if m["role"] == "user"] == [app.MARKUP]


@pytest.mark.parametrize("config", CONFIGS)
def test_search_finds_content_wherever_the_library_put_it(real: RealRuns, config: str) -> None:
    """Span content (openai-v2 latest, OpenInference, OpenLLMetry) or log records (the others)."""
    found = list_traces(real.analytics, TraceFilters(project=config, text="weather in PARIS"))
    assert list(found.rows["trace_id"]) == [real.trace(config, "tool_roundtrip")]
    markup = list_traces(real.analytics, TraceFilters(project=config, text="<script>"))
    assert list(markup.rows["trace_id"]) == [real.trace(config, "fallback")]


@pytest.mark.parametrize("config", CONFIGS)
def test_list_and_sessions(real: RealRuns, config: str) -> None:
    rows = {r["trace_id"]: r for r in list_traces(real.analytics, TraceFilters(project=config)).rows.to_dicts()}
    ok, fb, err = (rows[real.trace(config, s)] for s in app.SCENARIOS)
    assert (ok["outcome"], fb["outcome"], err["outcome"]) == ("success", "failure", "failure")
    assert (ok["has_error"], fb["has_error"], err["has_error"]) == (False, False, True)
    assert fb["models"] == ["gpt-4o", "gpt-4o-mini"] and err["models"] == ["fail-500"]
    assert fb["validation_failures"] == 1
    sessions = list_sessions(real.analytics, TraceFilters(project=config))
    assert sorted(sessions.select("session_id", "traces").rows()) == [(f"{config}-A", 2), (f"{config}-B", 1)]
    in_order = session_traces(real.analytics, TraceFilters(project=config), f"{config}-A")["trace_id"].to_list()
    assert in_order == [real.trace(config, "tool_roundtrip"), real.trace(config, "fallback")]
