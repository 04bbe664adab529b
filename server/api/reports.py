"""The analytics reports over HTTP, with the filters and group-by of `spanlake report`.

    GET /api/v1/reports                  the reports and what each shows
    GET /api/v1/reports/{name}           one report as JSON: {report, since, until, source, columns, rows}

Every report takes since/until (default: the last 24 hours), project, service, model,
provider, prompt_name, prompt_version, attr=key=value (repeatable), group_by (repeatable or
comma-separated: dimensions, attr:KEY, a time bucket) and default_outcome. Report-specific
parameters: slow_ms (latency), sort and limit (task-list), limit (validation-errors,
retrieved-documents), by/a/b (compare), source (cost), k (retrieval). Values are bound parameters.
"""

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from spanlake.analytics import rollup_reports as RR
from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import ApiContext, attributes, jsonable, project_for, text, texts, window
from spanlake.server.api.problems import responses
from spanlake.server.query_workers import Local

REPORTS = {
    "latency": "p50/p90/p95/p99/max of tasks end to end and of each step category; errors, timeouts, retries, TTFT",
    "cost": "calls, tokens and cost; tasks, success rate, cost per task and per successful task",
    "unpriced": "models called that have no price (their cost is unknown, never counted as zero)",
    "tasks": "tasks by outcome and by how the outcome was decided; success rate, duration, cost",
    "task-list": "single tasks, slowest first (sort=cost: most expensive first)",
    "validation": "validation checks and failure rate per validator (group by model, prompt_version, day, ...)",
    "validation-errors": "the most frequent validation failure messages, grouped by pattern",
    "retrieval": "per data source: queries, documents per query, empty-result rate, scores, latency, "
    "hit rate and precision at k where documents were judged",
    "retrieved-documents": "the documents retrieved most often",
    "compare": "two prompt versions or models side by side (by=prompt_version&a=v1&b=v2)",
}
MAX_ROWS_LIMIT = 1000


class ReportOut(BaseModel):
    """A report's rows (one object per row, `columns` in order)."""

    report: str
    since: datetime
    until: datetime
    source: str = Field(description="raw, or rollups+raw when the cost report read hourly rollups")
    columns: list[str]
    rows: list[dict[str, Any]]


class ReportInfo(BaseModel):
    name: str
    description: str
    path: str


class Common:
    """The filters and group-by every report takes (a FastAPI dependency)."""

    def __init__(
        self,
        since: Annotated[str | None, Query(description="Start: a duration ago (30m, 24h, 7d) or ISO time")] = None,
        until: Annotated[str | None, Query(description="End (exclusive): a duration ago or ISO time; now")] = None,
        project: str | None = None,
        service: str | None = None,
        model: Annotated[str | None, Query(description="Requested or answering model")] = None,
        provider: str | None = None,
        prompt_name: str | None = None,
        prompt_version: str | None = None,
        attr: Annotated[list[str], Query(description="key=value: only spans with this attribute")] = [],  # noqa: B006
        group_by: Annotated[
            list[str],
            Query(
                description="project, service, model, provider, prompt_name, prompt_version, task_name, outcome, "
                "outcome_source, validator, data_source, attr:KEY, or hour/day/week/month (per report)"
            ),
        ] = [],  # noqa: B006
        default_outcome: Literal["unknown", "success", "failure"] = "unknown",
        source: Annotated[
            Literal["auto", "raw", "rollups"],
            Query(
                description="auto: whole hours whose hourly rollups are up to date from them, the rest (ragged "
                "edges, stale hours) from raw spans, everything raw when rollups cannot answer (attribute "
                "filters or groupings, minute buckets); rollups: insist (400 when they cannot); raw: spans only"
            ),
        ] = "auto",
    ) -> None:
        self.since, self.until = since, until
        self.project = project
        self.dims = {"service": service, "model": model, "provider": provider}
        self.dims |= {"prompt_name": prompt_name, "prompt_version": prompt_version}
        self.attr = attr
        self.group_by = group_by
        self.default_outcome = default_outcome
        self.source = source

    def resolve(self, principal: Principal | None) -> tuple[Any, list[str], Any]:
        """(analytics Filters, group-by keys, TaskOptions)."""
        from spanlake.analytics.spans import Filters
        from spanlake.analytics.task_outcomes import TaskOptions

        start, end = window(self.since, self.until)
        dims = {k: text(v, k) for k, v in self.dims.items()}
        project = project_for(principal, self.project)
        filters = Filters(since=start, until=end, project=project, attributes=attributes(self.attr), **dims)
        keys = [k.strip() for item in texts(self.group_by, "group_by") for k in item.split(",") if k.strip()]
        return filters, keys, TaskOptions(default_outcome=self.default_outcome)


def run_report(run: Callable[..., Any], an: Any, filters: Any, keys: list[str], opts: Any) -> tuple[Any, str]:
    """(rows, source) of `run(an, filters, keys, opts)`; runs in a query worker."""
    try:
        out = run(an, filters, keys, opts)
    except ValueError as e:
        raise InvalidRequest(str(e)) from None
    return out if isinstance(out, tuple) else (out, "raw")


def _rolled(an: Any, f: Any, k: list[str], o: Any, *, name: str, source: str, kw: dict[str, Any]) -> Any:
    return RR.report(an, name, f, k, options=o, source=source, **kw)


