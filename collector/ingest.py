"""The one code path both receivers share: parse, validate, make durable, answer.

HTTP (protobuf or JSON) and gRPC hand over raw bytes; this module parses them, applies the
redaction rules (collector/redact.py), drops invalid items (reported as partial success),
appends the rest to the write-ahead log and returns only once they are fsynced.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from spanlake.collector.errors import InvalidRequest
from spanlake.collector.redact import PROJECT_REJECTED, Redaction, Redactor, redact_request, scrub_message
from spanlake.collector.redact_rules import RuleSet
from spanlake.collector.stats import IngestStats
from spanlake.collector.validate import (
    DEFAULT_MAX_FUTURE_S,
    DEFAULT_MAX_PAST_S,
    Verdict,
    validate_logs,
    validate_traces,
)
from spanlake.collector.validate_metrics import validate_metrics
from spanlake.collector.wal import KIND_LOGS, KIND_METRICS, KIND_TRACES, Record, WriteAheadLog
from spanlake.storage.layout import DEFAULT_PROJECT

Encoding = Literal["protobuf", "json"]
Signal = Literal["traces", "logs", "metrics"]


@dataclass(frozen=True)
class SignalSpec:
    """What differs between the trace, log and metric signals."""

    name: Signal
    request_type: type[Message]
    response_type: type[Message]
    wal_kind: int
    item_noun: str  # for messages: "spans", "log records", "data points"


TRACES = SignalSpec("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, KIND_TRACES, "spans")
LOGS = SignalSpec("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, KIND_LOGS, "log records")
METRICS = SignalSpec("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse, KIND_METRICS, "data points")
SIGNALS = (TRACES, LOGS, METRICS)

# --- OTLP/JSON ------------------------------------------------------------------------
# OTLP/JSON differs from proto3 JSON in one way that matters here: trace and span ids are
# hex, not base64. We rewrite them to base64 and let protobuf's ParseDict do the rest
# (lowerCamelCase keys, int64 as string or number, enums as integers, unknown fields).

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(obj: dict[str, Any], where: str, scrub: Callable[[str], str]) -> None:
    for key in _ID_KEYS:
        v = obj.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise InvalidRequest(f"{where}.{key} must be a hex string")
        try:
            obj[key] = base64.b64encode(bytes.fromhex(v)).decode("ascii")
        except ValueError:
            raise InvalidRequest(f"{where}.{key} is not valid hex: {scrub(v)[:40]!r}") from None  # redact, then cut


def _each(obj: dict[str, Any], *keys: str) -> list[Any]:
    for k in keys:
        v = obj.get(k)
        if v is not None:
            if not isinstance(v, list):
                raise InvalidRequest(f"{k} must be an array")
            return v
    return []


_JSON_PATHS: dict[str, tuple[str, str, str]] = {  # top-level list, scoped list, item list
    "traces": ("resourceSpans", "scopeSpans", "spans"),
    "logs": ("resourceLogs", "scopeLogs", "logRecords"),
    "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
}
_SNAKE = {
    "resourceSpans": "resource_spans",
    "scopeSpans": "scope_spans",
    "resourceLogs": "resource_logs",
    "scopeLogs": "scope_logs",
    "logRecords": "log_records",
    "resourceMetrics": "resource_metrics",
    "scopeMetrics": "scope_metrics",
    "dataPoints": "data_points",
    "exponentialHistogram": "exponential_histogram",
}
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def _fix_metric_ids(metric: dict[str, Any], where: str, scrub: Callable[[str], str]) -> None:
    """Exemplars carry trace and span ids: hex in OTLP/JSON, as in spans."""
    for kind in _METRIC_DATA:
        data = metric.get(kind, metric.get(_SNAKE.get(kind, kind)))
        if not isinstance(data, dict):
            continue
        for n, point in enumerate(_each(data, "dataPoints", "data_points")):
            if isinstance(point, dict):
                for e, exemplar in enumerate(_each(point, "exemplars")):
                    if isinstance(exemplar, dict):
                        _hex_ids_to_base64(exemplar, f"{where}.{kind}.dataPoints[{n}].exemplars[{e}]", scrub)


def _fix_json_ids(doc: Any, signal: Signal, scrub: Callable[[str], str]) -> None:
    if not isinstance(doc, dict):
        raise InvalidRequest("the request body must be a JSON object")
    top, scoped, items = _JSON_PATHS[signal]
    for i, r in enumerate(_each(doc, top, _SNAKE[top])):
        for j, s in enumerate(_each(r, scoped, _SNAKE[scoped]) if isinstance(r, dict) else []):
            for k, item in enumerate(_each(s, items, _SNAKE.get(items, items)) if isinstance(s, dict) else []):
                if not isinstance(item, dict):
                    continue
                where = f"{top}[{i}].{scoped}[{j}].{items}[{k}]"
                if signal == "metrics":
                    _fix_metric_ids(item, where, scrub)
                    continue
                _hex_ids_to_base64(item, where, scrub)
                for n, link in enumerate(_each(item, "links")):
                    if isinstance(link, dict):
                        _hex_ids_to_base64(link, f"{where}.links[{n}]", scrub)


def parse_request(body: bytes, encoding: Encoding, spec: SignalSpec, scrub: Callable[[str], str] = str) -> Any:
    """Parse an OTLP export request body, raising InvalidRequest with a precise reason.

    `scrub` is applied to a value of the body before a reason quotes part of it."""
    if encoding == "protobuf":
        try:
            return spec.request_type.FromString(body)
        except DecodeError as e:
            raise InvalidRequest(f"body is not a valid OTLP protobuf {spec.request_type.__name__}: {e}") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"body is not valid JSON: {e}") from None
    _fix_json_ids(doc, spec.name, scrub)
    try:
        return json_format.ParseDict(doc, spec.request_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as e:
        raise InvalidRequest(f"body is not a valid OTLP/JSON {spec.request_type.__name__}: {e}") from None


def response_for(spec: SignalSpec, verdict: Verdict) -> Message:
    """The export response: empty on full success, partial_success when items were rejected."""
    resp = spec.response_type()
    if verdict.rejected:
        ps = resp.partial_success
        if spec.name == "traces":
            ps.rejected_spans = verdict.rejected
        elif spec.name == "metrics":
            ps.rejected_data_points = verdict.rejected
        else:
            ps.rejected_log_records = verdict.rejected
        ps.error_message = verdict.message
    return resp


_VALIDATORS = {"traces": validate_traces, "logs": validate_logs, "metrics": validate_metrics}


class Ingestor:
    """Validates requests, applies the redaction rules, and makes them durable in the write-ahead log."""

    def __init__(
        self,
        wal: WriteAheadLog,
        max_future_s: int = DEFAULT_MAX_FUTURE_S,
        redactor: Redactor | None = None,
        default_project: str = DEFAULT_PROJECT,
        max_past_s: int = DEFAULT_MAX_PAST_S,
    ) -> None:
        self.wal = wal
        self.max_future_s = max_future_s
        self.max_past_s = max_past_s
        self.redactor = redactor
        self.default_project = default_project  # decides which redaction rules apply, as in the lake
        self.accepted = {spec.name: 0 for spec in SIGNALS}
        self.rejected = {spec.name: 0 for spec in SIGNALS}
        self.stats = IngestStats()  # for /metrics (the receivers count requests and refusals)

    def _parse_redacted(
        self, spec: SignalSpec, body: bytes, encoding: Encoding, project: str | None, rules: RuleSet
    ) -> tuple[Message, Redaction]:
        def scrub(text: str) -> str:
            return scrub_message(rules, text, project)

        try:
            request = parse_request(body, encoding, spec, scrub)
        except InvalidRequest as e:  # the reason may quote the body
            raise InvalidRequest(scrub(e.message)) from None
        return request, redact_request(request, spec.name, rules, project, self.default_project)

    async def export(self, spec: SignalSpec, body: bytes, encoding: Encoding, project: str | None = None) -> Message:
        """Parse, redact, validate and durably store one request; return the OTLP response message."""
        rules = self.redactor.current() if self.redactor is not None else None
        if rules is None:
            request, redaction = parse_request(body, encoding, spec), None
        else:  # regexes over every string: off the event loop
            request, redaction = await asyncio.to_thread(self._parse_redacted, spec, body, encoding, project, rules)
        validate = _VALIDATORS[spec.name]
        window = {"max_future_s": self.max_future_s, "max_past_s": self.max_past_s}
        verdict = validate(request, project, **window)  # type: ignore[arg-type]
        if redaction is not None and redaction.rejected:
            verdict.reject(PROJECT_REJECTED, redaction.rejected)
        if verdict.accepted:
            # Store the bytes received when nothing was dropped and no rules apply: no
            # re-serialization cost. With rules, what is stored is always the rewritten request
            # (the body may hold unknown fields, which the rules never see).
            as_sent = encoding == "protobuf" and not verdict.rejected and redaction is None
            raw = body if as_sent else request.SerializeToString()
            fut = self.wal.append(Record(spec.wal_kind, time.time_ns(), project, raw))
            await asyncio.wrap_future(fut)
        self.accepted[spec.name] += verdict.accepted
        self.rejected[spec.name] += verdict.rejected
        self.stats.items(spec.name, verdict.accepted, verdict.reasons)
        return response_for(spec, verdict)

    async def append(self, record: Record) -> None:
        """Make an already validated record durable (labels and other non-OTLP events)."""
        await asyncio.wrap_future(self.wal.append(record))
