"""Saved trace filters (for labelling queues) over HTTP: the dashboard's way to save one.

    GET /api/v1/saved-filters?project=P          the project's saved filters, by name
    GET /api/v1/saved-filters/{name}?project=P   one (404 when there is none)
    PUT /api/v1/saved-filters/{name}?project=P   {"filters": {...}, "range_s"?, "saved_by"?}: save or replace

Reading needs a read key of the project, saving a write key (server.api.scope pins the project).
Stored by storage.saved_filters (one JSON file per filter, replaced atomically). No
`from __future__ import annotations` here: FastAPI resolves the route signatures at runtime.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import ApiContext, project_for
from spanlake.server.api.problems import NotFound, responses
from spanlake.storage.saved_filters import NAME_RE, SavedFilters

FilterName = Annotated[
    str, Path(pattern=NAME_RE.pattern, description="Letters, digits, spaces, '_', '.', '-'; at most 64")
]
Text = Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")]


class SavedFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: dict[str, Any] = Field(description="The trace list's fields other than the window, as plain JSON")
    range_s: float | None = Field(default=None, gt=0, le=10 * 366 * 86400, description="Window length; null: all time")
    saved_by: Text | None = None


class SavedFilterOut(BaseModel):
    name: str
    project: str
    range_s: float | None
    filters: dict[str, Any]
    saved_by: str | None
    saved_at: str


class SavedFiltersOut(BaseModel):
    project: str
    saved_filters: list[SavedFilterOut]


def make_saved_filters_router(ctx: ApiContext) -> APIRouter:
    """Routes /api/v1/saved-filters."""
    router = APIRouter(prefix="/api/v1", tags=["saved filters"])
    reader = Depends(ctx.principal("read"))
    writer = Depends(ctx.principal("write"))
    store = SavedFilters(ctx.data_dir)

    def project_of(principal: Principal | None, project: str | None) -> str:
        p = project_for(principal, project) or ctx.default_project
        return p

    @router.get("/saved-filters", response_model=SavedFiltersOut, responses=responses(400, 401, 403, 422, 429))
    async def list_filters(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The project's saved filters, by name."""
        p = project_of(principal, project)
        return {"project": p, "saved_filters": await ctx.run(store.list, p)}

    @router.get(
        "/saved-filters/{name}", response_model=SavedFilterOut, responses=responses(400, 401, 403, 404, 422, 429)
    )
    async def get_filter(
        principal: Annotated[Principal | None, reader], name: FilterName, project: str | None = None
    ) -> Any:
        """One saved filter (404 when the project has none of that name)."""
        p = project_of(principal, project)
        found = await ctx.run(store.get, p, name)
        if found is None:
            raise NotFound(f"no saved filter {name!r} in project {p!r}")
        return found

    @router.put(
        "/saved-filters/{name}", response_model=SavedFilterOut, responses=responses(400, 401, 403, 413, 422, 429)
    )
    async def save_filter(
        principal: Annotated[Principal | None, writer],
        name: FilterName,
        body: SavedFilterIn,
        project: str | None = None,
    ) -> Any:
        """Save (or replace) a filter of the project; 400 when it is over the size limit."""
        p = project_of(principal, project)
        try:
            return await ctx.run(store.save, p, name, body.filters, body.range_s, body.saved_by)
        except ValueError as e:
            raise InvalidRequest(str(e)) from None

    return router
