"""A realistic agent run as one trace, written through the collector's decoder (normalization
included) and the lake writer, as the flusher writes: the trace view's big-tree fixture.

`agent_spans(turns)` builds the run; with the default 25 turns it has exactly 300 spans:

    depth 0  task `support_agent` (success)                                        1
    depth 1  agent `invoke_agent support`                                          1
             validations of the final answer: json_schema, no_pii (pass)           2
    depth 2  turn k (chain), k = 1..25                                            25
    depth 3    chat gpt-4o (llm) per turn; turn 9's first attempt fails (429)
               and is retried under the same turn                              25+1
               tools, by the turn's place in a cycle of five (below)              50
               validation `send_policy` before each send_email (guardrail)         5
    depth 4      search_docs → retrieval kb; get_order → retrieval orders         20
                 research → agent `invoke_agent researcher`                       10
    depth 5        per research: 5 times (chat gpt-4o-mini, web_search), a final
                   chat gpt-4o-mini                                              110
    depth 6          web_search → retrieval web                                   50

The tool cycle by (k - 1) % 5: [search_docs], [get_order, get_customer], [research],
[get_order, calculator, send_email], [search_docs, get_customer, research]: 50 tools in 25
turns. The failing tool is turn 14's get_order (ERROR, "order 4411 not found", after its
retrieval found nothing). Errors in tree order: turn 9's first chat, then turn 14's get_order.

Prices (prices.toml): gpt-4o $2.50 / $10 per Mtok in / out, gpt-4o-mini $0.15 / $0.60.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.factories import make_request, make_span

PROJECT = "agents"
T0 = datetime(2025, 6, 2, 11, 0, tzinfo=UTC)
DAY = T0.date()
MS = 1_000_000
TRACE = bytes.fromhex("a9e17000000000000000000000000300")
BIG_TRACE = bytes.fromhex("a9e17000000000000000000000002000")
TURNS = 25
BIG_TURNS = 170  # 2,011 spans
CYCLE = (
    ("search_docs",),
    ("get_order", "get_customer"),
    ("research",),
    ("get_order", "calculator", "send_email"),
    ("search_docs", "get_customer", "research"),
)
RETRIED_TURN = 9
FAILING_TURN = 14  # its get_order fails
FAILURE = "order 4411 not found"
RESEARCH_STEPS = 5
PRICES = """[[price]]
model = "gpt-4o"
input_mtok = 2.5
output_mtok = 10.0

[[price]]
model = "gpt-4o-mini"
input_mtok = 0.15
output_mtok = 0.6
"""


@dataclass
class Built:
    """The run's spans in the order they were made (parents first), and what the tests check."""

    trace_id: bytes
    turn_count: int = TURNS
    spans: list[Span] = field(default_factory=list)
    names: dict[bytes, str] = field(default_factory=dict)  # span id → name
    parent: dict[bytes, bytes | None] = field(default_factory=dict)
    turns: list[bytes] = field(default_factory=list)  # turn span ids, turn 1 first
    failing_tool: bytes = b""
    failed_attempt: bytes = b""
    retry: bytes = b""
    _next: int = 1

    def sid(self) -> bytes:
        self._next += 1
        return self._next.to_bytes(8, "big")

    def add(
        self, parent: bytes | None, start: datetime, ms: float, name: str, attrs: dict[str, Any], **kw: Any
    ) -> bytes:
        span_id = self.sid()
        self.spans.append(
            make_span(
                name=name,
                trace_id=self.trace_id,
                span_id=span_id,
                parent_span_id=parent or b"",
                start_ns=_ns(start),
                duration_ns=int(ms * MS),
                attributes=attrs,
                **kw,
            )
        )
        self.names[span_id] = name
        self.parent[span_id] = parent
        return span_id

    def descendants(self, span_id: bytes) -> int:
        """How many spans lie below `span_id` (at any depth)."""
        count = 0
        for s in self.parent:
            p = self.parent[s]
            while p is not None:
                if p == span_id:
                    count += 1
                    break
                p = self.parent[p]
        return count


def _ns(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _chat(model: str, tokens_in: int, tokens_out: int, finish: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": tokens_in,
        "gen_ai.usage.output_tokens": tokens_out,
        "gen_ai.response.finish_reasons": [finish],
    }


def _tool(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.arguments": json.dumps(arguments),
    }


def _retrieval(source: str, query: str, found: int = 2) -> dict[str, Any]:
    docs = [
        {"id": f"{source}-{i}", "score": round(0.9 - 0.2 * i, 2), "content": f"{query} ({i})"} for i in range(found)
    ]
    return {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": source,
        "gen_ai.retrieval.documents": json.dumps(docs),
    }


def _research(b: Built, tool: bytes, t: datetime, turn: int) -> datetime:
    """The researcher sub-agent under a `research` tool call; returns when it ended."""
    agent_start = t + timedelta(milliseconds=5)
    attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}
    clock = agent_start + timedelta(milliseconds=5)
    steps: list[tuple[str, datetime, float, dict[str, Any], str | None]] = []
    for step in range(RESEARCH_STEPS):
        steps.append(("chat gpt-4o-mini", clock, 300, _chat("gpt-4o-mini", 600 + 50 * step, 40, "tool_calls"), None))
        clock += timedelta(milliseconds=310)
        steps.append(("execute_tool web_search", clock, 200, _tool("web_search", {"q": f"turn {turn} {step}"}), "web"))
        clock += timedelta(milliseconds=210)
    steps.append(("chat gpt-4o-mini", clock, 400, _chat("gpt-4o-mini", 900, 150, "stop"), None))
    clock += timedelta(milliseconds=410)
    agent = b.add(
        tool, agent_start, (clock - agent_start) / timedelta(milliseconds=1), "invoke_agent researcher", attrs
    )
    for name, start, ms, a, source in steps:
        span = b.add(agent, start, ms, name, a)
        if source:
            b.add(span, start + timedelta(milliseconds=20), 150, f"retrieval {source}", _retrieval(source, name))
    return clock + timedelta(milliseconds=5)


