"""The analytics reports over HTTP, with the filters and group-by of `spanlake report`.

    GET /api/v1/reports                  the reports and what each shows
    GET /api/v1/reports/{name}           one report as JSON: {report, since, until, source, columns, rows}

One route per report of analytics.reports.registry, with its parameters. Every report takes
since/until (default: the last 24 hours), project, service, model, provider, prompt_name,
prompt_version, task_name, attr=key=value (repeatable), group_by (repeatable or comma-separated:
dimensions, attr:KEY, a time bucket), group_by_attr=KEY (repeatable, the key exactly),
default_outcome and source (auto, raw, rollups).
Report-specific parameters today: slow_ms (latency), sort and limit (task-list), limit
(validation-errors, retrieved-documents), by/a/b (compare), k (retrieval). Values are bound
parameters.
"""

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from spanlake.analytics.reports.registry import REPORTS, run_report
from spanlake.analytics.reports.report import Param, Report
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import ApiContext, attr_text, attributes, jsonable, project_for, text, texts, window
from spanlake.server.api.problems import responses
from spanlake.server.query_workers import Local


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
        task_name: Annotated[
            str | None,
            Query(
                description="Only tasks of this name (the task's name, else its span name); span-level figures "
                "count the spans whose innermost task has this name"
            ),
        ] = None,
        attr: Annotated[list[str], Query(description="key=value: only spans with this attribute")] = [],  # noqa: B006
        group_by: Annotated[
            list[str],
            Query(
                description="project, service, model, provider, prompt_name, prompt_version, task_name, outcome, "
                "outcome_source, validator, data_source, attr:KEY, or hour/day/week/month (per report)"
            ),
        ] = [],  # noqa: B006
        group_by_attr: Annotated[
            list[str],
            Query(
                description="An attribute key to group by, exactly as spans carry it (repeatable; unlike attr:KEY "
                "in group_by, never split at commas or trimmed)"
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
        self.dims |= {"prompt_name": prompt_name, "prompt_version": prompt_version, "task_name": task_name}
        self.attr = attr
        self.group_by = group_by
        self.group_by_attr = group_by_attr
        self.default_outcome = default_outcome
        self.source = source

    def resolve(self, principal: Principal | None) -> tuple[Any, list[str], Any]:
        """(analytics Filters, group-by keys, TaskOptions)."""

        start, end = window(self.since, self.until)
        dims = {k: text(v, k) for k, v in self.dims.items()}
        project = project_for(principal, self.project)
        filters = Filters(since=start, until=end, project=project, attributes=attributes(self.attr), **dims)
        keys = [k.strip() for item in texts(self.group_by, "group_by") for k in item.split(",") if k.strip()]
        keys += [f"attr:{attr_text(k, 'group_by_attr')}" for k in self.group_by_attr]
        return filters, keys, TaskOptions(default_outcome=self.default_outcome)


def report_rows(
    an: Any, filters: Any, keys: list[str], opts: Any, name: str, source: str, params: dict[str, Any]
) -> tuple[Any, str]:
    """(rows, source used) of report `name`; runs in a query worker."""
    try:
        return run_report(an, name, filters, keys, source, options=opts, **params)
    except ValueError as e:
        raise InvalidRequest(str(e)) from None


def _annotation(p: Param) -> Any:
    """The FastAPI query parameter of a report parameter."""
    kind: Any = Literal[p.choices] if p.choices else p.type
    if p.ge is None and p.le is None and p.help is None:
        return kind
    return Annotated[kind, Query(ge=p.ge, le=p.le, description=p.help)]


def _endpoint(report: Report, run: Callable[..., Any], reader: Any) -> Callable[..., Any]:
    """The handler of one report: the common filters and the report's own parameters."""
    params = [p for p in report.params if p.public]
    free_text = {p.name for p in params if p.type is str and not p.choices}

    async def endpoint(principal: Any, common: Any, **values: Any) -> Any:
        given = {k: text(v, k) if k in free_text else v for k, v in values.items()}  # None: not given
        return await run(report.name, principal, common, **given)

    keyword = inspect.Parameter.KEYWORD_ONLY
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("principal", keyword, annotation=Annotated[Principal | None, reader]),
            inspect.Parameter("common", keyword, annotation=Annotated[Common, Depends()]),
            *(
                inspect.Parameter(
                    p.name,
                    keyword,
                    annotation=_annotation(p),
                    default=inspect.Parameter.empty if p.required else p.default,
                )
                for p in params
            ),
        ]
    )
    endpoint.__name__ = report.name.replace("-", "_")
    endpoint.__doc__ = report.description
    return endpoint


def make_reports_router(ctx: ApiContext) -> APIRouter:
    """The /reports routes."""
    router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
    reader = Depends(ctx.principal("read"))
    errors = responses(400, 401, 403, 422, 429)

    async def answer(name: str, principal: Principal | None, common: Common, params: dict[str, Any]) -> Any:
        filters, keys, opts = common.resolve(principal)
        args = (filters, keys, opts, name, common.source, params)
        df, source = await ctx.query(report_rows, Local.ANALYTICS, *args)
        rows = [jsonable(r) for r in df.to_dicts()]
        return {"report": name, "since": filters.since, "until": filters.until, "source": source,
                "columns": df.columns, "rows": rows}  # fmt: skip

    async def run(name: str, principal: Principal | None, common: Common, **params: Any) -> Any:
        """Report `name`, from rollups where they can answer (`common.source`)."""
        return await answer(name, principal, common, params)

    @router.get("", response_model=list[ReportInfo], responses=responses(401, 429))
    async def list_reports(principal: Annotated[Principal | None, reader]) -> Any:
        """The reports this API serves."""
        return [{"name": n, "description": r.summary_for("api"), "path": f"/api/v1/reports/{n}"}
                for n, r in REPORTS.items()]  # fmt: skip

    for report in REPORTS.values():
        router.add_api_route(
            f"/{report.name}",
            _endpoint(report, run, reader),
            methods=["GET"],
            response_model=ReportOut,
            responses=errors,
            summary=report.summary_for("api"),
        )
    return router
