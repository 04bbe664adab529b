"""One trace in full: its spans as a tree, their log records, the conversation, retrieved
documents, validations and markers (policy, fallback, escalation).

Spans are found by trace id; a time hint (`around`, e.g. from the trace list) restricts the
read to the partitions of the days around it, which keeps the lookup fast on a big lake.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import duckdb
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import BILLABLE_CATEGORIES, Filters, SpanSource
from spanlake.analytics.traces.filters import HORIZON, SKEW
from spanlake.analytics.traces.lazy_json import JSONObject
from spanlake.analytics.traces.messages import Message, as_text, loads, merge_conversation, span_messages
from spanlake.analytics.traces.relation import price_rows
from spanlake.storage.reader import ROOT_PREDICATE, fetch_arrow, retry_vanished
from spanlake.storage.trace_index import trace_hours
from spanlake.storage.window import connect_window

MARKER_PREFIXES = {"spanlake.policy.": "policy", "spanlake.fallback.": "fallback", "spanlake.escalation.": "escalation"}
VALIDATION_ERRORS = "spanlake.validation.errors"
RECENT = timedelta(days=2)  # without a hint, look here before reading the whole lake
LOG_DAYS = 1  # log records are read from the days around the spans
Cost = tuple[float | None, bool, str | None]  # cost_usd, unpriced, duplicate_of
JSON_COLUMNS = ("attributes", "content", "events", "links", "resource_attributes", "scope_attributes")

SPANS_SQL = f"""SELECT DISTINCT ON (project, span_id) * EXCLUDE (date, hour),
  duration_ns / 1e6 AS duration_ms, {ROOT_PREDICATE} AS is_root
FROM spans_raw WHERE trace_id = $trace_id AND {{where}}
ORDER BY project, span_id, ingested_at"""
LOGS_SQL = """SELECT DISTINCT ON (record_id) record_id, span_id, time, time_unix_nano, observed_time_unix_nano,
  severity_text, event_name, body, attributes, scope_name
