"""Decode OTLP export requests into lake rows (pure: protobuf in, columns out, no I/O).

The single resource → scope → span loop lives here and serves both receivers and both
signals. Rows come out grouped by lake partition (project, date, hour) as column lists
keyed by storage.schema names, ready for `storage.writer`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector import wire
from spanlake.collector.content import split_content
from spanlake.collector.normalize import NORMALIZED_COLUMNS, normalize_row
from spanlake.collector.values import any_value, key_values, to_json, to_json_or_none
from spanlake.sdk import attributes as A
from spanlake.storage.layout import DEFAULT_PROJECT, PartitionKey
from spanlake.storage.schema import DATASET_EVENTS, LABELS, LOGS, SPAN_KINDS, SPANS, STATUS_CODES, Table

Batch = dict[PartitionKey, dict[str, list[Any]]]

_EPOCH_DAY_NS = 86_400 * 10**9


def partition_of(project: str, time_ns: int) -> PartitionKey:
    """The lake partition (project, UTC date, UTC hour) of a row starting at time_ns."""
    dt = datetime.fromtimestamp(time_ns // 10**9, tz=UTC)
    return PartitionKey(project, dt.date(), dt.hour)


def resource_project(resource_attrs: dict[str, Any], default: str = DEFAULT_PROJECT) -> str:
    """The project a resource names (`spanlake.project`, then `openinference.project.name`)."""
    for key in (A.RESOURCE_PROJECT, A.OI_PROJECT_NAME):
        v = resource_attrs.get(key)
        if isinstance(v, str) and v:
            return v
    return default


def _columns(table_names: tuple[str, ...]) -> dict[str, list[Any]]:
    return {n: [] for n in table_names}


def decode_spans(
    request: ExportTraceServiceRequest | bytes,
    ingested_at_ns: int,
    project: str | None = None,
    default_project: str = DEFAULT_PROJECT,
) -> Batch:
    """Turn an export request (message or serialized bytes) into span columns grouped by partition.

    `project` (set by an API key) overrides the resource's own project attribute. Bytes go
    through the C accelerator when it is built (see collector/wire.py). Each span becomes one
    row tuple in SPANS column order; each partition's rows are transposed into columns at the end.
    """
    traces = wire.traces_from_bytes(request) if isinstance(request, bytes) else wire.traces_from_message(request)
    rows_by_key: dict[PartitionKey, list[tuple[Any, ...]]] = {}
    ingested_us = ingested_at_ns // 1000
    for resource_attrs, scopes in traces:
        span_project = project or resource_project(resource_attrs, default_project)
        service = resource_attrs.get(A.SERVICE_NAME)
        context = (
            to_json(resource_attrs),
            service if isinstance(service, str) else None,
        )
        hours: dict[int, list[tuple[Any, ...]]] = {}  # UTC hour since the epoch -> its partition's rows
        for scope_name, scope_version, scope_attrs, spans in scopes:
            scope = (scope_name or None, scope_version or None, to_json_or_none(scope_attrs))
            for span in spans:
                start = span[_START]
                rows = hours.get(start // _HOUR_NS)
                if rows is None:
                    key = partition_of(span_project, start)
                    rows = hours[start // _HOUR_NS] = rows_by_key.setdefault(key, [])
                rows.append(_span_row(span, context, scope, ingested_us))
    return {key: _span_columns(rows) for key, rows in rows_by_key.items()}


_HOUR_NS = 3600 * 10**9

# Positions in wire.SPAN_FIELDS.
(_TRACE_ID, _SPAN_ID, _STATE, _PARENT, _FLAGS, _NAME, _KIND, _START, _END, _ATTRS, _DROPPED_ATTRS, _EVENTS,
 _DROPPED_EVENTS, _LINKS, _DROPPED_LINKS, _STATUS_MESSAGE, _STATUS_CODE) = range(len(wire.SPAN_FIELDS))  # fmt: skip
_NO_EVENTS: list[dict[str, Any]] = []


def _span_row(
    span: tuple[Any, ...],
    context: tuple[str, str | None],
    scope: tuple[str | None, str | None, str | None],
    ingested_us: int,
) -> tuple[Any, ...]:
    """One span as a row: a tuple of values in SPANS.names order."""
    attrs = span[_ATTRS]
    raw_events = span[_EVENTS]
    events = (
        [
            {
                "time_unix_nano": t,
                "name": name,
                "attributes": ev_attrs,
                **({"dropped_attributes_count": dropped} if dropped else {}),
            }
            for t, name, ev_attrs, dropped in raw_events
        ]
        if raw_events
        else _NO_EVENTS
    )
    raw_links = span[_LINKS]
    links = (
        [
            {
                "trace_id": trace_id.hex(),
                "span_id": span_id.hex(),
                **({"trace_state": state} if state else {}),
                "attributes": link_attrs,
                **({"flags": flags} if flags else {}),
            }
            for trace_id, span_id, state, link_attrs, _dropped, flags in raw_links
        ]
        if raw_links
        else None
    )
    start = span[_START]
    end = span[_END]
    if end < start:
        end = start
    code = span[_STATUS_CODE]
    status_code = STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "UNSET"
    facts, content = split_content(attrs)
    kind = span[_KIND]
    return (
        span[_TRACE_ID].hex(),
        span[_SPAN_ID].hex(),
        span[_PARENT].hex() or None,
        span[_STATE] or None,
        span[_NAME],
        SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else "UNSPECIFIED",
        start // 1000,
        end // 1000,
        start,
        end - start,
        status_code,
        span[_STATUS_MESSAGE] or None,
        context[1],
        scope[0],
        scope[1],
        *normalize_row(attrs, events, start, status_code, scope[0]),
        span[_FLAGS] or None,
        to_json(facts),
        to_json(content) if content else None,
        to_json(events) if events else None,
        to_json(links) if links else None,
        context[0],
        scope[2],
        span[_DROPPED_ATTRS] or None,
        span[_DROPPED_EVENTS] or None,
        span[_DROPPED_LINKS] or None,
        ingested_us,
    )


# _span_row's tuple: SPANS' first 15 columns, every normalized column (normalize_row's tuple,
# unpacked whole: normalized columns appended by later schema versions come last in SPANS but
# not here), then SPANS' other columns. _SPANS_ORDER puts the columns back in SPANS order.
_NORMALIZED_AT = 15
_ROW_LAYOUT = (
    *SPANS.names[:_NORMALIZED_AT],
    *NORMALIZED_COLUMNS,
    *(n for n in SPANS.names[_NORMALIZED_AT:] if n not in NORMALIZED_COLUMNS),
)
if sorted(SPANS.names) != sorted(_ROW_LAYOUT) or _ROW_LAYOUT[_NORMALIZED_AT + len(NORMALIZED_COLUMNS)] != "flags":
    raise RuntimeError("SPANS columns and decode._span_row are out of step")
_SPANS_ORDER = tuple((name, _ROW_LAYOUT.index(name)) for name in SPANS.names)


def _span_columns(rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """_span_row tuples → {column: values} in SPANS order."""
    cols = list(map(list, zip(*rows, strict=True)))
    return {name: cols[at] for name, at in _SPANS_ORDER}


def log_time_ns(record: Any, ingested_at_ns: int) -> int:
    """A log record's time: its event time, else its observed time, else when it arrived."""
    return record.time_unix_nano or record.observed_time_unix_nano or ingested_at_ns


