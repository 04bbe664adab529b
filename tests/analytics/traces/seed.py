"""A small lake with known traces, written through the collector's decoders and the lake writer.

Project `shop` (window = 2025-06-02, previous day = the comparison period):

  trace 1  T0         task `answer` success, 1000 ms, session s1; llm gpt-4o-mini 100 in / 50 out
                      (content: OTel messages, the user's holds markup); validation no_pii passed;
                      retrieval with two scored documents
  trace 2  T0 + 1 min task `answer`, 3000 ms, session s1, attribute customer.tier = gold;
                      llm gpt-4o 200 in / 20 out (messages only as openai-v2 log events);
                      validation json_schema failed → failure; fallback + escalation markers
  trace 3  T0 + 2 min root `handle` ERROR, 500 ms, session s2; llm gpt-4o-mini ERROR 10 in → failure
  trace 0  T0 - 1 day task `answer` success, 2000 ms, llm gpt-4o-mini 100 / 50 (previous period)

Project `other`: trace 9 at T0 (never visible from `shop`).

Prices (prices.toml): gpt-4o-mini $1 / $2 per Mtok in / out, gpt-4o $10 / $20, so
trace 1 costs 0.0002, trace 2 0.0024, trace 3 0.00001, trace 0 0.0002.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.collector.decode import decode_logs, decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import LOGS, SPANS
from spanlake.storage.writer import LakeWriter
from tests.factories import any_value, kvs, make_logs_request, make_request, make_span

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
MS = 1_000_000
MARKUP = "hello <script>window.__xss = 1</script> <img src=x onerror=alert(1)>"
PRICES = """[[price]]
model = "gpt-4o-mini"
input_mtok = 1.0
output_mtok = 2.0

[[price]]
model = "gpt-4o"
input_mtok = 10.0
output_mtok = 20.0
"""


def tid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def trace_hex(n: int) -> str:
    return tid(n).hex()


def _ns(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _span(trace: int, span: int, parent: int | None, start: datetime, ms: float, name: str, **kw: Any) -> Span:
    error = kw.pop("error", False)
    attrs = kw.pop("attrs", {})
    return make_span(
        name=name,
        trace_id=tid(trace),
        span_id=sid(span),
        parent_span_id=sid(parent) if parent is not None else b"",
        start_ns=_ns(start),
        duration_ns=int(ms * MS),
        attributes=attrs,
        status_code=2 if error else 0,
    )


def _llm(model: str, tokens_in: int, tokens_out: int, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": tokens_in,
        "gen_ai.usage.output_tokens": tokens_out,
        **extra,
    }


def _task(name: str, session: str, outcome: str | None = None, **extra: Any) -> dict[str, Any]:
    attrs = {"spanlake.task.name": name, "spanlake.span.category": "task", "session.id": session, **extra}
    if outcome:
        attrs["spanlake.task.outcome"] = outcome
    return attrs


def _log(trace: int, span: int, at: datetime, event: str, body: dict[str, Any]) -> LogRecord:
    rec = LogRecord(trace_id=tid(trace), span_id=sid(span), time_unix_nano=_ns(at), event_name=event)
    rec.body.CopyFrom(any_value(body))
    rec.attributes.extend(kvs({"gen_ai.system": "openai"}))
    return rec


def spans_shop() -> list[Span]:
    messages_in = json.dumps([{"role": "user", "parts": [{"type": "text", "content": MARKUP}]}])
    messages_out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hi there"}]}])
    docs = json.dumps([{"id": "doc-a", "score": 0.9, "content": "Returns: 30 days."}, {"id": "doc-b", "score": 0.3}])
    t1, t2, t3, t0 = T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), T0 - timedelta(days=1)
    return [
        _span(1, 10, None, t1, 1000, "answer", attrs=_task("answer", "s1", "success")),
        _span(1, 11, 10, t1 + timedelta(milliseconds=10), 100, "retrieval kb",
              attrs={"spanlake.span.category": "retrieval", "gen_ai.data_source.id": "kb",
                     "gen_ai.retrieval.documents": docs}),
        _span(1, 12, 10, t1 + timedelta(milliseconds=200), 600, "chat gpt-4o-mini",
              attrs=_llm("gpt-4o-mini", 100, 50, **{"gen_ai.input.messages": messages_in,
                                                    "gen_ai.output.messages": messages_out})),
        _span(1, 13, 10, t1 + timedelta(milliseconds=900), 5, "validation no_pii",
              attrs={"spanlake.validation.name": "no_pii", "spanlake.validation.passed": True}),
        _span(2, 20, None, t2, 3000, "answer", attrs=_task("answer", "s1", None, **{"customer.tier": "gold"})),
        _span(2, 21, 20, t2 + timedelta(milliseconds=100), 2000, "chat gpt-4o", attrs=_llm("gpt-4o", 200, 20)),
        _span(2, 22, 20, t2 + timedelta(milliseconds=2200), 5, "validation json_schema",
              attrs={"spanlake.validation.name": "json_schema", "spanlake.validation.passed": False,
                     "spanlake.validation.errors": ["field 'answer' missing"]}),
        _span(2, 23, 20, t2 + timedelta(milliseconds=2300), 100, "fallback template",
              attrs={"spanlake.fallback.reason": "invalid json", "spanlake.fallback.to": "template"}),
        _span(2, 24, 20, t2 + timedelta(milliseconds=2500), 10, "escalation human",
              attrs={"spanlake.escalation.reason": "still invalid", "spanlake.escalation.to": "human"}),
        _span(3, 30, None, t3, 500, "handle", error=True, attrs={"session.id": "s2"}),
        _span(3, 31, 30, t3 + timedelta(milliseconds=10), 400, "chat gpt-4o-mini", error=True,
              attrs=_llm("gpt-4o-mini", 10, 0, **{"error.type": "InternalServerError"})),
        _span(4, 40, None, t0, 2000, "answer", attrs=_task("answer", "s0", "success")),
        _span(4, 41, 40, t0 + timedelta(milliseconds=10), 1500, "chat gpt-4o-mini", attrs=_llm("gpt-4o-mini", 100, 50)),
    ]  # fmt: skip


def logs_shop() -> list[LogRecord]:
    at = T0 + timedelta(minutes=1, milliseconds=100)
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": '{"answer": 42}'}}
    return [
        _log(2, 21, at, "gen_ai.system.message", {"content": "You are a shop assistant."}),
        _log(2, 21, at + timedelta(microseconds=1), "gen_ai.user.message", {"content": "Where is my parcel?"}),
        _log(2, 21, at + timedelta(milliseconds=2000), "gen_ai.choice", choice),
    ]


def write_lake(root: Path) -> DataDir:
    """Write the seeded lake (and its prices.toml) under `root`."""
    dd = DataDir(root).create()
    writer = LakeWriter(dd)
    now = time.time_ns()
    resource = {"service.name": "shop-api", "spanlake.project": "shop"}
    spans = decode_spans(make_request(spans_shop(), resource), ingested_at_ns=now)
    writer.write_batch(SPANS, spans, uuid.uuid4().hex)
    logs = decode_logs(make_logs_request(logs_shop(), resource), ingested_at_ns=now)
    writer.write_batch(LOGS, logs, uuid.uuid4().hex)
    other = [_span(9, 90, None, T0, 100, "other root", attrs={"session.id": "s1"})]
    batch = decode_spans(make_request(other, {"service.name": "x", "spanlake.project": "other"}), ingested_at_ns=now)
    writer.write_batch(SPANS, batch, uuid.uuid4().hex)
    (dd.root / "prices.toml").write_text(PRICES)
    return dd
