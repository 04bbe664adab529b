"""Budgets and alert destinations over HTTP (docs/api.md, "Budgets").

    GET    /api/v1/budgets?project=P          the project's budgets, each with its definition and latest reading
    GET    /api/v1/budgets/check?project=P    evaluate every budget now (or `at`): figure, level, thresholds, reason
    GET    /api/v1/budgets/status?project=P   the server's last evaluation (the budget watch, every minute)
    GET    /api/v1/budgets/{name}?project=P   one budget
    POST   /api/v1/budgets?project=P          {"name", "metric", "window", ...}: create (409 when the name is taken)
    PUT    /api/v1/budgets/{name}?project=P   {"metric", "window", ...}: create or replace
    DELETE /api/v1/budgets/{name}?project=P   remove
    GET    /api/v1/destinations               where alerts go (never a secret: URLs reduced to their origin)

Reading needs a read key of the project, changing an admin key of it (server.api.scope pins the
project; a body naming another project is refused with 403). Budgets live in
`<data-dir>/budgets.toml` (analytics.budgets.budgets_file: changed under a lock, the user's
comments kept, the whole file checked before it is replaced), which the server re-reads when
it changes; when a hand edit broke the file, the last good budgets are served and
`file_error` says what is wrong. A body is checked by the same rules as the file, so an unknown
metric, a window of 0, a threshold that is not a number or an undeclared destination get a 400
naming the field. Destinations are shared by every project and declared by the operator
(`spanlake budgets destination add`). No `from __future__ import annotations` here: FastAPI
resolves the route signatures at runtime.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from spanlake.analytics.budgets.budgets_file import BudgetExists, BudgetsFile, NoSuchEntry
from spanlake.analytics.budgets.definition import DESTINATION_TYPES, NAME, Budget, BudgetError, BudgetSet, Destination
from spanlake.analytics.budgets.evaluate import Evaluation, measure_all, reading_dict
from spanlake.analytics.budgets.metrics import METRICS, STEPS
from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import ApiContext, jsonable, parse_time, project_for, project_object, request_body
from spanlake.server.api.problems import Conflict, NotFound, responses
from spanlake.server.query_workers import Local

MAX_BODY_BYTES = 64 * 1024
BudgetName = Annotated[str, Path(pattern=NAME.pattern, description="Letters, digits, '_', '.', ':', '-'; at most 100")]
Level = Literal["ok", "warning", "critical", "no_data"]
DURATION = {"type": "string", "description": "A duration: 90s, 15m, 1h, 24h, 7d"}
BUDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A budget, as a [[budget]] table of budgets.toml (analytics/budgets/definition.py)",
    "properties": {
        "name": {"type": "string", "description": "Default: the path's name (must match it on PUT)"},
        "project": {"type": "string", "description": "Default: ?project= (a key's own project)"},
        "metric": {"type": "string", "enum": list(METRICS)},
        "step": {"type": "string", "enum": list(STEPS), "description": "Latency metrics: task or a step category"},
        **{k: {"type": "string"} for k in ("task", "service", "model", "provider", "prompt_name", "prompt_version")},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
        "window": DURATION,
        "warning": {"type": "number", "description": "Absolute, or % worse than the baseline"},
        "critical": {"type": "number", "description": "Absolute, or % worse than the baseline"},
        "min_samples": {"type": "integer", "minimum": 0},
        "for": DURATION | {"description": "How long a breach lasts before it fires"},
        "baseline": {"type": "string", "description": "'7d ago' or 'previous 7d': thresholds become relative"},
        "destinations": {"type": "array", "items": {"type": "string"}},
        "renotify": DURATION | {"description": "Re-send while firing (0: never)"},
        "slow_ms": {"type": "number", "minimum": 0, "description": "slow_share: what counts as slow"},
        "description": {"type": "string"},
    },
    "required": ["metric", "window"],
    "additionalProperties": False,
}


class WindowOut(BaseModel):
    since: datetime
    until: datetime


class BaselineOut(BaseModel):
    text: str
    value: float | None = None
    samples: int | None = None
    since: datetime | None = None
    until: datetime | None = None


class ReadingOut(BaseModel):
    """One evaluation of a budget: the figure over its window against the thresholds."""

    name: str
    project: str
    metric: str
    unit: str
    level: Level
    value: float | None = Field(description="The figure (null: nothing to compute it from)")
    samples: int
    min_samples: int
    warning_at: float | None = Field(description="What the figure is compared with (after the baseline)")
    critical_at: float | None
    window: WindowOut
    baseline: BaselineOut | None
    reason: str
    at: datetime


class BudgetOut(BaseModel):
    name: str
    project: str
    metric: str
    line: int | None = Field(description="Where budgets.toml declares it")
    definition: dict[str, Any] = Field(description="As budgets.toml holds it (durations as text)")
    latest: ReadingOut | None = Field(description="The server's last evaluation of it, if any")


class BudgetsOut(BaseModel):
    project: str | None
    budgets: list[BudgetOut]
    file_error: str | None = Field(description="Why budgets.toml does not parse (the last good budgets are shown)")


class FailureOut(BaseModel):
    name: str
    project: str
    error: str


class CheckOut(BaseModel):
    project: str | None
    at: datetime | None = Field(description="When the budgets were evaluated (null: never, for status)")
    readings: list[ReadingOut]
    failures: list[FailureOut] = Field(description="Budgets that could not be evaluated, and why")
    file_error: str | None


class StatusOut(CheckOut):
    interval_s: float = Field(description="How often the server evaluates (0: the budget watch is off)")


class DestinationOut(BaseModel):
    name: str
    type: str = Field(description=" | ".join(DESTINATION_TYPES))
    url: str | None = Field(description="Scheme, host and port only: a webhook's path may hold its secret")
    secret_env: str | None
    routing_key_env: str | None
    to: list[str]
    sender: str | None
    smtp: str | None
    used_by: list[str] = Field(description="The caller's budgets (project/name) that send to it")


class DestinationsOut(BaseModel):
    destinations: list[DestinationOut]
    file_error: str | None


def origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of a URL: no user, path or query (where webhook secrets live)."""
    if url is None:
        return None
    u = urlparse(url)
    return f"{u.scheme}://{u.netloc.rpartition('@')[2]}"


