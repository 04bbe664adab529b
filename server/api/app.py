"""The HTTP app every role serves: /health and /ready always, OTLP/HTTP where the role
receives (the collector's router), and the REST API under /api/v1 where it serves reads.

Importing this module loads neither DuckDB nor spanlake.analytics (the ingest role relies on
that): the API's routers load them when they are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

from spanlake.collector.auth import DISABLED, Authenticator
from spanlake.server.api import problems
from spanlake.server.api.admin import make_admin_router, read_lake
from spanlake.server.api.common import ApiContext
from spanlake.server.api.health import lake_reachable, make_health_router
from spanlake.server.api.labels import make_labels_router
from spanlake.server.api.limits import API_PREFIX, ApiLimits, ApiLimitsMiddleware
from spanlake.server.api.reports import make_reports_router
from spanlake.server.api.saved_filters import make_saved_filters_router
from spanlake.server.api.scope import ApiScopeMiddleware
from spanlake.server.api.traces import make_traces_router
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir


@dataclass
class HttpParts:
    """What one process serves over HTTP. `writer` takes label and dataset records (an object
    with `async append(record)`); `wal` and `flusher` are what /ready checks."""

    data_dir: DataDir
    default_project: str = DEFAULT_PROJECT
    auth: Authenticator = DISABLED
    otlp: APIRouter | None = None
    api: bool = False
    writer: Any = None
    wal: Any = None
    flusher: Any = None
    limits: ApiLimits | None = None


def make_http_app(parts: HttpParts) -> FastAPI:
    """The FastAPI app for `parts` (see docs/api.md for the API)."""
    app = FastAPI(
        title="spanlake API",
        version="1",
        description="Traces, spans, reports, labels, datasets, projects and keys. Errors are "
        "application/problem+json (RFC 9457). See docs/api.md.",
        docs_url=f"{API_PREFIX}docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}openapi.json",
    )
    problems.install(app)
    if parts.otlp is not None:
        app.include_router(parts.otlp)
    dd, auth = parts.data_dir, parts.auth
    lake_check = lambda: lake_reachable(dd)  # noqa: E731
    if parts.api:
        ctx = ApiContext(dd, parts.default_project, auth)
        app.include_router(make_labels_router(parts.writer, dd, parts.default_project, auth))
        app.include_router(make_traces_router(ctx))
        app.include_router(make_reports_router(ctx))
        app.include_router(make_admin_router(ctx))
        app.include_router(make_saved_filters_router(ctx))
        lake_check = lambda: read_lake(ctx)  # noqa: E731
    app.include_router(make_health_router(lake_check, parts.wal, parts.flusher))
    if auth.enabled:
        app.add_middleware(ApiScopeMiddleware, auth=auth)
    app.add_middleware(ApiLimitsMiddleware, limits=parts.limits or ApiLimits.from_env(), auth=auth)
    app.openapi = lambda: problems.openapi_of(app)  # type: ignore[method-assign]
    return app
