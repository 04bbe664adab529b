"""Write hand-built spans into a lake through the collector's decoder and the lake writer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
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


def call_cost(row: dict[str, Any], inp: int, cr: int, cw: int, out: int, rs: int) -> float:
    """The cost formula of analytics.spans applied to one price row (rates per million tokens)."""
    return (
        (inp - cr - cw) * row["input_mtok"]
        + cr * row["cache_read_mtok"]
        + cw * row["cache_write_mtok"]
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
