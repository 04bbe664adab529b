"""Traces and spans over HTTP, through the dashboard's query layer (analytics.traces).

    GET /api/v1/traces                               traces of a window, filtered, sorted, paged by cursor
    GET /api/v1/traces/{trace_id}                    one trace: summary, spans (tree order), logs, labels
    GET /api/v1/traces/{trace_id}/spans/{span_id}    one span of it, with its log records

Filters are parameters handed to analytics.traces (bound, never pasted into SQL). A cursor
carries the page's offset and the window the first page resolved (`until` defaults to now),
so traces arriving meanwhile do not shift the pages; repeat the other filters with it.
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from spanlake.analytics.labels import current_labels, label_history
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import MAX_PAGE, OUTCOMES, SORTS, Page, TraceFilters, parse_judge
from spanlake.analytics.traces.trace_list import list_traces as run
from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import (
    EARLIEST,
    LATEST,
    ApiContext,
    attributes,
    finite,
    jsonable,
    parse_time,
    project_for,
    text,
    window,
)
from spanlake.server.api.problems import NotFound, responses
from spanlake.server.query_workers import Local

TRACE_ID = r"^[0-9a-fA-F]{32}$"
SPAN_ID = r"^[0-9a-fA-F]{16}$"
DEFAULT_LIMIT = 50


class TraceRow(BaseModel):
    """One trace of a list (analytics.traces.trace_list.LIST_COLUMNS)."""

    start_time: datetime
    project: str
    trace_id: str
    name: str | None = None
    service_name: str | None = None
    outcome: str | None = None
    duration_ms: float | None = None
    span_count: int | None = None
    llm_calls: int | None = None
    models: list[str | None] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    unpriced_calls: int | None = None
    has_error: bool | None = None
    validation_failures: int | None = None
    session_id: str | None = None
    user_id: str | None = None
    prompt_version: str | None = None
    outcome_reason: str | None = None
    is_complete: bool | None = None
    judge: str | None = Field(default=None, description='Current judge verdicts counted, e.g. "1 fail · 2 pass"')


class TraceList(BaseModel):
    """A page of traces."""

    since: datetime
    until: datetime
    total: int = Field(description="Traces matching the filters in all")
    next_cursor: str | None = Field(description="Pass as `cursor` (with the same filters) for the next page")
    traces: list[TraceRow]


class Labels(BaseModel):
    current: list[dict[str, Any]] = Field(description="Current label per (span, source, author)")
    history: list[dict[str, Any]] = Field(description="Every label event, oldest first")


class TraceOut(BaseModel):
    """One trace in full (analytics.traces.detail.TraceDetail)."""

    trace_id: str
    project: str
    summary: dict[str, Any]
    spans: list[dict[str, Any]] = Field(
        description="Parents before children; each with `depth`, `logs`, `messages`, `cost_usd`, `duplicate_of` "
        "(set on an LLM span of a call another span of it counts, storage/call_pairs.py: it counts as no call)"
    )
    conversation: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    validations: list[dict[str, Any]]
    markers: list[dict[str, Any]]
    orphan_logs: list[dict[str, Any]]
    labels: Labels


def encode_cursor(offset: int, since: datetime, until: datetime) -> str:
    raw = orjson.dumps({"o": offset, "s": since.isoformat(), "u": until.isoformat()})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime, datetime]:
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, since, until = int(doc["o"]), datetime.fromisoformat(doc["s"]), datetime.fromisoformat(doc["u"])
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise InvalidRequest("invalid cursor: pass next_cursor from the previous page unchanged") from None
    if offset < 0 or since.tzinfo is None or until.tzinfo is None or offset > 1_000_000 or not _in_range(since, until):
        raise InvalidRequest("invalid cursor: pass next_cursor from the previous page unchanged")
    return offset, since.astimezone(UTC), until.astimezone(UTC)


def _in_range(since: datetime, until: datetime) -> bool:
    """Whether a cursor's window is one `window` could have resolved (a crafted one may hold
    any date, even one whose UTC time is outside the calendar)."""
    try:
        return EARLIEST <= since < until <= LATEST
    except OverflowError:
        return False


def trace_labels(lake: Any, trace_id: str, project: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(current labels, label history) of a trace; runs in a query worker."""
    current = current_labels(lake, project, trace_ids=[trace_id]).to_dicts()
    return current, label_history(lake, trace_id, project).to_dicts()


