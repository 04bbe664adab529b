"""The HTTP app every role serves: /health and /ready always, OTLP/HTTP where the role
receives (the collector's router), and the REST API under /api/v1 where it serves reads
(`mount_api` in server/api/app.py, passed in by the roles that serve it).

Importing this module loads neither DuckDB nor spanlake.analytics: an ingest node serves
this app without the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from spanlake.collector.auth import DISABLED, Authenticator
from spanlake.collector.errors import ExportError
from spanlake.server.api import problems
from spanlake.server.api.health import lake_reachable, make_health_router
from spanlake.server.api.limits import API_PREFIX, ApiLimits, ApiLimitsMiddleware
from spanlake.server.api.scope import ApiScopeMiddleware
from spanlake.server.query_workers import QueryPool
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir

# Mounts the API's routers on the app; returns /ready's lake check for a process that reads the lake.
ApiMount = Callable[[FastAPI, "HttpParts"], Callable[[], None]]


@dataclass
class HttpParts:
    """What one process serves over HTTP. `writer` takes label and dataset records (an object
    with `async append(record)`); `wal` and `flusher` are what /ready checks."""

    data_dir: DataDir
    default_project: str = DEFAULT_PROJECT
    auth: Authenticator = DISABLED
    otlp: APIRouter | None = None
    api: ApiMount | None = None  # the REST API (server.api.app.mount_api), where the role serves it
    writer: Any = None
    wal: Any = None
    flusher: Any = None
    limits: ApiLimits | None = None
    queries: QueryPool | None = None  # heavy API reads run there (server.query_workers)
    budget_watch: Any = None  # server.budget_watch.BudgetWatch: the API shows its latest readings
    metrics: CollectorRegistry | None = None  # served at /metrics (server/metrics.py)
    evaluation_watch: Any = None  # server.evaluation_watch.EvaluationWatch: the API shows its status


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
    if parts.api is not None:
        lake_check = parts.api(app, parts)
    app.include_router(make_health_router(lake_check, parts.wal, parts.flusher))
    if parts.metrics is not None:
        app.include_router(make_metrics_router(parts.metrics, auth))
    if auth.enabled:
        app.add_middleware(ApiScopeMiddleware, auth=auth)
    app.add_middleware(ApiLimitsMiddleware, limits=parts.limits or ApiLimits.from_env(), auth=auth)
    app.openapi = lambda: problems.openapi_of(app)  # type: ignore[method-assign]
    return app


def make_metrics_router(registry: CollectorRegistry, auth: Authenticator) -> APIRouter:
    """GET /metrics in the Prometheus text format; with authentication on, any valid key may read it."""
    router = APIRouter()

    @router.get("/metrics", tags=["health"], response_class=PlainTextResponse, responses=problems.responses(401, 429))
    def metrics(request: Request) -> Response:
        """The server's own metrics (docs/metrics.md lists them), for Prometheus to scrape."""
        try:
            peer = request.client.host if request.client else ""
            auth.authenticate(request.headers.get("authorization"), "read", peer)
        except ExportError as e:
            return problems.from_error(e, request.url.path)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
