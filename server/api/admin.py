"""Projects and keys over HTTP.

    GET    /api/v1/projects          the projects the caller may see
    GET    /api/v1/keys              keys (never tokens): an admin key sees its project's
    POST   /api/v1/keys              {"scope", "name"?, "project"?} → 201 with the token, shown this once
    DELETE /api/v1/keys/{key_id}     revoke a key

/health and /ready are in server/api/health.py (every role serves them).

Managing keys needs the admin capability: with authentication on, a key of scope `admin`
(created with `spanlake keys create --scope admin`), which manages its own project's keys
only; with authentication off (loopback only) anyone who can reach the port could edit the
keys file on this machine anyway, so the key routes are open there.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from spanlake.collector.auth import Principal, check_project
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import ApiContext, project_for
from spanlake.server.api.health import lake_reachable
from spanlake.server.api.problems import NotFound, responses
from spanlake.storage.keys import ApiKey, KeyStore, keys_path
from spanlake.storage.layout import valid_project
from spanlake.storage.window import connect_window


class ProjectOut(BaseModel):
    name: str


class ProjectsOut(BaseModel):
    projects: list[ProjectOut]


class KeyOut(BaseModel):
    """A key as stored, without its token or hash."""

    id: str
    project: str
    scope: Literal["read", "write", "admin"]
    name: str
    created_at: datetime
    revoked_at: datetime | None


class KeysOut(BaseModel):
    keys: list[KeyOut]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["read", "write", "admin"]
    name: Annotated[str, StringConstraints(max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""
    project: str | None = Field(default=None, description="Default: the admin key's project (required with auth off)")


class CreatedKey(BaseModel):
    key: KeyOut
    token: str = Field(description="The bearer token; store it now, it cannot be shown again")


def key_out(k: ApiKey) -> dict[str, Any]:
    revoked = datetime.fromtimestamp(k.revoked_at, UTC) if k.revoked_at is not None else None
    return {"id": k.id, "project": k.project, "scope": k.scope, "name": k.name,
            "created_at": datetime.fromtimestamp(k.created_at, UTC), "revoked_at": revoked}  # fmt: skip


def make_admin_router(ctx: ApiContext) -> APIRouter:
    """Routes /api/v1/projects and /api/v1/keys."""
    router = APIRouter()
    reader = Depends(ctx.principal("read"))
    admin = Depends(ctx.principal("admin"))
    store = KeyStore(ctx.auth.keys_file if ctx.auth.keys_file is not None else keys_path(ctx.data_dir.root))

    @router.get(
        "/api/v1/projects", tags=["projects"], response_model=ProjectsOut, responses=responses(401, 403, 422, 429)
    )
    async def projects(principal: Annotated[Principal | None, reader]) -> Any:
        """The projects the caller may see: a key's own project; with authentication off, every
        project with data in the lake or a key (and the default project)."""
        if principal is not None:
            names = [principal.project]
        else:
            in_lake = await ctx.run(ctx.data_dir.projects)
            with_keys = {k.project for k in await ctx.run(store.load)}
            names = sorted({*in_lake, *with_keys, ctx.default_project})
        return {"projects": [{"name": n} for n in names]}

    @router.get("/api/v1/keys", tags=["keys"], response_model=KeysOut, responses=responses(400, 401, 403, 422, 429))
    async def list_keys(
        principal: Annotated[Principal | None, admin],
        project: str | None = None,
        include_revoked: bool = False,
    ) -> Any:
        """Keys (id, project, scope, name, created, revoked; never tokens) of the admin key's project."""
        p = project_for(principal, project)
        found = await ctx.run(store.load)
        shown = [k for k in found if (p is None or k.project == p) and (include_revoked or k.active)]
        return {"keys": [key_out(k) for k in shown]}

    @router.post(
        "/api/v1/keys",
        tags=["keys"],
        status_code=201,
        response_model=CreatedKey,
        responses=responses(400, 401, 403, 413, 422, 429),
    )
    async def create_key(principal: Annotated[Principal | None, admin], body: KeyIn, project: str | None = None) -> Any:
        """Create a key in the admin key's project; the answer holds its token, shown only this once."""
        named = body.project if body.project is not None else project
        if principal is None and named is None:
            raise InvalidRequest("project is required (authentication is off)")
        if named is not None and not valid_project(named):
            raise InvalidRequest("invalid project name (letters, digits, '_', '.', '-'; at most 64)")
        p = check_project(principal, named)
        assert p is not None
        key, token = await ctx.run(store.create, p, body.scope, body.name)
        return {"key": key_out(key), "token": token}

    @router.delete(
        "/api/v1/keys/{key_id}",
        tags=["keys"],
        response_model=KeyOut,
        responses=responses(400, 401, 403, 404, 422, 429),
    )
    async def revoke_key(
        principal: Annotated[Principal | None, admin],
        key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{8}$", description="The key's id (8 hex characters)")],
        project: Annotated[str | None, Query()] = None,
    ) -> Any:
        """Revoke a key of the admin key's project (404 for a key of another project)."""
        p = project_for(principal, project)
        found = {k.id: k for k in await ctx.run(store.load)}
        if key_id not in found or (p is not None and found[key_id].project != p):
            raise NotFound(f"no key {key_id}" + (f" in project {p!r}" if p is not None else ""))
        return key_out(await ctx.run(store.revoke, key_id))

    return router


def read_lake(ctx: ApiContext) -> None:
    """/ready's lake check where the API runs: read the lake's newest hour with DuckDB (locally),
    or fetch a file's metadata (object storage)."""
    lake_reachable(ctx.data_dir)
    if ctx.data_dir.is_remote:
        return

    con = connect_window(ctx.analytics().lake, datetime.now(UTC) - timedelta(hours=1), None, derived=False)
    try:
        con.execute("SELECT 1 FROM spans_raw LIMIT 1").fetchall()
    finally:
        con.close()
