"""Labels and end-user feedback over HTTP, made durable through the write-ahead log.

    POST /api/v1/feedback   {"trace_id", "span_id"?, "value"?: up|down, "score"?, "comment"?, "user_id"?, "project"?}
    POST /api/v1/labels     one label event or a list: {"trace_id", "span_id"?, "source"?: human|judge|api,
                            "author"?, "verdict"?: pass|fail, "failure_mode"?, "score"?, "comment"?,
                            "expected_output"?, "metadata"?, "project"?, "label_id"?}

A label may carry its own `label_id` (1 to 64 of A-Z a-z 0-9 _ -; else the server picks one): the
lake keeps one event per (project, label_id), so a client that re-sends a label (an offline
evaluator run resumed after Ctrl-C, `spanlake eval run`) writes it once. Evaluator results use
the deterministic id of evaluators.result.label_id, the same one the online rules write.

A relevance judgment is a label on a retrieval span with `metadata = {"relevant": {"<document id>":
true|false, ...}}` (it needs no other field); a malformed `relevant` map is refused with 422,
naming the entry (analytics.reports.retrieval reads judgments for hit rate and precision at k).

Both answer 200 once the events are fsynced (like an OTLP export), 400 with a problem
(application/problem+json, server.api.problems) naming the first problem, 413 when the body
is too large and 503 + Retry-After when the collector cannot take more. Events are append-only: a
correction is a new event, and the `labels` view keeps the whole history. A label must
fit its project's label schema (storage.label_schema: failure modes, score range, fields a
reviewer must set), else 400 names the rule it breaks.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from spanlake.collector.auth import DISABLED, Authenticator, check_project
from spanlake.collector.errors import ExportError, InvalidRequest
from spanlake.collector.http_receiver import read_body
from spanlake.collector.ingest import Ingestor
from spanlake.collector.wal import KIND_LABELS, Record
from spanlake.server.api.common import event_bytes, request_body
from spanlake.server.api.datasets import make_datasets_router
from spanlake.server.api.problems import from_error, responses
from spanlake.server.query_workers import QueryPool
from spanlake.storage.label_schema import LabelSchemas
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, valid_project

MAX_LABELS_BODY_BYTES = 2 * 1024 * 1024
MAX_EVENTS_PER_REQUEST = 1000

TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]
SpanId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{16}$")]
Text = Annotated[str, StringConstraints(max_length=64 * 1024)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LabelId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


MAX_RELEVANT_DOCS = 10_000
MAX_DOCUMENT_ID = 1024


class InvalidRelevance(InvalidRequest):
    """A malformed relevance judgment (`metadata.relevant`): HTTP 422."""

    http_status = 422


def relevance_problem(label: LabelIn) -> str | None:
    """What is wrong with the label's `metadata.relevant` map, if it has one (None: fine or absent)."""
    if not label.metadata or "relevant" not in label.metadata:
        return None
    rel = label.metadata["relevant"]
    if label.span_id is None:
        return "metadata.relevant: a relevance judgment labels a retrieval span: set span_id"
    if not isinstance(rel, dict):
        return "metadata.relevant: must be an object of document id → true or false"
    if not rel:
        return "metadata.relevant: judge at least one document"
    if len(rel) > MAX_RELEVANT_DOCS:
        return f"metadata.relevant: at most {MAX_RELEVANT_DOCS} documents"
    for doc, value in rel.items():
        if not doc or len(doc) > MAX_DOCUMENT_ID:
            return f"metadata.relevant: document ids are 1 to {MAX_DOCUMENT_ID} characters"
        if not isinstance(value, bool):
            return f"metadata.relevant.{doc}: must be true or false, not {repr(value)[:40]}"
    return None


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    trace_id: TraceId
    span_id: SpanId | None = None
    score: float | None = None
    comment: Text | None = None
    project: str | None = None

    @field_validator("score")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("score must be a finite number")
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        if v is not None and not valid_project(v):
            raise ValueError("invalid project name (letters, digits, '_', '.', '-'; at most 64)")
        return v


class FeedbackIn(_Event):
    """An end user's reaction to a trace (or one span of it)."""

    value: Literal["up", "down"] | None = None
    user_id: Name | None = None

    @model_validator(mode="after")
    def _something(self) -> FeedbackIn:
        if self.value is None and self.score is None and self.comment is None:
            raise ValueError("feedback needs at least one of value, score or comment")
        return self


class LabelIn(_Event):
    """A label set by a reviewer, an automated judge or another system."""

    label_id: LabelId | None = None  # a re-sent label_id counts once (idempotent writes)
    source: Literal["human", "judge", "api"] = "api"
    author: Name | None = None
    verdict: Literal["pass", "fail"] | None = None
    failure_mode: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    expected_output: Annotated[str, StringConstraints(max_length=1024 * 1024)] | None = None
    metadata: dict[str, Any] | None = Field(default=None)

    @model_validator(mode="after")
    def _something(self) -> LabelIn:
        fields = (self.verdict, self.failure_mode, self.score, self.comment, self.expected_output)
        if all(f is None for f in fields) and "relevant" not in (self.metadata or {}):
            raise ValueError(
                "a label needs at least one of verdict, failure_mode, score, comment, expected_output, "
                "metadata.relevant"
            )
        return self


