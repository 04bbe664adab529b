"""Traces sent to a real collector over OTLP/HTTP, and calls to its labels and datasets API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import RunningCollector
from tests.factories import make_request, make_span

PROJECT = "shop"
MS = 1_000_000


@dataclass(frozen=True)
class Sent:
    """A question-answering trace: root task, retrieval, one model call."""

    trace_id: str
    llm_span_id: str
    question: str
    answer: str


def qa_trace(
    question: str,
    answer: str,
    docs: tuple[str, ...] = (),
    variables: dict[str, Any] | None = None,
    model: str = "gpt-4o-mini",
    prompt_version: str = "v2",
    start_ns: int | None = None,
) -> tuple[list[Span], Sent]:
    """Spans of one trace: `answer` (task) → `retrieve` (documents) then `chat <model>` (messages)."""
    t0 = start_ns or time.time_ns() - 60_000 * MS
    root = make_span("answer", start_ns=t0, duration_ns=900 * MS, attributes={"spanlake.task.name": "answer"})
    retrieve = make_span(
        "retrieve",
        trace_id=root.trace_id,
        parent_span_id=root.span_id,
        start_ns=t0 + 10 * MS,
        duration_ns=100 * MS,
        attributes={"openinference.span.kind": "RETRIEVER"}
        | {f"retrieval.documents.{i}.document.content": d for i, d in enumerate(docs)}
        | {f"retrieval.documents.{i}.document.id": f"doc-{i}" for i in range(len(docs))},
    )
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "Answer from the context."}]},
        {"role": "user", "parts": [{"type": "text", "content": question}]},
    ]
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.prompt.name": "qa",
        "gen_ai.prompt.version": prompt_version,
        "gen_ai.input.messages": json.dumps(messages),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
    }
    if variables is not None:
        attrs["llm.prompt_template.variables"] = json.dumps(variables)
        attrs["llm.prompt_template.template"] = "Q: {question}"
    llm = make_span(
        f"chat {model}",
        trace_id=root.trace_id,
        parent_span_id=root.span_id,
        start_ns=t0 + 200 * MS,
        duration_ns=600 * MS,
        attributes=attrs,
    )
    return [root, retrieve, llm], Sent(root.trace_id.hex(), llm.span_id.hex(), question, answer)


def send(collector: RunningCollector, spans: list[Span], project: str = PROJECT) -> None:
    body = make_request(spans, resource={"service.name": "support-bot", "spanlake.project": project})
    r = httpx.post(
        f"{collector.http}/v1/traces",
        content=body.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text


def api(collector: RunningCollector, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
    """Call /api/v1<path> with a JSON body."""
    content = None if body is None else json.dumps(body)
    return httpx.request(
        method,
        f"{collector.http}/api/v1{path}",
        content=content,
        params={k: v for k, v in params.items() if v is not None},
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def label(collector: RunningCollector, trace_id: str, author: str, **fields: Any) -> str:
    """A reviewer's label in PROJECT; returns its label id."""
    body = {"trace_id": trace_id, "source": "human", "author": author, "project": PROJECT} | fields
    r = api(collector, "POST", "/labels", body)
    assert r.status_code == 200, r.text
    return r.json()["label_id"]