def _turn(b: Built, agent: bytes, t: datetime, k: int) -> datetime:
    """Turn k (1-based) under the agent, starting at t; returns when it ended."""
    turn = b.add(agent, t, 0, f"turn {k}", {"spanlake.span.category": "chain", "spanlake.turn": k})
    b.turns.append(turn)
    turn_index = len(b.spans) - 1
    clock = t + timedelta(milliseconds=2)
    tokens_in = 1200 + 400 * k
    if k == RETRIED_TURN:
        attrs = _chat("gpt-4o", tokens_in, 0, "error") | {"error.type": "RateLimitError"}
        for key in ("gen_ai.response.finish_reasons", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                    "gen_ai.response.model"):  # fmt: skip
            del attrs[key]  # refused: no answer, no usage
        b.failed_attempt = b.add(turn, clock, 120, "chat gpt-4o", attrs, status_code=2)
        b.spans[-1].status.message = "429 Too Many Requests"
        clock += timedelta(milliseconds=1120)  # the client waits a second, then retries
    finish = "stop" if k == b.turn_count else "tool_calls"
    ms = 800 + 20 * k
    span = b.add(turn, clock, ms, "chat gpt-4o", _chat("gpt-4o", tokens_in, 60 + 5 * (k % 4), finish))
    if k == RETRIED_TURN:
        b.retry = span
    clock += timedelta(milliseconds=ms + 10)
    for tool in CYCLE[(k - 1) % len(CYCLE)]:
        if tool == "send_email":
            b.add(turn, clock, 4, "validation send_policy",
                  {"spanlake.validation.name": "send_policy", "spanlake.validation.passed": True})  # fmt: skip
            clock += timedelta(milliseconds=5)
        failing = tool == "get_order" and k == FAILING_TURN
        span = b.add(turn, clock, 0, f"execute_tool {tool}", _tool(tool, {"turn": k}), status_code=2 if failing else 0)
        index = len(b.spans) - 1
        end = clock + timedelta(milliseconds=90)
        if tool in ("search_docs", "get_order"):
            source = "kb" if tool == "search_docs" else "orders"
            found = _retrieval(source, tool, 0 if failing else 2)
            b.add(span, clock + timedelta(milliseconds=10), 70, f"retrieval {source}", found)
        if failing:
            b.spans[index].status.message = FAILURE
            b.failing_tool = span
        elif tool == "research":
            end = _research(b, span, clock, k)
        _set_end(b.spans[index], end)
        clock = end + timedelta(milliseconds=10)
    _set_end(b.spans[turn_index], clock)
    return clock


def _set_end(span: Span, end: datetime) -> None:
    span.end_time_unix_nano = _ns(end)


def agent_spans(turns: int = TURNS, trace_id: bytes = TRACE) -> Built:
    """The agent run (module docstring) with `turns` turns."""
    b = Built(trace_id, turn_count=turns)
    task_attrs = {"spanlake.task.name": "support_agent", "spanlake.span.category": "task",
                  "spanlake.task.outcome": "success", "session.id": "agent-session"}  # fmt: skip
    task = b.add(None, T0, 0, "support_agent", task_attrs)
    agent_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"}
    agent = b.add(task, T0 + timedelta(milliseconds=1), 0, "invoke_agent support", agent_attrs)
    clock = T0 + timedelta(milliseconds=2)
    for k in range(1, turns + 1):
        clock = _turn(b, agent, clock, k) + timedelta(milliseconds=5)
    _set_end(b.spans[1], clock)
    for name in ("json_schema", "no_pii"):
        b.add(task, clock, 3, f"validation {name}",
              {"spanlake.validation.name": name, "spanlake.validation.passed": True})  # fmt: skip
        clock += timedelta(milliseconds=4)
    _set_end(b.spans[0], clock + timedelta(milliseconds=1))
    return b


def write_agent_lake(root: Path, big: bool = False) -> DataDir:
    """A data directory holding the 300-span run (and with `big` the ~2,000-span one) in project
    `agents`, with its prices.toml."""
    dd = DataDir(root).create()
    (dd.root / "prices.toml").write_text(PRICES)
    writer = LakeWriter(dd)
    resource = {"service.name": "support-agent", "spanlake.project": PROJECT}
    runs = [agent_spans()] + ([agent_spans(BIG_TURNS, BIG_TRACE)] if big else [])
    for run in runs:
        batch = decode_spans(make_request(run.spans, resource, scope="agent-app"), ingested_at_ns=time.time_ns())
        writer.write_batch(SPANS, batch, uuid.uuid4().hex)
    return dd
