"""LangChain and LangGraph through real instrumentations → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_langchain.py):
`langchain-openai`'s ChatOpenAI against spanlake's fake OpenAI server (spanlake.demo.fake_openai),
exporting over loopback to a collector in this process (tests/collector/langchain_runs.py). The
expected numbers come from the fake server's documented rule, worked out by hand there; the cost
from genai-prices' own `calc_price`, computed in the test.

Configurations: each framework instrumentation alone (OpenInference, OpenLLMetry), each with the
matching openai client instrumentation too, as a team instrumenting everything would, and
OpenLLMetry's LangChain spans over OpenInference's openai spans ("one call, two spans", at the end).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spanlake.analytics.budgets.definition import budget_from_dict
from spanlake.analytics.budgets.measure import measure
from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.tasks import task_list
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from tests.collector import instrumented_langchain as app
from tests.collector.instrumented_runs import check_observed, observed_lines
from tests.collector.langchain_runs import (
    CALLS,
    CHAT,
    CLIENT_SCOPES,
    CONFIGS,
    FAILED,
    FRAMEWORK_SCOPES,
    NO_USAGE,
    REPLY,
    RESPONSE_MODEL,
    STREAM,
    Runs,
    counted,
    outline,
    price,
    started,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with started(tmp_path_factory.mktemp("langchain") / "data") as r:
        yield r


@dataclass(frozen=True)
class Observed:
    """What one framework instrumentation was observed to report, where they differ."""

    reasoning: bool  # reasoning tokens
    stops: dict[str, str]  # finish reason as OpenAI says it → as stored
    error_type: str
    stream_response_model: str  # a stream's response model (neither is told the answering model)


OBSERVED = {
    "openinference": Observed(True, {}, "langchain_openai.chat_models.base.OpenAIAPIError", app.MODEL),
    # OpenLLMetry 0.62.4 sends no reasoning tokens and maps `tool_calls` to OTel's `tool_call`.
    "openllmetry": Observed(False, {"tool_calls": "tool_call"}, "OpenAIAPIError", app.MODEL),
}


def check_call(row: dict[str, Any], exp: dict[str, Any], obs: Observed, scenario: str) -> None:
    """One framework LLM span against the expected call."""
    assert (row["category"], row["operation"], row["provider"]) == ("llm", "chat", "openai"), scenario
    failed = exp is FAILED
    request = "fail-500" if failed else app.MODEL
    response = request if failed else obs.stream_response_model if scenario.startswith("stream") else RESPONSE_MODEL
    assert (row["request_model"], row["response_model"]) == (request, response), scenario
    total = None if exp["in"] is None else exp["in"] + exp["out"]
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (exp["in"], exp["out"], total), scenario
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (exp["cached"], None), scenario
    assert row["reasoning_tokens"] == (exp["reasoning"] if obs.reasoning else None), scenario
    stop = exp["stop"]
    assert row["finish_reasons"] == (None if stop is None else [obs.stops.get(stop, stop)]), scenario
    assert row["time_to_first_token_ms"] is None, scenario  # neither framework span times the first token
    want_status = ("ERROR", obs.error_type) if failed else ("OK" if obs is OBSERVED["openinference"] else "UNSET", None)
    assert (row["status_code"], row["error_type"]) == want_status, scenario


@pytest.mark.parametrize("config", ["openinference", "openllmetry"])
def test_calls_are_normalized(runs: Runs, config: str) -> None:
    for scenario, calls in CALLS.items():
        rows = runs.llm(config, scenario, FRAMEWORK_SCOPES[config])
        assert len(rows) == len(calls), scenario
        for row, exp in zip(rows, calls, strict=True):
            check_call(row, exp, OBSERVED[config], scenario)
        assert [r for r in runs.spans(config, scenario) if r["category"] == "llm"] == rows  # no other LLM span


@pytest.mark.parametrize("config", ["openinference", "openllmetry"])
def test_cost_is_genai_prices(runs: Runs, config: str) -> None:
    an = Analytics(runs.collector.data_dir)
    for scenario, calls in CALLS.items():
        detail = trace_detail(an, runs.trace(config, scenario), config)
        assert detail is not None
        got = [s["cost_usd"] for s in detail.spans if s["category"] == "llm"]
        want = [price(e) if e["in"] is not None else None for e in calls]
        # a call without usage costs 0 (its model is priced), a failed one nothing (fail-500 is not)
        want = [0.0 if w is None and e is NO_USAGE else w for w, e in zip(want, calls, strict=True)]
        assert got == [w if w is None else pytest.approx(w, rel=1e-9, abs=1e-15) for w in want], scenario
        priced = [w for w in want if w is not None]
        assert detail.summary()["cost_usd"] == (pytest.approx(sum(priced), rel=1e-9) if priced else None)
    # By hand, the chat call at gpt-5-nano's $0.05 input / $0.005 cached input / $0.40 output per
    # million: 5 uncached + 4 cached input, 10 output (2 of them reasoning, at the output rate).
    by_hand = (Decimal(5) * Decimal("0.05") + Decimal(4) * Decimal("0.005") + Decimal(10) * Decimal("0.40")) / 10**6
    assert price(CHAT) == pytest.approx(float(by_hand), rel=1e-12)


# The agent run under each framework (observed), a model turn, the tools, a model turn:
# OpenInference calls the `agent` node an AGENT; OpenLLMetry adds an agent span above the
# graph's workflow span (the task).
OI_TURN = ["  agent (agent)", "    call_model (chain)", "    RunnableSequence (chain)", "      Prompt (chain)",
           "      ChatOpenAI (llm)", "    should_continue (chain)"]  # fmt: skip
OL_TURN = ["    execute_task agent (chain)", "      execute_task call_model (chain)",
           "      execute_task RunnableSequence (chain)", "        execute_task Prompt (chain)",
           "        ChatOpenAI.chat (llm)", "      execute_task should_continue (chain)"]  # fmt: skip
GRAPHS = {
    "openinference": ["LangGraph (chain)", *OI_TURN, "  tools (chain)", "    get_weather (tool)", *OI_TURN],
    "openllmetry": ["invoke_agent LangGraph (agent)", "  LangGraph.workflow (task)", *OL_TURN,
                    "    execute_task tools (chain)", "      execute_tool get_weather (tool)", *OL_TURN],
}  # fmt: skip
BUILD_AGENT = "create_agent react_agent (agent)"  # OpenLLMetry's span for create_react_agent()


@pytest.mark.parametrize("config", ["openinference", "openllmetry"])
def test_agent_tree(runs: Runs, config: str) -> None:
    """agent → LLM → tool → LLM, as each framework instrumentation draws it."""
    graph = GRAPHS[config]
    built = [BUILD_AGENT] if config == "openllmetry" else []
    under_scenario = ["scenario agent (other)", *("  " + x for x in [*built, *graph])]
    assert outline(runs.spans(config, "agent")) == under_scenario
    assert outline(runs.spans(config, "bare")) == graph
    # Without an enclosing span, OpenLLMetry's span for building the agent is a trace of its own.
    others = set(runs.trace_ids[config]["bare"]) - {runs.trace(config, "bare")}
    assert [outline([r for r in runs.project(config) if r["trace_id"] == t]) for t in others] == (
        [built] if built else []
    )
    chain = {
        "openinference": ["RunnableSequence (chain)", "  ChatPromptTemplate (chain)", "  ChatOpenAI (llm)",
                          "  StrOutputParser (chain)"],
        "openllmetry": ["RunnableSequence.workflow (task)", "  execute_task ChatPromptTemplate (chain)",
                        "  ChatOpenAI.chat (llm)", "  execute_task StrOutputParser (chain)"],
    }[config]  # fmt: skip
    assert outline(runs.spans(config, "chain")) == ["scenario chain (other)", *("  " + x for x in chain)]
    (tool,) = [r for r in runs.spans(config, "agent") if r["category"] == "tool"]
    assert (tool["tool_name"], tool["status_code"]) == ("get_weather", "OK" if config == "openinference" else "UNSET")


def task_name(config: str, scenario: str) -> str:
    """What spanlake takes as the task: a marked span (OpenLLMetry's named workflow span), else the root."""
    framework = CONFIGS[config].framework
    if framework == "openllmetry" and scenario in ("agent", "bare", "chain"):
        return "RunnableSequence" if scenario == "chain" else "LangGraph"
    return "LangGraph" if scenario == "bare" else f"scenario {scenario}"


def expected_tasks(config: str) -> list[tuple[str, int, int, int, float | None]]:
    """Every task of a configuration's project: (name, calls, input, output tokens, cost)."""
    cfg = CONFIGS[config]
    tasks = [(task_name(config, s), *counted(calls)) for s, calls in CALLS.items()]
    if cfg.client:
        tasks.append(("scenario direct", *counted([STREAM])))  # the same request as `stream`
    if cfg.framework == "openllmetry":
        tasks.append(("create_agent react_agent", 0, 0, 0, None))  # `bare` built its agent outside any span
    if config == "openinference_openai":
        # OpenInference's LangChain spans are not in the OTel context: without an enclosing span,
        # the client instrumentation's span of each call is a trace of its own (and counts again).
        tasks += [("ChatCompletion", *counted([call])) for call in CALLS["bare"]]
    return sorted(tasks, key=lambda t: (t[0], t[1], t[2]))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_tasks(runs: Runs, config: str) -> None:
    """One task per trace, named as spanlake sees it, with its calls counted once."""
    an = Analytics(runs.collector.data_dir)
    rows = task_list(an, Filters(project=config), limit=100).to_dicts()
    got = sorted(
        ((r["task_name"], r["llm_calls"], r["input_tokens"], r["output_tokens"], r["cost_usd"]) for r in rows),
        key=lambda t: (t[0], t[1], t[2]),
    )
    want = expected_tasks(config)
    assert [t[:4] for t in got] == [t[:4] for t in want]
    assert [t[4] for t in got] == [c if c is None else pytest.approx(c, rel=1e-9, abs=1e-15) for *_, c in want]
    by_trace = {r["trace_id"]: r for r in rows}
    for scenario in CALLS:
        assert by_trace[runs.trace(config, scenario)]["task_name"] == task_name(config, scenario), scenario
    # OpenLLMetry's workflow span says how it went (gen_ai.task.status); the others' tasks say nothing.
    marked = {r["task_name"] for r in rows if r["outcome_source"] == "app"}
    assert marked == ({"LangGraph", "RunnableSequence"} if CONFIGS[config].framework == "openllmetry" else set())


def _said(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(direction, role, content, tool calls with parsed arguments, tool_call_id) of each message."""
    return [
        (
            m["direction"],
            m["role"],
            m["content"],
            [(c["id"], c["name"], json.loads(c["arguments"])) for c in m["tool_calls"]],
            m["tool_call_id"],
        )
        for m in messages
    ]


WEATHER_CALL = [("call_fake_0", "get_weather", {"location": "Paris"})]
ASKED = ("input", "user", app.WEATHER, [], None)
CHAT_MESSAGES = [("input", "system", app.SYSTEM, [], None), ("input", "user", app.QUESTION, [], None),
                 ("output", "assistant", REPLY, [], None)]  # fmt: skip
AGENT_MESSAGES = [
    [ASKED, ("output", "assistant", None, WEATHER_CALL, None)],
    [ASKED, ("input", "assistant", None, WEATHER_CALL, None), ("input", "tool", app.TOOL_RESULT, [], "call_fake_0"),
     ("output", "assistant", f"Fake reply: {app.WEATHER}", [], None)],
]  # fmt: skip


@pytest.mark.parametrize("config", ["openinference", "openllmetry"])
def test_messages_and_tool_calls(runs: Runs, config: str) -> None:
    """The conversation of each call, in spanlake's one shape, from either framework's keys."""
    an = Analytics(runs.collector.data_dir)

    def llm_messages(scenario: str) -> list[list[tuple[Any, ...]]]:
        detail = trace_detail(an, runs.trace(config, scenario), config)
        assert detail is not None
        return [_said(s["messages"]) for s in detail.spans if s["category"] == "llm"]

    assert llm_messages("chat") == [CHAT_MESSAGES]
    assert llm_messages("agent") == AGENT_MESSAGES
    (tool,) = [r for r in runs.spans(config, "agent") if r["category"] == "tool"]
    content = json.loads(tool["content"])
    if config == "openinference":
        assert content["input.value"] == "Paris"
        result = json.loads(content["output.value"])["data"]["content"]
    else:  # OpenLLMetry sends LangChain's serialized call and ToolMessage, twice (its own keys and OTel's)
        assert content["gen_ai.tool.call.arguments"] == content["traceloop.entity.input"]
        assert json.loads(content["gen_ai.tool.call.arguments"])["inputs"] == {"location": "Paris"}
        result = json.loads(content["gen_ai.tool.call.result"])["output"]["kwargs"]["content"]
    assert result == app.TOOL_RESULT


# --- one call, two spans: a framework's LLM span and the openai client instrumentation's -----------

CLIENT_CONFIGS = ["openinference_openai", "openllmetry_openai", "openllmetry_oi_openai"]


def framework_and_client(runs: Runs, config: str, scenario: str) -> tuple[list[dict[str, Any]], ...]:
    cfg = CONFIGS[config]
    assert cfg.client is not None
    return runs.llm(config, scenario, FRAMEWORK_SCOPES[cfg.framework]), runs.llm(
        config, scenario, CLIENT_SCOPES[cfg.client]
    )


def check_client_call(row: dict[str, Any], exp: dict[str, Any], scenario: str) -> None:
    """OpenInference's openai span of a call: the response model and reasoning tokens always,
    the time to first token of a stream (what the framework spans above it lack)."""
    failed = exp is FAILED
    assert (
        (row["request_model"], row["response_model"]) == ("fail-500", None) if failed else (app.MODEL, RESPONSE_MODEL)
    )
    assert (row["input_tokens"], row["output_tokens"]) == (exp["in"], exp["out"]), scenario
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (exp["cached"], exp["reasoning"]), scenario
    assert row["finish_reasons"] == (None if failed else [exp["stop"]]), scenario
    assert (row["time_to_first_token_ms"] is not None) == scenario.startswith("stream"), scenario
    assert (row["status_code"], row["error_type"]) == (
        ("ERROR", "openai.InternalServerError") if failed else ("OK", None)
    )


@pytest.mark.parametrize("config", CLIENT_CONFIGS)
def test_framework_and_client_spans_are_related_as_observed(runs: Runs, config: str) -> None:
    """OpenLLMetry's LangChain instrumentation suppresses its own openai spans under a LangChain call.
    Neither framework puts its model span in the OTel context, so OpenInference's openai span of the
    call hangs elsewhere, always enclosed in time by the framework's span: under OpenLLMetry, a
    sibling (OpenLLMetry's chain spans are in the context); under OpenInference, whose spans are
    never in the context, a child of the app's span around the run (the scenario span; with none, a
    trace of its own), which the LangChain span is under too, one level or more below."""
    for scenario, calls in CALLS.items():
        framework, client = framework_and_client(runs, config, scenario)
        assert len(framework) == len(calls), scenario
        if config == "openllmetry_openai":
            assert client == [], scenario
            continue
        if config == "openinference_openai" and scenario == "bare":
            assert client == []
            others = set(runs.trace_ids[config]["bare"]) - {runs.trace(config, "bare")}
            alone = [r for r in runs.project(config) if r["trace_id"] in others]
            assert [(r["name"], r["is_root"]) for r in alone] == [("ChatCompletion", True)] * 2
            client = sorted(alone, key=lambda r: r["start_time"])
        assert len(client) == len(calls), scenario
        root = runs.spans(config, scenario)[0]
        for f, c, exp in zip(framework, client, calls, strict=True):
            check_client_call(c, exp, scenario)
            assert f["start_time"] <= c["start_time"] <= c["end_time"] <= f["end_time"], scenario
            if config == "openllmetry_oi_openai":
                assert c["parent_span_id"] == f["parent_span_id"], scenario
            elif scenario != "bare":
                assert c["parent_span_id"] == root["span_id"] == runs.spans(config, scenario)[0]["span_id"]
                sibling = scenario in ("chat", "stream", "stream_default", "error")
                assert (f["parent_span_id"] == root["span_id"]) == sibling, scenario
    # Outside LangChain the openai instrumentation is on in every configuration.
    for config_ in CLIENT_CONFIGS:
        (direct,) = [r for r in runs.spans(config_, "direct") if r["category"] == "llm"]
        assert direct["scope_name"] == CLIENT_SCOPES[CONFIGS[config_].client or ""]
        assert (direct["input_tokens"], direct["output_tokens"], direct["reasoning_tokens"]) == (6, 9, 1)


# Project totals of the cost report (billable calls: with usage), by hand. The LangChain scenarios
# count chat, stream, chain and the agent's two calls twice (agent, bare): 7 calls, 9+6+8+2*(7+10)
# = 57 input, 10+9+9+2*(4+12) = 60 output, 4+3+4+2*(3+5) = 27 cached, 2+1+2+2*(1+3) = 13 reasoning
# tokens; `direct` adds 1 call, 6 / 9 / 3 / 1.
TOTALS = {
    # `bare`'s two openai spans are traces of their own: they count again (17 / 16 / 8 / 4).
    "openinference_openai": {"calls": 10, "input_tokens": 80, "output_tokens": 85, "cache_read_tokens": 38,
                             "reasoning_tokens": 18},
    # OpenLLMetry's LangChain spans have no reasoning tokens; its openai span of `direct` does.
    "openllmetry_openai": {"calls": 8, "input_tokens": 63, "output_tokens": 69, "cache_read_tokens": 30,
                           "reasoning_tokens": 1},
    # The openai spans count, with their reasoning tokens.
    "openllmetry_oi_openai": {"calls": 8, "input_tokens": 63, "output_tokens": 69, "cache_read_tokens": 30,
                              "reasoning_tokens": 14},
}  # fmt: skip


@pytest.mark.parametrize("config", CLIENT_CONFIGS)
def test_one_call_two_spans_counts_once(runs: Runs, config: str) -> None:
    """Each call counts once, with the numbers of the span nearest the wire, in the traces view, the
    trace detail, the trace list, the cost report and a spend budget; both spans stay in the trace."""
    an = Analytics(runs.collector.data_dir)
    views = {r["trace_id"]: r for r in runs.collector.query("SELECT * FROM traces WHERE project = ?", [config])}
    dups = runs.collector.query("SELECT span_id, duplicate_of FROM duplicate_calls WHERE project = ?", [config])
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(project=config), Page(limit=50)).rows.to_dicts()}
    want_dups: dict[str, str] = {}
    for scenario, calls in {**CALLS, "direct": [STREAM]}.items():
        trace_id = runs.trace(config, scenario)
        _, inp, out, cost = counted(calls)
        framework, client = framework_and_client(runs, config, scenario)
        pairs = dict(zip([f["span_id"] for f in framework], [c["span_id"] for c in client], strict=False))
        want_dups |= pairs
        v = views[trace_id]
        assert (v["llm_calls"], v["input_tokens"], v["output_tokens"]) == (len(calls), inp, out), scenario
        detail = trace_detail(an, trace_id, config)
        assert detail is not None
        s = detail.summary()
        assert (s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (len(calls), inp, out), scenario
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (len(calls), inp, out), scenario
        for got in (s["cost_usd"], row["cost_usd"]):
            assert got == (None if cost is None else pytest.approx(cost, rel=1e-9, abs=1e-15)), scenario
        marks = {x["span_id"]: (x["duplicate_of"], x["cost_usd"]) for x in detail.spans if x["category"] == "llm"}
        for f_id, c_id in pairs.items():
            assert marks[f_id] == (c_id, None) and marks[c_id][0] is None, scenario
        assert len(marks) == len(calls) + len(pairs), scenario  # both spans stay in the trace
    assert {r["span_id"]: r["duplicate_of"] for r in dups} == want_dups
    assert len(want_dups) == {"openinference_openai": 7, "openllmetry_openai": 0, "openllmetry_oi_openai": 9}[config]
    (totals,) = call_totals(an, Filters(project=config)).to_dicts()
    assert {k: totals[k] for k in TOTALS[config]} == TOTALS[config]
    used = [e for s, calls in CALLS.items() for e in calls if e["in"] is not None] + [STREAM]
    if config == "openinference_openai":
        used += CALLS["bare"]
    assert (len(used), sum(e["in"] for e in used)) == (TOTALS[config]["calls"], TOTALS[config]["input_tokens"])
    cost = sum(price(e) for e in used)
    assert totals["cost_usd"] == pytest.approx(cost, rel=1e-9)
    spend = budget_from_dict({"name": "spend", "metric": "spend", "window": "1d", "warning": 1.0}, config)
    reading = measure(an, spend, datetime.now(UTC) + timedelta(minutes=1))
    assert reading.figure.value == pytest.approx(cost, rel=1e-9)


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = Path(__file__).parents[2] / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-langchain:begin -->", "<!-- observed-langchain:end -->"


def render_observed(runs: Runs) -> str:
    """Per framework instrumentation (alone): span names, attribute and content keys, span events."""
    out = []
    for config in ("openinference", "openllmetry"):
        spans = [r for r in runs.project(config) if not r["name"].startswith("scenario ")]
        names = ", ".join(sorted({f"`{s['name']}` ({s['kind']}, {s['category']})" for s in spans}))
        out += [f"### `{config}`", "", f"- over OTLP/{CONFIGS[config].protocol}", f"- spans: {names}"]
        out += [*observed_lines(spans, names=False), ""]
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))
