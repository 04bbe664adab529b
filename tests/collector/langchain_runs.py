"""The LangChain/LangGraph runs the instrumentation tests read (tests/collector/test_instrumentations_langchain.py):
each configuration's process (tests/collector/instrumented_langchain.py) against the fake OpenAI
server, exported to one collector; what each scenario's model calls are, by the fake server's
rule, worked out by hand; and small readers of the stored spans.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector import instrumented_langchain as app
from tests.collector.instrumented_runs import Launch, run_configurations
from tests.collector.instrumented_runs import Runs as BaseRuns

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
    rows: list[dict[str, Any]] = field(default_factory=list)  # every span of the lake, read once

    @property
    def trace_ids(self) -> dict[str, dict[str, list[str]]]:
        """config → scenario → every trace id its spans had."""
        return {config: out["trace_ids"] for config, out in self.outputs.items()}

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


def _launch(fake: FakeOpenAI, name: str, cfg: Config) -> Launch:
    argv = [sys.executable, "-m", "tests.collector.instrumented_langchain", cfg.framework, "--url", fake.base_url]
    argv += ["--client", cfg.client] if cfg.client else []
    return Launch(argv, cfg.protocol, ("OTEL_", "TRACELOOP_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_"))


@contextmanager
def started(data_dir: Path) -> Iterator[Runs]:
    """Every configuration run at once against one fake server and one collector; the lake read once."""
    with run_configurations(data_dir, FakeOpenAI(), CONFIGS, _launch, Runs) as runs:
        runs.rows = runs.collector.query("SELECT * FROM spans ORDER BY project, trace_id, start_time, span_id")
        yield runs


def price(exp: dict[str, Any]) -> float:
    """genai-prices' own price of one call (its input_tokens include the cached ones; reasoning is
    a part of the output, billed at the output rate)."""
    usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["cached"], output_tokens=exp["out"])
    return float(calc_price(usage, RESPONSE_MODEL, provider_id="openai").total_price)


def counted(calls: list[dict[str, Any]]) -> tuple[int, int, int, float | None]:
    """(billable calls, input, output tokens, cost) of calls counted once."""
    used = [e for e in calls if e["in"] is not None]
    cost = sum(price(e) for e in used) if used else (0.0 if NO_USAGE in calls else None)
    return len(used), sum(e["in"] for e in used), sum(e["out"] for e in used), cost


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