def destination_out(d: Destination, used_by: list[str]) -> dict[str, Any]:
    return {"name": d.name, "type": d.type, "url": origin(d.url), "secret_env": d.secret_env,
            "routing_key_env": d.routing_key_env, "to": list(d.to), "sender": d.sender, "smtp": d.smtp,
            "used_by": used_by}  # fmt: skip


def make_budgets_router(ctx: ApiContext) -> APIRouter:
    """Routes /api/v1/budgets and /api/v1/destinations."""
    router = APIRouter(prefix="/api/v1", tags=["budgets"])
    reader = Depends(ctx.principal("read"))
    admin = Depends(ctx.principal("admin"))
    store = BudgetsFile(ctx.data_dir.root, ctx.default_project)
    read_errors = responses(400, 401, 403, 422, 429)

    def scoped(found: BudgetSet, project: str | None) -> list[Budget]:
        return [b for b in found.budgets if project is None or b.project == project]

    def latest_readings() -> dict[str, dict[str, Any]]:
        latest = getattr(ctx.budget_watch, "latest", None)
        if latest is None or latest.evaluation is None:
            return {}
        return {r.budget.key: jsonable(reading_dict(r)) for r in latest.evaluation.readings}

    def budget_out(b: Budget, latest: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {"name": b.name, "project": b.project, "metric": b.metric, "line": b.line,
                "definition": jsonable(b.to_dict()), "latest": latest.get(b.key)}  # fmt: skip

    def outcome(ev: Evaluation | None, project: str | None) -> dict[str, Any]:
        """`readings` and `failures` of an evaluation, of `project` only (None: every project)."""
        if ev is None:
            return {"readings": [], "failures": []}
        readings = [jsonable(reading_dict(r)) for r in ev.readings if project in (None, r.budget.project)]
        failures = []
        for key, why in ev.failures:
            p, _, name = key.partition("/")
            if project in (None, p):
                failures.append({"name": name, "project": p, "error": why})
        return {"readings": readings, "failures": failures}

    def one_project(principal: Principal | None, project: str | None) -> str:
        return project_for(principal, project) or ctx.default_project

    async def body_of(request: Request, principal: Principal | None, project: str | None) -> dict[str, Any]:
        """The JSON object of a write, its `project` checked against the key and filled in."""
        return await project_object(request, principal, project, ctx.default_project, MAX_BODY_BYTES,
                                    "a budget's fields")  # fmt: skip

    async def put(body: dict[str, Any], create: bool) -> tuple[Budget, bool]:
        try:
            return await ctx.run(lambda: store.put_budget(body, create=create))
        except BudgetExists as e:
            raise Conflict(f"{e}: PUT /api/v1/budgets/{{name}} replaces it") from None
        except BudgetError as e:
            raise InvalidRequest(str(e)) from None

    @router.get("/budgets", response_model=BudgetsOut, responses=read_errors)
    async def list_budgets(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The project's budgets (every project's with authentication off and none named)."""
        p = project_for(principal, project)
        found, error = await ctx.run(store.status)
        latest = latest_readings()
        return {"project": p, "budgets": [budget_out(b, latest) for b in scoped(found, p)], "file_error": error}

    @router.get("/budgets/check", response_model=CheckOut, responses=read_errors)
    async def check_budgets(
        principal: Annotated[Principal | None, reader],
        project: str | None = None,
        at: Annotated[
            str | None, Query(description="Evaluate as of: an ISO time or a duration ago; default now")
        ] = None,
    ) -> Any:
        """Evaluate the project's budgets now (or as of `at`), in the query workers."""
        p = project_for(principal, project)
        now = datetime.now(UTC)
        when = parse_time(at, now, "at") or now
        found, error = await ctx.run(store.status)
        budgets = tuple(scoped(found, p))
        evaluation = await ctx.query(measure_all, Local.ANALYTICS, budgets, when) if budgets else None
        return {"project": p, "at": when, **outcome(evaluation, p), "file_error": error}

    @router.get("/budgets/status", response_model=StatusOut, responses=read_errors)
    async def budget_status(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The server's last evaluation of the project's budgets (it evaluates every SPANLAKE_BUDGET_INTERVAL s)."""
        p = project_for(principal, project)
        watch = ctx.budget_watch
        latest = getattr(watch, "latest", None)
        _, error = await ctx.run(store.status)
        return {"project": p, "interval_s": float(watch.interval_s) if watch is not None else 0.0,
                "at": latest.at if latest is not None else None,
                **outcome(latest.evaluation if latest is not None else None, p), "file_error": error}  # fmt: skip

    @router.get("/budgets/{name}", response_model=BudgetOut, responses=responses(400, 401, 403, 404, 422, 429))
    async def get_budget(
        principal: Annotated[Principal | None, reader], name: BudgetName, project: str | None = None
    ) -> Any:
        """One budget of the project (404 when it has none of that name)."""
        p = one_project(principal, project)
        found, _ = await ctx.run(store.status)
        for b in scoped(found, p):
            if b.name == name:
                return budget_out(b, latest_readings())
        raise NotFound(f"no budget {name!r} in project {p!r}")

    write_errors = responses(400, 401, 403, 409, 413, 422, 429)

    @router.post(
        "/budgets",
        status_code=201,
        response_model=BudgetOut,
        responses=write_errors,
        openapi_extra=request_body(BUDGET_SCHEMA | {"required": ["name", "metric", "window"]}),
    )
    async def create_budget(
        request: Request, principal: Annotated[Principal | None, admin], project: str | None = None
    ) -> Any:
        """Create a budget (409 when the project has one of that name already)."""
        body = await body_of(request, principal, project)
        budget, _ = await put(body, create=True)
        return budget_out(budget, {})

    @router.put(
        "/budgets/{name}",
        response_model=BudgetOut,
        responses=write_errors,
        openapi_extra=request_body(BUDGET_SCHEMA),
    )
    async def put_budget(
        request: Request, principal: Annotated[Principal | None, admin], name: BudgetName, project: str | None = None
    ) -> Any:
        """Create or replace a budget of the project."""
        body = await body_of(request, principal, project)
        if body.setdefault("name", name) != name:
            raise InvalidRequest(f"the body names budget {body['name']!r}, the path {name!r}")
        budget, _ = await put(body, create=False)
        return budget_out(budget, {})  # a reading of the old definition would mislead

    @router.delete("/budgets/{name}", response_model=BudgetOut, responses=responses(400, 401, 403, 404, 422, 429))
    async def delete_budget(
        principal: Annotated[Principal | None, admin], name: BudgetName, project: str | None = None
    ) -> Any:
        """Remove a budget of the project (its alerts stop; 404 when there is none)."""
        p = one_project(principal, project)
        try:
            gone = await ctx.run(store.remove_budget, p, name)
        except NoSuchEntry as e:
            raise NotFound(str(e)) from None
        except BudgetError as e:
            raise InvalidRequest(str(e)) from None
        return budget_out(gone, {})

    @router.get("/destinations", response_model=DestinationsOut, responses=read_errors)
    async def list_destinations(principal: Annotated[Principal | None, admin], project: str | None = None) -> Any:
        """Where alerts can go (shared by every project); `used_by` lists the caller's budgets
        sending there. Secrets are never in the file (only the names of environment variables)."""
        p = project_for(principal, project)
        found, error = await ctx.run(store.status)
        mine = scoped(found, p)
        out = [destination_out(d, [b.key for b in mine if d.name in b.destinations]) for d in found.destinations]
        return {"destinations": out, "file_error": error}

    return router
