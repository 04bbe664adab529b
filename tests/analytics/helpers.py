"""Write hand-built spans (and label events) into a lake through the collector's decoder and the lake writer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.collector.decode import decode_labels, decode_spans
from spanlake.evaluators.result import Result, label_event
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import LABELS, SPANS
from spanlake.storage.writer import LakeWriter
from tests.factories import make_request, make_span

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # every test trace starts at or after this instant
T0_NS = int(T0.timestamp()) * 10**9
MS = 1_000_000  # ns


def write(data_dir: Path, spans: list[Span], resource: dict[str, Any] | None = None, scope: str = "tests") -> None:
    """Decode an export request (its spans from instrumentation `scope`) exactly as the collector
    does and publish it as one file per partition."""
    batch = decode_spans(make_request(spans, resource, scope), ingested_at_ns=time.time_ns())
    LakeWriter(DataDir(data_dir).create()).write_batch(SPANS, batch, uuid.uuid4().hex)


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def span(
    trace: int,
    span_id: int,
    parent: int | None = None,
    *,
    at_ms: float = 0,
    ms: float = 1,
    name: str = "span",
    error: bool = False,
    **attributes: Any,
) -> Span:
    """A span of trace `trace`, `at_ms` after T0, lasting `ms`; attribute names use `__` for dots."""
    attrs = {k.replace("__", "."): v for k, v in attributes.items()}
    return make_span(
        name=name,
        trace_id=tid(trace),
        span_id=sid(span_id),
        parent_span_id=sid(parent) if parent is not None else b"",
        start_ns=T0_NS + int(at_ms * MS),
        duration_ns=int(ms * MS),
        attributes=attrs,
        status_code=2 if error else 0,
    )


def call_cost(row: dict[str, Any], inp: int, cr: int, cw: int, out: int, rs: int, cw_1h: int = 0) -> float:
    """The cost formula of analytics.spans applied to one price row (rates per million tokens):
    `cw_1h` of the `cw` cache writes are 1-hour ones, the rest 5-minute ones."""
    return (
        (inp - cr - cw) * row["input_mtok"]
        + cr * row["cache_read_mtok"]
        + (cw - cw_1h) * row["cache_write_mtok"]
        + cw_1h * row["cache_write_1h_mtok"]
        + (out - rs) * row["output_mtok"]
        + rs * row["reasoning_mtok"]
    ) / 1e6 + row["request_price"]


def llm(model: str, inp: int, version: str = "v1", **more: Any) -> dict[str, Any]:
    """Attributes of a chat call to provider `acme` with `inp` input tokens and a prompt version."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": model,
        "gen_ai.prompt.version": version,
        "gen_ai.usage.input_tokens": inp,
        **more,
    }


def unix_ns(at: datetime) -> int:
    return int(at.timestamp()) * 10**9 + at.microsecond * 1000


def write_labels(data_dir: Path, events: list[dict[str, Any]]) -> None:
    """Label events (the dicts of a WAL KIND_LABELS record) decoded and published as the flusher does."""
    batch = decode_labels(orjson.dumps(events), time.time_ns(), None)
    LakeWriter(DataDir(data_dir).create()).write_batch(LABELS, batch, uuid.uuid4().hex)


def judge_event(
    trace: int,
    at: datetime,
    verdict: str | None,
    *,
    name: str = "g",
    version: int = 1,
    span_id: int | None = None,
    decides: bool = False,
    score: float | None = None,
    label_id: str | None = None,
    **result: Any,
) -> dict[str, Any]:
    """An evaluator's label event (evaluators.result.label_event) on trace `trace` (its span
    `span_id`), set at `at`; `label_id` replaces the deterministic id (a re-judged version)."""
    event = label_event(
        Result(verdict, score, **result),  # type: ignore[arg-type]
        project="default",
        trace_id=tid(trace).hex(),
        span_id=sid(span_id).hex() if span_id is not None else None,
        name=name,
        version=version,
        decides_outcome=decides,
        created_at_unix_nano=unix_ns(at),
    )
    return event | ({"label_id": label_id} if label_id else {})


def human_event(trace: int, at: datetime, verdict: str | None, *, author: str = "ana", span_id: int | None = None,
                label_id: str | None = None, **fields: Any) -> dict[str, Any]:  # fmt: skip
    """A reviewer's label event on trace `trace` (its span `span_id`), set at `at`."""
    return {
        "label_id": label_id or uuid.uuid4().hex,
        "trace_id": tid(trace).hex(),
        "span_id": sid(span_id).hex() if span_id is not None else None,
        "created_at_unix_nano": unix_ns(at),
        "project": "default",
        "source": "human",
        "author": author,
        "verdict": verdict,
        **fields,
    }