FROM logs_raw WHERE trace_id = $trace_id AND project = $project AND {where}
ORDER BY record_id"""


@dataclass
class TraceDetail:
    """Everything the trace view shows. `spans` are in tree order (parents before children,
    siblings by start time), each a dict of the span's columns plus `depth`, `offset_ms`
    (start relative to the trace's start), `cost_usd`, `unpriced`, `duplicate_of` (the span of
    the call that counts, which this LLM span repeats: it counts as no call, no tokens and no
    cost; storage.call_pairs), `logs` and `messages`; JSON columns are parsed."""

    trace_id: str
    project: str
    spans: list[dict[str, Any]]
    conversation: list[Message] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    orphan_logs: list[dict[str, Any]] = field(default_factory=list)  # trace's records of no stored span

    @cached_property
    def spans_by_start(self) -> list[dict[str, Any]]:
        """`spans` by start time (tree order among equal starts)."""
        return sorted(self.spans, key=lambda s: s["start_time_unix_nano"])

    @cached_property
    def start_time(self) -> datetime:
        return min(s["start_time"] for s in self.spans)

    @property
    def duration_ms(self) -> float:
        roots = [s for s in self.spans if s["is_root"]]
        if roots:
            return float(roots[0]["duration_ms"])
        end = max(s["offset_ms"] + s["duration_ms"] for s in self.spans)
        return float(end)

    def summary(self) -> dict[str, Any]:
        """Headline figures: name, outcome, duration, spans, calls, tokens, cost, errors."""
        # the LLM and embedding calls, each once (not a second span of a call another span counts)
        calls = [s for s in self.spans if s["category"] in BILLABLE_CATEGORIES and s["duplicate_of"] is None]
        tasks = [s for s in self.spans if s["category"] == "task" or s["task_name"]]
        head = tasks[0] if tasks else next((s for s in self.spans if s["is_root"]), self.spans[0])
        priced = [s["cost_usd"] for s in calls if s["cost_usd"] is not None]
        outcome = head["task_outcome"]
        if outcome is None:
            failed = any(v["passed"] is False for v in self.validations) or head["status_code"] == "ERROR"
            outcome = "failure" if failed else "unknown"
        return {
            "name": head["task_name"] or head["name"],
            "outcome": outcome,
            "outcome_reason": head["task_outcome_reason"],
            "start_time": self.start_time,
            "duration_ms": self.duration_ms,
            "spans": len(self.spans),
            "llm_calls": sum(1 for s in calls if s["category"] == "llm"),
            "input_tokens": sum(s["input_tokens"] or 0 for s in calls),
            "output_tokens": sum(s["output_tokens"] or 0 for s in calls),
            "cost_usd": sum(priced) if priced else None,
            "unpriced_calls": sum(1 for s in calls if s["unpriced"]),
            "errors": sum(1 for s in self.spans if s["status_code"] == "ERROR"),
            "session_id": next((s["session_id"] for s in self.spans if s["session_id"]), None),
            "service_name": head["service_name"],
            "complete": any(s["is_root"] for s in self.spans),
        }


def _where(project: str | None, params: dict[str, Any]) -> str:
    if project is None:
        return "TRUE"
    params["project"] = project
    return "project = $project"


def _read(con: duckdb.DuckDBPyConnection, trace_id: str, project: str | None) -> tuple[pa.Table, list[dict]]:
    """(the trace's spans, its log records) on `con`, which this closes."""
    try:
        raw = _fetch_spans(con, trace_id, project)
        return raw, (_fetch_logs(con, trace_id, raw.to_pylist()) if raw.num_rows else [])
    finally:
        con.close()


def _fetch_spans(con: duckdb.DuckDBPyConnection, trace_id: str, project: str | None) -> pa.Table:
    params: dict[str, Any] = {"trace_id": trace_id}
    rows = fetch_arrow(con, SPANS_SQL.format(where=_where(project, params)), params)
    if rows.num_rows and project is None:  # the same id in two projects: keep the first project's
        first = rows.sort_by([("start_time", "ascending")])["project"][0].as_py()
        rows = rows.filter(pc.equal(rows["project"], first))
    return rows


def _fetch_logs(con: duckdb.DuckDBPyConnection, trace_id: str, spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"trace_id": trace_id, "project": spans[0]["project"]}
    start = min(s["start_time"] for s in spans)
    end = max(s["end_time"] for s in spans)
    params["d0"] = (start - timedelta(days=LOG_DAYS)).date()
    params["d1"] = (end + timedelta(days=LOG_DAYS)).date()
    rows = fetch_arrow(con, LOGS_SQL.format(where="date BETWEEN $d0 AND $d1"), params).to_pylist()
    rows.sort(key=lambda r: (r["time_unix_nano"], r["observed_time_unix_nano"], r["record_id"]))
    for r in rows:
        r["body"] = loads(r["body"])
        r["attributes"] = loads(r["attributes"])
    return rows


def _costs(an: Analytics, raw: pa.Table) -> dict[tuple[str, str], Cost]:
    """(trace_id, span_id) → (cost_usd, unpriced, duplicate_of) of the trace's calls, priced and paired by
    the analytics span relation over exactly these rows (relation.price_rows: no second read
    of the lake)."""
    categories = set(raw["category"].to_pylist())
    if not categories & set(BILLABLE_CATEGORIES):
        return {}
    src = SpanSource(Filters(), categories=BILLABLE_CATEGORIES)
    df = price_rows(
        an, raw, src, lambda p: "_ AS (SELECT 1) SELECT trace_id, span_id, cost_usd, unpriced, duplicate_of FROM sp"
    )
    return {
        (r["trace_id"], r["span_id"]): (r["cost_usd"], bool(r["unpriced"]), r["duplicate_of"])
        for r in df.iter_rows(named=True)
    }


def tree_order(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans parents-first, each given its `depth` (in place); spans whose parent is missing are roots."""
    by_start = sorted(spans, key=_start)  # once: every list of children below is then in start order
    ids = {s["span_id"] for s in by_start}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in by_start:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        s, depth = stack.pop()
        if s["span_id"] in seen:
            continue
        seen.add(s["span_id"])
        s["depth"] = depth
        out.append(s)
        stack += [(c, depth + 1) for c in reversed(children.get(s["span_id"], []))]
    if len(out) < len(by_start):  # in a cycle of parent links
        for s in by_start:
            if s["span_id"] not in seen:
                s["depth"] = 0
                out.append(s)
    return out


def _start(s: Mapping[str, Any]) -> tuple[Any, str]:
    return (s["start_time_unix_nano"], s["span_id"])


def documents(span: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Retrieved documents of a span: OTel `gen_ai.retrieval.documents`, else OpenInference's
    flattened `retrieval.documents.N.document.*`; each {rank, id, score, content, metadata}."""
    content = span.get("content")
    if not content:
        return []
    docs = loads(content.get("gen_ai.retrieval.documents"))
    out: list[dict[str, Any]] = []
    if isinstance(docs, list):
        for i, d in enumerate(docs):
            d = d if isinstance(d, Mapping) else {"content": d}
            out.append(_doc(i, d))
        return out
    found: dict[int, dict[str, Any]] = {}
    for key, value in content.items():
        if key.startswith("retrieval.documents."):
            idx, _, name = key.removeprefix("retrieval.documents.").partition(".document.")
            if idx.isdigit() and name in ("id", "score", "content", "metadata"):
                found.setdefault(int(idx), {})[name] = value
    return [_doc(i, d) for i, d in sorted(found.items())]


def _doc(rank: int, d: Mapping[str, Any]) -> dict[str, Any]:
    fields = {k: as_text(d.get(k)) for k in ("id", "content", "metadata")}
    return {"rank": rank, **fields, "score": _num(d.get("score"))}


def _num(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def validations(span: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The span's validation verdict (`spanlake.validation.*`). OTel `gen_ai.evaluation.result`
    events are not validations: they become judge labels (evaluators.external) and show as such."""
    if span["validation_passed"] is None:
        return []
    errors = loads(span["attributes"].get(VALIDATION_ERRORS))
    if not isinstance(errors, list):
        errors = [] if errors is None else [as_text(errors)]
    name = span["validation_name"] or span["name"]
    return [{"span_id": span["span_id"], "name": name, "passed": span["validation_passed"], "errors": errors}]


def markers(span: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Policy, fallback and escalation markers (`spanlake.<kind>.*` attributes)."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in span["attributes"].items():
        if not key.startswith("spanlake."):  # every marker prefix starts so (most keys do not)
            continue
        for prefix, kind in MARKER_PREFIXES.items():
            if key.startswith(prefix):
                found.setdefault(kind, {})[key.removeprefix(prefix)] = value
    return [{"span_id": span["span_id"], "span_name": span["name"], "kind": k, **v} for k, v in found.items()]


def trace_detail(
    an: Analytics, trace_id: str, project: str | None = None, around: datetime | None = None
) -> TraceDetail | None:
    """The trace with this id (None if no span of it is stored). `around` is a time hint."""
    trace_id = trace_id.strip().lower()
    raw = pa.table({})
    # Where to look: around the hint (the trace list passes its start), else the recent
    # days (most shared links are fresh), else everywhere.
    tries = [(around - SKEW, around + HORIZON)] if around is not None else []
    if around is None:  # a bare link: the trace-id index (storage.trace_index) knows its hours
        hours = trace_hours(an.lake.data_dir, trace_id, project)
        if hours:
            tries.append((hours[0] - SKEW, hours[-1] + timedelta(hours=1) + HORIZON))
    tries.append((datetime.now(UTC) - RECENT, None))
    for since, until in tries:
        raw, logs = _read(connect_window(an.lake, since, until, project, derived=False), trace_id, project)
        if raw.num_rows:
            break
    if not raw.num_rows:
        raw, logs = _read(an.lake.connect(derived=False), trace_id, project)
    if not raw.num_rows:
        return None
    return assemble(trace_id, arrow_rows(raw), logs, _costs(an, raw))


def assemble(
    trace_id: str,
    rows: list[dict[str, Any]],
    logs: list[dict[str, Any]],
    costs: Mapping[tuple[str, str], Cost],
    with_markers: bool = True,
    lazy_attributes: bool = False,
) -> TraceDetail:
    """The trace built from its raw span rows (SPANS_SQL's columns, JSON as text; changed in
    place), its log records and the costs of its calls ((trace_id, span_id) → (cost, unpriced, duplicate_of)).
    `lazy_attributes`: each span's attributes a JSONObject, parsed when first read."""
    t0 = min(r["start_time_unix_nano"] for r in rows)
    by_span: dict[str | None, list[dict[str, Any]]] = {}
    for rec in logs:
        by_span.setdefault(rec["span_id"], []).append(rec)
    parsed = tuple(c for c in JSON_COLUMNS if c != "attributes") if lazy_attributes else JSON_COLUMNS
    for r in rows:
        for col in parsed:
            if col in r:
                r[col] = orjson.loads(r[col]) if r[col] else ({} if col != "events" and col != "links" else [])
        if lazy_attributes and "attributes" in r:
            r["attributes"] = JSONObject(r["attributes"])
        r["offset_ms"] = (r["start_time_unix_nano"] - t0) / 1e6
        r["cost_usd"], r["unpriced"], r["duplicate_of"] = costs.get((trace_id, r["span_id"]), (None, False, None))
        r["logs"] = span_logs = by_span.get(r["span_id"], [])
        content = r["content"]
        if (content or span_logs) and r["category"] != "embedding":
            r["messages"] = span_messages(content, span_logs)
        else:
            r["messages"] = []
    spans = tree_order(rows)
    ids = {s["span_id"] for s in spans}
    in_order = sorted(spans, key=_start)
    return TraceDetail(
        trace_id=trace_id,
        project=spans[0]["project"],
        spans=spans,
        conversation=merge_conversation(s["messages"] for s in in_order if s["messages"]),
        documents=[{"span_id": s["span_id"], "span_name": s["name"], **d} for s in in_order for d in documents(s)],
        validations=[v for s in in_order for v in validations(s)],
        markers=[m for s in in_order for m in markers(s)] if with_markers else [],
        orphan_logs=[rec for rec in logs if rec["span_id"] not in ids],
    )


def arrow_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The table's rows as dicts (column by column: several times faster than Table.to_pylist)."""
    names = table.column_names
    columns = [_column_values(c) for c in table.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _column_values(column: pa.ChunkedArray) -> list[Any]:
    t = column.type
    if pa.types.is_timestamp(t) and t.tz == "UTC" and len(column):
        # pyarrow builds tz-aware datetimes slowly; polars' naive ones with UTC attached are the same values
        naive = pl.from_arrow(column).dt.replace_time_zone(None).to_list()  # type: ignore[union-attr]
        return [v if v is None else v.replace(tzinfo=UTC) for v in naive]
    return column.to_pylist()


# --- many traces at once ----------------------------------------------------------------------

# what TraceDetail (its tree, messages, documents, validations, markers, summary) reads of a span
DETAIL_COLUMNS = (
    *("project", "trace_id", "span_id", "parent_span_id", "name", "start_time", "start_time_unix_nano"),
    *("duration_ns", "duration_ms", "is_root", "status_code", "service_name", "category", "session_id"),
    *("input_tokens", "output_tokens", "task_name", "task_outcome", "task_outcome_reason"),
    *("validation_name", "validation_passed", "attributes", "content", "events"),
)
# Without DISTINCT ON (sorting every column of every row costs more than the rest of the read):
# the rare span stored twice is dropped afterwards (_first_copies).
MANY_SPANS_SQL = f"""SELECT * EXCLUDE (date, hour), duration_ns / 1e6 AS duration_ms, {ROOT_PREDICATE} AS is_root
FROM spans_raw WHERE project = $project AND trace_id IN (SELECT trace_id FROM wanted_traces)"""
MANY_LOGS_SQL = """SELECT DISTINCT ON (record_id) record_id, trace_id, span_id, time, time_unix_nano,
  observed_time_unix_nano, severity_text, event_name, body, attributes, scope_name
FROM logs_raw WHERE project = $project AND trace_id IN (SELECT trace_id FROM wanted_traces)
ORDER BY record_id"""


def _first_copies(raw: pa.Table) -> pa.Table:
    """Each (trace_id, span_id) once, its first ingested copy (as SPANS_SQL's DISTINCT ON)."""
    if raw.group_by(["trace_id", "span_id"]).aggregate([]).num_rows == raw.num_rows:
        return raw
    con = duckdb.connect(":memory:")
    try:
        con.register("raw_rows", raw)
        sql = "SELECT DISTINCT ON (trace_id, span_id) * FROM raw_rows ORDER BY trace_id, span_id, ingested_at"
        return fetch_arrow(con, sql)
    finally:
        con.close()


def trace_details(
    an: Analytics,
    trace_ids: Iterable[str],
    project: str,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
    with_markers: bool = True,
    lazy_attributes: bool = False,
) -> dict[str, TraceDetail]:
    """Many traces of `project` in three queries (spans, log records, prices), by trace id;
    traces with no span stored are left out. `since`/`until` bound the spans' start times
    read (the partitions of that window only); without `since` the whole lake is read.
    `columns`: the span columns the spans' dicts keep (None: all; fewer is faster), besides
    those the detail itself reads (DETAIL_COLUMNS). `with_markers` False leaves `markers`
    empty (they read every attribute of every span); `lazy_attributes` keeps each span's
    attributes as a JSONObject, parsed when first read (most readers of many traces never do)."""
    wanted = sorted({t.strip().lower() for t in trace_ids})
    if not wanted:
        return {}
    ids = pa.table({"trace_id": pa.array(wanted, pa.string())})

    def attempt() -> tuple[pa.Table, pa.Table]:
        con = connect_window(an.lake, since, until, project, derived=False)
        try:
            con.register("wanted_traces", ids)
            params = {"project": project}
            raw = fetch_arrow(con, MANY_SPANS_SQL, params)
            logs = fetch_arrow(con, MANY_LOGS_SQL, params) if raw.num_rows else pa.table({})
            return raw, logs
        finally:
            con.close()

    raw, logs = retry_vanished(attempt)
    if not raw.num_rows:
        return {}
    raw = _first_copies(raw)
    costs = _costs(an, raw)
    log_rows = arrow_rows(logs) if logs.num_rows else []
    log_rows.sort(key=lambda r: (r["time_unix_nano"], r["observed_time_unix_nano"], r["record_id"]))
    logs_by_trace: dict[str, list[dict[str, Any]]] = {}
    for r in log_rows:
        r["body"] = loads(r["body"])
        r["attributes"] = loads(r["attributes"])
        logs_by_trace.setdefault(r.pop("trace_id"), []).append(r)
    rows_by_trace: dict[str, list[dict[str, Any]]] = {}
    keep = raw if columns is None else raw.select([c for c in raw.column_names if c in {*columns, *DETAIL_COLUMNS}])
    for r in arrow_rows(keep):
        rows_by_trace.setdefault(r["trace_id"], []).append(r)
    return {
        t: assemble(t, rows, logs_by_trace.get(t, []), costs, with_markers, lazy_attributes)
        for t, rows in rows_by_trace.items()
    }
