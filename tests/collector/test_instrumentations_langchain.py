"""LangChain and LangGraph through real instrumentations → real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_langchain.py):
`langchain-openai`'s ChatOpenAI against spanlake's fake OpenAI server (spanlake.demo.fake_openai),
exporting over loopback to a collector in this process. The expected numbers come from the fake
server's documented rule, worked out by hand below; the cost from genai-prices' own `calc_price`.

Configurations: each framework instrumentation alone (OpenInference, OpenLLMetry), each with the
matching openai client instrumentation too, as a team instrumenting everything would, and
OpenLLMetry's LangChain spans over OpenInference's openai spans ("one call, two spans":
tests/collector/test_instrumentations_langchain_pairs.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.reports.tasks import task_list
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector import instrumented_langchain as app
from tests.collector.instrumented_runs import Runs as BaseRuns
from tests.collector.instrumented_runs import clean_env

ROOT = Path(__file__).parents[2]
RESPONSE_MODEL = app.MODEL + "-2025-01-01"
REPLY = f"Fake reply: {app.QUESTION}"  # 8 words

# Per model call, from the fake server's rule (words = whitespace-separated words): input = the
# words of every message; cached = input // 2; reasoning = the number of messages; output = the
# reply's words + reasoning.
CHAT = {"in": 3 + 6, "cached": 4, "reasoning": 2, "out": 8 + 2, "stop": "stop"}  # system + user
STREAM = {"in": 6, "cached": 3, "reasoning": 1, "out": 8 + 1, "stop": "stop"}  # user
CHAIN = {"in": 3 + 5, "cached": 4, "reasoning": 2, "out": 7 + 2, "stop": "stop"}  # "Explain OpenTelemetry in one line."
# The agent's first call answers with the tool call (visible text `get_weather {"location": "Paris"}`,
# 3 words); the second reads the user's text, the tool call (no text) and the tool's answer (3 words).
TOOL_TURN = {"in": 7, "cached": 3, "reasoning": 1, "out": 3 + 1, "stop": "tool_calls"}
ANSWER_TURN = {"in": 7 + 0 + 3, "cached": 5, "reasoning": 3, "out": 9 + 3, "stop": "stop"}
NO_USAGE = {"in": None, "cached": None, "reasoning": None, "out": None, "stop": "stop"}
FAILED = {"in": None, "cached": None, "reasoning": None, "out": None, "stop": None}
# scenario → its model calls in order
CALLS: dict[str, list[dict[str, Any]]] = {
    "chat": [CHAT],
    "stream": [STREAM],
    "stream_default": [NO_USAGE],  # langchain-openai asks no usage of a stream to a base_url of its own
    "chain": [CHAIN],
    "agent": [TOOL_TURN, ANSWER_TURN],
    "error": [FAILED],
    "bare": [TOOL_TURN, ANSWER_TURN],
}


@dataclass(frozen=True)
class Config:
    framework: str
    client: str | None
    protocol: str


CONFIGS = {
    "openinference": Config("openinference", None, "http"),
    "openllmetry": Config("openllmetry", None, "grpc"),
    "openinference_openai": Config("openinference", "openinference", "grpc"),
    "openllmetry_openai": Config("openllmetry", "openllmetry", "http"),
    "openllmetry_oi_openai": Config("openllmetry", "openinference", "http"),
}
FRAMEWORK_SCOPES = {
    "openinference": "openinference.instrumentation.langchain",
    "openllmetry": "opentelemetry.instrumentation.langchain",
}
CLIENT_SCOPES = {
    "openinference": "openinference.instrumentation.openai",
    "openllmetry": "opentelemetry.instrumentation.openai.v1",
}


@dataclass
class Runs(BaseRuns):
    trace_ids: dict[str, dict[str, list[str]]]  # config → scenario → every trace id its spans had
    rows: list[dict[str, Any]]  # every span of the lake, read once

    def trace(self, config: str, scenario: str) -> str:
        """The scenario's trace (for `bare`, the trace of the graph's root span)."""
        if scenario != "bare":
            return super().trace(config, scenario)
        ids = set(self.trace_ids[config]["bare"])
        (root,) = [
            r
            for r in self.project(config)
            if r["trace_id"] in ids and r["is_root"] and r["name"] in ("LangGraph", "invoke_agent LangGraph")
        ]
        return str(root["trace_id"])

    def project(self, config: str) -> list[dict[str, Any]]:
        if config in self.failures:
            pytest.fail(self.failures[config])
        return [r for r in self.rows if r["project"] == config]

    def spans(self, config: str, scenario: str) -> list[dict[str, Any]]:
        """The scenario's spans, in start order."""
        trace_id = self.trace(config, scenario)
        return [r for r in self.project(config) if r["trace_id"] == trace_id]

    def llm(self, config: str, scenario: str, scope: str) -> list[dict[str, Any]]:
        """The scenario's LLM spans of one instrumentation scope, in start order."""
        return [r for r in self.spans(config, scenario) if r["category"] == "llm" and r["scope_name"] == scope]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from tests.conftest import start_collector

    collector, stop = start_collector(tmp_path_factory.mktemp("langchain") / "data")
    try:
        with FakeOpenAI() as fake:
            procs = {}
            for name, cfg in CONFIGS.items():
                endpoint = collector.grpc if cfg.protocol == "grpc" else collector.http
                argv = [sys.executable, "-m", "tests.collector.instrumented_langchain", cfg.framework]
                argv += ["--url", fake.base_url, "--otlp", endpoint, "--protocol", cfg.protocol, "--project", name]
                argv += ["--client", cfg.client] if cfg.client else []
                procs[name] = subprocess.Popen(
                    argv,
                    env=clean_env(("OTEL_", "TRACELOOP_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_")),
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            traces, versions, failures, trace_ids = _collect(procs)
        collector.flush()
        rows = collector.query("SELECT * FROM spans ORDER BY project, trace_id, start_time, span_id")
        yield Runs(collector, traces, versions, failures, trace_ids, rows)
    finally:
        stop()


def _collect(
    procs: dict[str, subprocess.Popen[bytes]],
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, str], dict[str, dict[str, list[str]]]]:
    traces, versions, failures, trace_ids = {}, {}, {}, {}
    for config, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            failures[config] = f"{config}: instrumented app failed:\n{err.decode()[-4000:]}"
            continue
        result = json.loads(out)
        traces[config], trace_ids[config] = result["traces"], result["trace_ids"]
        versions.update(result["versions"])
    return traces, versions, failures, trace_ids


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


def price(exp: dict[str, Any]) -> float:
    """genai-prices' own price of one call (its input_tokens include the cached ones; reasoning is
    a part of the output, billed at the output rate)."""
    usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["cached"], output_tokens=exp["out"])
    return float(calc_price(usage, RESPONSE_MODEL, provider_id="openai").total_price)


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


def outline(rows: list[dict[str, Any]]) -> list[str]:
    """The trace as an indented outline, `name (category)`, children in start order."""
    ids = {r["span_id"] for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:  # rows come in start order
        children.setdefault(r["parent_span_id"] if r["parent_span_id"] in ids else None, []).append(r)
    out: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            out.append("  " * depth + f"{r['name']} ({r['category']})")
            walk(r["span_id"], depth + 1)

    walk(None, 0)
    return out


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


def counted(calls: list[dict[str, Any]]) -> tuple[int, int, int, float | None]:
    """(billable calls, input, output tokens, cost) of calls counted once."""
    used = [e for e in calls if e["in"] is not None]
    cost = sum(price(e) for e in used) if used else (0.0 if NO_USAGE in calls else None)
    return len(used), sum(e["in"] for e in used), sum(e["out"] for e in used), cost


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