def _event(model: FeedbackIn | LabelIn, now_ns: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "label_id": uuid.uuid4().hex,
        "trace_id": model.trace_id.lower(),
        "span_id": model.span_id.lower() if model.span_id else None,
        "created_at_unix_nano": now_ns,
        "score": model.score,
        "comment": model.comment,
        "project": model.project,
    }
    if isinstance(model, FeedbackIn):
        event |= {"source": "user_feedback", "author": model.user_id, "value": model.value}
    else:
        event |= {
            "label_id": model.label_id or event["label_id"],
            "source": model.source,
            "author": model.author,
            "verdict": model.verdict,
            "failure_mode": model.failure_mode,
            "expected_output": model.expected_output,
            "metadata": model.metadata,
        }
    return event


def _parse(body: bytes, model: type[FeedbackIn] | type[LabelIn], many: bool) -> list[FeedbackIn | LabelIn]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"body is not valid JSON: {e}") from None
    items = doc if (many and isinstance(doc, list)) else [doc]
    if not items or len(items) > MAX_EVENTS_PER_REQUEST:
        raise InvalidRequest(f"send between 1 and {MAX_EVENTS_PER_REQUEST} events per request")
    parsed = []
    for i, item in enumerate(items):
        try:
            parsed.append(model.model_validate(item))
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            prefix = f"[{i}]." if len(items) > 1 else ""
            raise InvalidRequest(f"{prefix}{where}: {err['msg']}") from None
        problem = relevance_problem(parsed[-1]) if isinstance(parsed[-1], LabelIn) else None
        if problem:
            raise InvalidRelevance(f"[{i}].{problem}" if len(items) > 1 else problem)
    return parsed


def check_schema(items: list[FeedbackIn | LabelIn], schemas: LabelSchemas, default_project: str) -> None:
    """Refuse labels that break their project's label schema (storage.label_schema); feedback is not checked."""
    for i, m in enumerate(items):
        if isinstance(m, LabelIn):
            problem = schemas.get(m.project or default_project).problem(m.model_dump())
            if problem:
                raise InvalidRequest(f"[{i}]: {problem}" if len(items) > 1 else problem)


def make_labels_router(
    ingestor: Ingestor,
    data_dir: DataDir | None = None,
    default_project: str = DEFAULT_PROJECT,
    auth: Authenticator = DISABLED,
    queries: QueryPool | None = None,
) -> APIRouter:
    """Routes for /api/v1/feedback and /api/v1/labels; with a data directory, labels are checked
    against the project's label schema and the datasets API (server.api.datasets, its lake
    reads in `queries`) is included.
    With `auth` enabled, writing needs a write key, and events go to its project (403 for another)."""

    router = APIRouter(prefix="/api/v1")
    schemas = LabelSchemas(data_dir) if data_dir is not None else None

    async def store(request: Request, model: type[FeedbackIn] | type[LabelIn], many: bool) -> Response:
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            return from_error(InvalidRequest("send Content-Type: application/json"), request.url.path)
        try:
            peer = request.client.host if request.client else ""
            principal = auth.authenticate(request.headers.get("authorization"), "write", peer)
            items = _parse(await read_body(request, MAX_LABELS_BODY_BYTES), model, many)
            for m in items:
                m.project = check_project(principal, m.project)
            if schemas is not None:
                check_schema(items, schemas, default_project)
            now = time.time_ns()
            events = [_event(m, now) for m in items]
            await ingestor.append(Record(KIND_LABELS, now, None, event_bytes(events)))
        except ExportError as e:
            return from_error(e, request.url.path)
        ids = [e["label_id"] for e in events]
        body = {"label_id": ids[0]} if len(ids) == 1 else {"label_ids": ids}
        return Response(orjson.dumps(body), media_type="application/json")

    errors = responses(400, 401, 403, 413, 422, 429, 503)
    label = LabelIn.model_json_schema()
    many = {"anyOf": [label, {"type": "array", "items": label, "minItems": 1, "maxItems": MAX_EVENTS_PER_REQUEST}]}

    @router.post("/feedback", tags=["labels"], responses=errors, openapi_extra=request_body(FeedbackIn))
    async def feedback(request: Request) -> Response:
        """Record an end user's thumbs up/down, score or comment on a trace."""
        return await store(request, FeedbackIn, many=False)

    @router.post("/labels", tags=["labels"], responses=errors, openapi_extra=request_body(many))
    async def labels(request: Request) -> Response:
        """Record one label event or a list of them."""
        return await store(request, LabelIn, many=True)

    if data_dir is not None and schemas is not None:
        router.include_router(make_datasets_router(ingestor, data_dir, default_project, schemas, queries))
    return router