def decode_logs(
    request: ExportLogsServiceRequest,
    ingested_at_ns: int,
    project: str | None = None,
    default_project: str = DEFAULT_PROJECT,
) -> Batch:
    """Turn a logs export request into log columns grouped by partition."""
    out: Batch = {}
    ingested_us = ingested_at_ns // 1000
    for rl in request.resource_logs:
        resource_attrs = key_values(rl.resource.attributes)
        log_project = project or resource_project(resource_attrs, default_project)
        resource_json = to_json(resource_attrs)
        service = resource_attrs.get(A.SERVICE_NAME)
        for sl in rl.scope_logs:
            scope_name = sl.scope.name or None
            scope_version = sl.scope.version or None
            for rec in sl.log_records:
                t = log_time_ns(rec, ingested_at_ns)
                key = partition_of(log_project, t)
                cols = out.get(key)
                if cols is None:
                    cols = out[key] = _columns(LOGS.names)
                attrs = key_values(rec.attributes)
                event_name = rec.event_name or attrs.get("event.name")
                body = any_value(rec.body) if rec.HasField("body") else None
                digest = hashlib.blake2b(rec.SerializeToString(deterministic=True), digest_size=16)
                digest.update(resource_json.encode())
                cols["record_id"].append(digest.hexdigest())
                cols["trace_id"].append(rec.trace_id.hex() or None)
                cols["span_id"].append(rec.span_id.hex() or None)
                cols["time"].append(t // 1000)
                cols["time_unix_nano"].append(rec.time_unix_nano)
                cols["observed_time_unix_nano"].append(rec.observed_time_unix_nano)
                cols["severity_number"].append(rec.severity_number or None)
                cols["severity_text"].append(rec.severity_text or None)
                cols["event_name"].append(str(event_name) if event_name else None)
                cols["body"].append(None if body is None else to_json(body))
                cols["attributes"].append(to_json(attrs))
                cols["resource_attributes"].append(resource_json)
                cols["service_name"].append(service if isinstance(service, str) else None)
                cols["scope_name"].append(scope_name)
                cols["scope_version"].append(scope_version)
                cols["flags"].append(rec.flags or None)
                cols["dropped_attributes_count"].append(rec.dropped_attributes_count or None)
                cols["ingested_at"].append(ingested_us)
    return out


def decode_labels(
    body: bytes, ingested_at_ns: int, project: str | None, default_project: str = DEFAULT_PROJECT
) -> Batch:
    """Turn a WAL labels record (JSON array of label events, validated on receipt) into label columns."""
    return _decode_events(LABELS, body, ingested_at_ns, project, default_project)


def decode_dataset_events(
    body: bytes, ingested_at_ns: int, project: str | None, default_project: str = DEFAULT_PROJECT
) -> Batch:
    """Turn a WAL dataset record (JSON array of membership events, validated on receipt) into columns."""
    return _decode_events(DATASET_EVENTS, body, ingested_at_ns, project, default_project)


def _decode_events(table: Table, body: bytes, ingested_at_ns: int, project: str | None, default_project: str) -> Batch:
    """JSON events with `created_at_unix_nano` (and optional `*_unix_nano` times) into `table`'s columns."""
    out: Batch = {}
    ingested_us = ingested_at_ns // 1000
    for event in orjson.loads(body):
        created_ns = event["created_at_unix_nano"]
        key = partition_of(event.get("project") or project or default_project, created_ns)
        cols = out.get(key)
        if cols is None:
            cols = out[key] = _columns(table.names)
        for name in table.names:
            if name == "created_at":
                cols[name].append(created_ns // 1000)
            elif name == "ingested_at":
                cols[name].append(ingested_us)
            elif name == "metadata":
                cols[name].append(to_json_or_none(event.get("metadata")))
            elif name == "trace_start":
                ns = event.get("trace_start_unix_nano")
                cols[name].append(None if ns is None else ns // 1000)
            else:
                cols[name].append(event.get(name))
    return out