def _listed(an: Any, f: Any, k: list[str], o: Any, *, name: str, source: str, kw: dict[str, Any]) -> Any:
    return RR.list_report(an, name, f, options=o, source=source, **kw)


def _compared(an: Any, f: Any, k: list[str], o: Any, *, by: str, a: str, b: str, source: str) -> Any:
    return RR.compare(an, f, by, a, b, options=o, source=source)


def make_reports_router(ctx: ApiContext) -> APIRouter:
    """The /reports routes."""
    from spanlake.analytics.reports.compare import BY

    router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
    reader = Depends(ctx.principal("read"))
    errors = responses(400, 401, 403, 422, 429)
    Limit = Annotated[int, Query(ge=1, le=MAX_ROWS_LIMIT)]

    async def answer(name: str, principal: Principal | None, common: Common, run: Callable[..., Any]) -> Any:
        filters, keys, opts = common.resolve(principal)
        df, source = await ctx.query(run_report, run, Local.ANALYTICS, filters, keys, opts)
        rows = [jsonable(r) for r in df.to_dicts()]
        return {"report": name, "since": filters.since, "until": filters.until, "source": source,
                "columns": df.columns, "rows": rows}  # fmt: skip

    def rolled(common: Common, name: str, **kw: Any) -> Callable[..., Any]:
        """A grouped report, from rollups where they can answer (`common.source`)."""
        return partial(_rolled, name=name, source=common.source, kw=kw)

    def listed(common: Common, name: str, **kw: Any) -> Callable[..., Any]:
        """A list report, from rollups where they can answer (`common.source`)."""
        return partial(_listed, name=name, source=common.source, kw=kw)

    @router.get("", response_model=list[ReportInfo], responses=responses(401, 429))
    async def list_reports(principal: Annotated[Principal | None, reader]) -> Any:
        """The reports this API serves."""
        return [{"name": n, "description": d, "path": f"/api/v1/reports/{n}"} for n, d in REPORTS.items()]

    Common_ = Annotated[Common, Depends()]
    Reader = Annotated[Principal | None, reader]

    @router.get("/latency", response_model=ReportOut, responses=errors, summary=REPORTS["latency"])
    async def latency(principal: Reader, common: Common_, slow_ms: Annotated[float, Query(ge=0, le=1e9)] = 5000.0):
        return await answer("latency", principal, common, rolled(common, "latency", slow_ms=slow_ms))

    @router.get("/cost", response_model=ReportOut, responses=errors, summary=REPORTS["cost"])
    async def cost(principal: Reader, common: Common_):
        return await answer("cost", principal, common, rolled(common, "cost"))

    @router.get("/unpriced", response_model=ReportOut, responses=errors, summary=REPORTS["unpriced"])
    async def unpriced(principal: Reader, common: Common_):
        return await answer("unpriced", principal, common, listed(common, "unpriced"))

    @router.get("/tasks", response_model=ReportOut, responses=errors, summary=REPORTS["tasks"])
    async def tasks(principal: Reader, common: Common_):
        return await answer("tasks", principal, common, rolled(common, "tasks"))

    @router.get("/task-list", response_model=ReportOut, responses=errors, summary=REPORTS["task-list"])
    async def task_list(
        principal: Reader,
        common: Common_,
        sort: Literal["duration", "cost", "start"] = "duration",
        limit: Limit = 20,
    ):
        return await answer("task-list", principal, common, listed(common, "task-list", sort=sort, limit=limit))

    @router.get("/validation", response_model=ReportOut, responses=errors, summary=REPORTS["validation"])
    async def validation(principal: Reader, common: Common_):
        return await answer("validation", principal, common, rolled(common, "validation"))

    @router.get("/validation-errors", response_model=ReportOut, responses=errors, summary=REPORTS["validation-errors"])
    async def validation_errors(principal: Reader, common: Common_, limit: Limit = 20):
        return await answer("validation-errors", principal, common, listed(common, "validation-errors", limit=limit))

    @router.get("/retrieval", response_model=ReportOut, responses=errors, summary=REPORTS["retrieval"])
    async def retrieval(
        principal: Reader,
        common: Common_,
        k: Annotated[int, Query(ge=1, le=1000, description="Hit rate and precision at k (judged queries)")] = 5,
    ):
        """`judged_queries`, `hit_rate_at_k`, `precision_at_k`: over retrieval spans with a relevance judgment."""
        return await answer("retrieval", principal, common, rolled(common, "retrieval", k=k))

    @router.get(
        "/retrieved-documents", response_model=ReportOut, responses=errors, summary=REPORTS["retrieved-documents"]
    )
    async def retrieved_documents(principal: Reader, common: Common_, limit: Limit = 20):
        return await answer("retrieved-documents", principal, common,
                            listed(common, "retrieved-documents", limit=limit))  # fmt: skip

    By = Literal[tuple(BY)]  # type: ignore[valid-type]

    @router.get("/compare", response_model=ReportOut, responses=errors, summary=REPORTS["compare"])
    async def compare(
        principal: Reader,
        common: Common_,
        a: Annotated[str, Query(description="The first value, e.g. v1")],
        b: Annotated[str, Query(description="The second value, e.g. v2")],
        by: By = "prompt_version",
    ):
        a_, b_ = text(a, "a") or "", text(b, "b") or ""
        return await answer("compare", principal, common, partial(_compared, by=by, a=a_, b=b_, source=common.source))

    return router
