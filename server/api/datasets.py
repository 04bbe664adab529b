"""Label schemas, label reads and datasets over HTTP, next to the labels API.

    GET  /api/v1/label-schema?project=P                 the project's label schema (version 0: the default)
    PUT  /api/v1/label-schema?project=P                 replace it: body = schema with the `version` it replaces
                                                        (409 when someone saved a newer one first)
    POST /api/v1/label-schema/failure-modes?project=P   {"add": [...], "remove": [...], "author"?}: edit the list
    GET  /api/v1/labels?trace_id=T&project=P            current labels and the full history of a trace
    GET  /api/v1/labels/agreement?project=P&since=&until=   reviewer agreement per field
    GET  /api/v1/datasets?project=P                     datasets with their size and latest version
    POST /api/v1/datasets                               {"name", "project"?, "description"?, "author"?}: create
    GET  /api/v1/datasets/{name}?project=P              members and versions
    POST /api/v1/datasets/{name}/items                  {"items": [{"trace_id", "span_id"?, "trace_start"?}], "op"?:
                                                        add|remove, "project"?, "author"?, "metadata"?}
    POST /api/v1/datasets/{name}/versions?project=P     freeze a version now
    GET  /api/v1/datasets/{name}/export?format=F&project=P&version=N&target=&match=&call=
                                                        the file; without `version`, freezes one first

Writes (dataset events) go through the write-ahead log like labels: acknowledged once
fsynced, visible to reads after the next flush. Lake reads and exports run in the query
workers (server.query_workers; 429 when their queue is full), never on the event loop.
Names are checked against a strict pattern (no path traversal).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from spanlake.analytics.dataset_export import FORMATS, ExportOptions, export_bytes, file_name
from spanlake.analytics.datasets import freeze_dataset
from spanlake.analytics.labels import project_agreement
from spanlake.collector.errors import ExportError, InvalidRequest
from spanlake.collector.http_receiver import read_body
from spanlake.collector.ingest import Ingestor
from spanlake.collector.wal import KIND_DATASETS, Record
from spanlake.server.api.common import EARLIEST, LATEST, ApiContext, event_bytes, request_body
from spanlake.server.api.problems import from_error, problem, responses
from spanlake.server.api.traces import trace_labels
from spanlake.server.query_workers import Local, QueryPool
from spanlake.storage.datasets import list_datasets, members, read_examples, read_version, valid_dataset_name, versions
from spanlake.storage.label_schema import LabelSchema, LabelSchemas, SchemaConflict
from spanlake.storage.layout import DataDir, valid_project

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ITEMS = 10_000
TRACE_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")
T = TypeVar("T", bound=BaseModel)

TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")]
SpanId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{16}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trace_id: TraceId
    span_id: SpanId | None = None
    trace_start: datetime | None = None

    @field_validator("trace_start")
    @classmethod
    def _on_the_calendar(cls, t: datetime | None) -> datetime | None:
        """A start the lake can hold (nanoseconds since 1970 in 64 bits), as the API's windows."""
        if t is None:
            return None
        aware = t if t.tzinfo else t.replace(tzinfo=UTC)
        try:
            ok = EARLIEST <= aware <= LATEST
        except OverflowError:  # an offset that takes the time off the calendar
            ok = False
        if not ok:
            raise ValueError("trace_start must be between 1970 and 2200")
        return aware


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)
    op: Literal["add", "remove"] = "add"
    project: str | None = None
    author: Name | None = None
    metadata: dict[str, Any] | None = None


class CreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    project: str | None = None
    description: Annotated[str, StringConstraints(max_length=64 * 1024)] | None = None
    author: Name | None = None


class ModesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    author: Name | None = None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    opt = orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY
    return Response(orjson.dumps(body, option=opt, default=str), status, headers, "application/json")


def _model(body: bytes, model: type[T]) -> T:
    try:
        return model.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"body is not valid JSON: {e}") from None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise InvalidRequest(f"{where}: {err['msg']}") from None


def export_file(lake: Any, v: Any, fmt: str, opts: Any) -> bytes:
    """A frozen version's file; runs in a query worker."""

    return export_bytes(read_examples(lake.data_dir, v), v.manifest, fmt, opts)