def make_traces_router(ctx: ApiContext) -> APIRouter:
    """The /traces routes."""

    router = APIRouter(prefix="/api/v1", tags=["traces"])
    reader = Depends(ctx.principal("read"))
    Sort = Literal[tuple(SORTS)]  # type: ignore[valid-type]
    Outcome = Literal[tuple(OUTCOMES)]  # type: ignore[valid-type]
    NonNeg = Annotated[float | None, Query(ge=0)]

    @router.get("/traces", response_model=TraceList, responses=responses(400, 401, 403, 422, 429))
    async def list_traces(
        principal: Annotated[Principal | None, reader],
        since: Annotated[str | None, Query(description="Start: a duration ago (30m, 24h, 7d) or ISO time")] = None,
        until: Annotated[str | None, Query(description="End (exclusive): duration ago or ISO time; now")] = None,
        project: Annotated[str | None, Query(description="Only this project (a key's own by default)")] = None,
        service: str | None = None,
        model: Annotated[str | None, Query(description="Requested or answering model of any call")] = None,
        outcome: Outcome | None = None,
        has_error: bool | None = None,
        min_ms: NonNeg = None,
        max_ms: NonNeg = None,
        min_cost: NonNeg = None,
        max_cost: NonNeg = None,
        attr: Annotated[list[str], Query(description="key=value: some span has this attribute (repeatable)")] = [],  # noqa: B006
        q: Annotated[str | None, Query(description="Case-insensitive text in span names, content or logs")] = None,
        session_id: str | None = None,
        task_name: str | None = None,
        prompt_version: str | None = None,
        judge: Annotated[
            str | None,
            Query(
                description="Traces with a current judge label: fail, pass, EVALUATOR:fail or EVALUATOR@vN:pass "
                "(NAME@otel:fail: results the app sent)"
            ),
        ] = None,
        sort: Sort = "start_time",
        order: Literal["asc", "desc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> Any:
        """Traces whose first span starts in [since, until) (default: the last 24 hours), newest first."""

        if cursor is not None:
            offset, start, end = decode_cursor(text(cursor, "cursor") or "")
        else:
            offset, (start, end) = 0, window(since, until)
        for name, value in (("min_ms", min_ms), ("max_ms", max_ms), ("min_cost", min_cost), ("max_cost", max_cost)):
            finite(value, name)
        judge = text(judge, "judge")
        if judge is not None:
            try:
                parse_judge(judge)
            except ValueError as e:
                raise InvalidRequest(str(e)) from None
        filters = TraceFilters(
            since=start,
            until=end,
            project=project_for(principal, project),
            service=text(service, "service"),
            model=text(model, "model"),
            outcome=outcome,
            has_error=has_error,
            min_ms=min_ms,
            max_ms=max_ms,
            min_cost=min_cost,
            max_cost=max_cost,
            attributes=attributes(attr),
            text=text(q, "q") or None,
            session_id=text(session_id, "session_id"),
            task_name=text(task_name, "task_name"),
            prompt_version=text(prompt_version, "prompt_version"),
            judge=judge,
        )
        page = await ctx.query(run, Local.ANALYTICS, filters, Page(sort, order == "desc", limit, offset))
        more = encode_cursor(offset + page.rows.height, start, end) if page.has_next else None
        rows = [jsonable(r) for r in page.rows.to_dicts()]
        return {"since": start, "until": end, "total": page.total, "next_cursor": more, "traces": rows}

    async def detail(principal: Principal | None, trace_id: str, project: str | None, around: str | None) -> Any:

        p = project_for(principal, project)
        hint = parse_time(around, datetime.now(UTC), "around")
        found = await ctx.query(trace_detail, Local.ANALYTICS, trace_id, p, hint)
        if found is None:
            where = f" in project {p!r}" if p is not None else ""
            raise NotFound(f"no trace {trace_id.lower()}{where}")
        return found

    Around = Annotated[str | None, Query(description="Time hint (e.g. the trace's start) for a faster lookup")]
    TraceIdPath = Annotated[str, Path(pattern=TRACE_ID, description="32 hex characters")]

    @router.get("/traces/{trace_id}", response_model=TraceOut, responses=responses(400, 401, 403, 404, 422, 429))
    async def get_trace(
        principal: Annotated[Principal | None, reader],
        trace_id: TraceIdPath,
        project: str | None = None,
        around: Around = None,
    ) -> Any:
        """One trace: summary, spans in tree order (with their logs and messages), conversation,
        retrieved documents, validations, markers and labels."""

        d = await detail(principal, trace_id, project, around)
        current, history = await ctx.query(trace_labels, Local.LAKE, d.trace_id, d.project)
        return jsonable(
            {
                "trace_id": d.trace_id,
                "project": d.project,
                "summary": d.summary(),
                "spans": d.spans,
                "conversation": d.conversation,
                "documents": d.documents,
                "validations": d.validations,
                "markers": d.markers,
                "orphan_logs": d.orphan_logs,
                "labels": {"current": current, "history": history},
            }
        )

    @router.get(
        "/traces/{trace_id}/spans/{span_id}",
        response_model=dict[str, Any],
        responses=responses(400, 401, 403, 404, 422, 429),
    )
    async def get_span(
        principal: Annotated[Principal | None, reader],
        trace_id: TraceIdPath,
        span_id: Annotated[str, Path(pattern=SPAN_ID, description="16 hex characters")],
        project: str | None = None,
        around: Around = None,
    ) -> Any:
        """One span with every column (attributes, content, events, links parsed), its cost,
        its log records and messages."""
        d = await detail(principal, trace_id, project, around)
        for s in d.spans:
            if s["span_id"] == span_id.lower():
                return jsonable(s)
        raise NotFound(f"trace {d.trace_id} has no span {span_id.lower()}")

    return router