def make_datasets_router(
    ingestor: Ingestor,
    data_dir: DataDir,
    default_project: str,
    schemas: LabelSchemas,
    queries: QueryPool | None = None,
) -> APIRouter:
    """Routes /label-schema, /labels (reads) and /datasets, included under /api/v1 by the labels
    router; lake reads run in `queries` (in threads without)."""

    router = APIRouter()

    def project_of(value: str | None) -> str:
        project = value or default_project
        if not valid_project(project):
            raise InvalidRequest("invalid project name (letters, digits, '_', '.', '-'; at most 64)")
        return project

    def dataset_name(name: str) -> str:
        if not valid_dataset_name(name):
            raise InvalidRequest("invalid dataset name (letters, digits, '_', '.', '-'; at most 128; no '/')")
        return name

    async def body_of(request: Request) -> bytes:
        if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
            raise InvalidRequest("send Content-Type: application/json")
        return await read_body(request, MAX_BODY_BYTES)

    async def guarded(fn: Callable[[], Any], request: Request) -> Response:
        """Run a route; its errors become problems (400, 404, 409, or the collector error's status)."""
        where = request.url.path
        try:
            result = await fn()
        except ExportError as e:
            return from_error(e, where)
        except SchemaConflict as e:
            return problem(409, str(e), where)
        except LookupError as e:
            return problem(404, str(e.args[0] if e.args else e), where)
        except ValueError as e:
            return from_error(InvalidRequest(str(e)), where)
        return result if isinstance(result, Response) else _json(result)

    ctx = ApiContext(data_dir, default_project, queries=queries)

    async def append(events: list[dict[str, Any]]) -> None:
        await ingestor.append(Record(KIND_DATASETS, time.time_ns(), None, event_bytes(events)))

    # --- label schema -----------------------------------------------------------------------

    @router.get("/label-schema", tags=["labels"], responses=responses(400, 401, 403, 422, 429))
    async def get_schema(request: Request, project: str | None = None) -> Response:
        async def run() -> Any:
            p = project_of(project)
            return {"project": p, **schemas.get(p).model_dump(mode="json")}

        return await guarded(run, request)

    @router.put(
        "/label-schema",
        tags=["labels"],
        responses=responses(400, 401, 403, 409, 413, 422, 429),
        openapi_extra=request_body(LabelSchema),
    )
    async def put_schema(request: Request, project: str | None = None) -> Response:
        async def run() -> Any:
            p = project_of(project)
            schema = _model(await body_of(request), LabelSchema)
            saved = await run_in_threadpool(schemas.save, p, schema, schema.updated_by)
            return {"project": p, **saved.model_dump(mode="json")}

        return await guarded(run, request)

    @router.post(
        "/label-schema/failure-modes",
        tags=["labels"],
        responses=responses(400, 401, 403, 409, 413, 422, 429),
        openapi_extra=request_body(ModesIn),
    )
    async def edit_modes(request: Request, project: str | None = None) -> Response:
        async def run() -> Any:
            p = project_of(project)
            m = _model(await body_of(request), ModesIn)
            kw = {"add_failure_modes": m.add, "remove_failure_modes": m.remove}
            saved = await run_in_threadpool(lambda: schemas.update(p, m.author, **kw))
            return {"project": p, **saved.model_dump(mode="json")}

        return await guarded(run, request)

    # --- label reads ------------------------------------------------------------------------

    @router.get("/labels", tags=["labels"], responses=responses(400, 401, 403, 422, 429))
    async def labels(request: Request, trace_id: str, project: str | None = None) -> Response:
        async def run() -> Any:
            if not TRACE_ID_RE.match(trace_id):
                raise InvalidRequest("trace_id must be 32 hex characters")
            p = project_of(project)
            current, history = await ctx.query(trace_labels, Local.LAKE, trace_id, p)
            return {"project": p, "trace_id": trace_id.lower(), "current": current, "history": history}

        return await guarded(run, request)

    @router.get("/labels/agreement", tags=["labels"], responses=responses(400, 401, 403, 422, 429))
    async def agreement(
        request: Request, project: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Response:

        async def run() -> Any:
            p = project_of(project)
            result = await ctx.query(project_agreement, Local.LAKE, p, schemas.get(p), since, until)
            return {"project": p, "fields": {k: v.as_dict() for k, v in result.items()}}

        return await guarded(run, request)

    # --- datasets ---------------------------------------------------------------------------

    @router.get("/datasets", tags=["datasets"], responses=responses(400, 401, 403, 422, 429))
    async def list_all(request: Request, project: str | None = None) -> Response:

        async def run() -> Any:
            p = project_of(project)
            return {"datasets": (await ctx.query(list_datasets, Local.LAKE, p)).to_dicts()}

        return await guarded(run, request)

    @router.post(
        "/datasets",
        tags=["datasets"],
        responses=responses(400, 401, 403, 413, 422, 429, 503),
        openapi_extra=request_body(CreateIn),
    )
    async def create(request: Request) -> Response:
        async def run() -> Any:
            m = _model(await body_of(request), CreateIn)
            p, name = project_of(m.project), dataset_name(m.name)
            event = {"event_id": uuid.uuid4().hex, "dataset": name, "op": "create", "project": p}
            event |= {"author": m.author, "description": m.description, "created_at_unix_nano": time.time_ns()}
            await append([event])
            return {"project": p, "dataset": name, "event_id": event["event_id"]}

        return await guarded(run, request)

    @router.get("/datasets/{name}", tags=["datasets"], responses=responses(400, 401, 403, 404, 422, 429))
    async def show(request: Request, name: str, project: str | None = None) -> Response:

        async def run() -> Any:
            p, n = project_of(project), dataset_name(name)
            info = (await ctx.query(list_datasets, Local.LAKE, p)).filter(dataset=n).to_dicts()
            nums = await run_in_threadpool(versions, data_dir, p, n)
            if not info and not nums:
                raise LookupError(f"no dataset {n!r} in project {p!r}")
            items = (await ctx.query(members, Local.LAKE, p, n)).to_dicts()
            return {"project": p, "dataset": n, "info": info[0] if info else None, "versions": nums, "items": items}

        return await guarded(run, request)

    @router.post(
        "/datasets/{name}/items",
        tags=["datasets"],
        responses=responses(400, 401, 403, 413, 422, 429, 503),
        openapi_extra=request_body(ItemsIn),
    )
    async def items(name: str, request: Request) -> Response:
        async def run() -> Any:
            n = dataset_name(name)
            m = _model(await body_of(request), ItemsIn)
            p = project_of(m.project)
            now = time.time_ns()
            events = [
                {
                    "event_id": uuid.uuid4().hex,
                    "dataset": n,
                    "op": m.op,
                    "project": p,
                    "trace_id": it.trace_id.lower(),
                    "span_id": it.span_id.lower() if it.span_id else None,
                    "author": m.author,
                    "created_at_unix_nano": now + i * 1000,  # +i µs: the dataset keeps the order items were sent in
                    "trace_start_unix_nano": int(it.trace_start.timestamp() * 1e6) * 1000 if it.trace_start else None,
                    "metadata": m.metadata,
                }
                for i, it in enumerate(m.items)
            ]
            await append(events)
            return {"project": p, "dataset": n, "op": m.op, "items": len(events)}

        return await guarded(run, request)

    @router.post("/datasets/{name}/versions", tags=["datasets"], responses=responses(400, 401, 403, 404, 422, 429))
    async def freeze_now(
        request: Request, name: str, project: str | None = None, author: str | None = None
    ) -> Response:

        async def run() -> Any:
            p, n = project_of(project), dataset_name(name)
            frozen = await ctx.query(freeze_dataset, Local.ANALYTICS, p, n, author)
            return {"created": frozen.created, "missing": len(frozen.missing), **frozen.version.manifest}

        return await guarded(run, request)

    exported = {"description": "The exported file", "content": {media: {} for _, media in FORMATS.values()}}

    @router.get(
        "/datasets/{name}/export",
        tags=["datasets"],
        responses={200: exported, **responses(400, 401, 403, 404, 422, 429)},
    )
    async def export(
        request: Request,
        name: str,
        format: str = "jsonl",
        project: str | None = None,
        version: int | None = None,
        target: str | None = None,
        match: str = "exact",
        call: str = "text",
    ) -> Response:

        async def run() -> Any:
            p, n = project_of(project), dataset_name(name)
            if format not in FORMATS:
                raise InvalidRequest(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
            opts = ExportOptions(target=target, match=match, call=call)
            if version is None:
                v = (await ctx.query(freeze_dataset, Local.ANALYTICS, p, n)).version
            else:
                found = await run_in_threadpool(read_version, data_dir, p, n, version)
                if found is None:
                    raise LookupError(f"dataset {n!r} has no version {version}")
                v = found
            data = await ctx.query(export_file, Local.LAKE, v, format, opts)
            headers = {
                "Content-Disposition": f'attachment; filename="{file_name(n, v.version, format, opts)}"',
                "X-Spanlake-Dataset-Version": str(v.version),
                "X-Content-Type-Options": "nosniff",
            }
            return Response(data, 200, headers, FORMATS[format][1])

        return await guarded(run, request)

    return router
