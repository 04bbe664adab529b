"""The REST API under /api/v1 (docs/api.md): one router per resource, mounted on the HTTP
app (server/http.py) by the roles that serve reads."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from spanlake.server.api.admin import make_admin_router, read_lake
from spanlake.server.api.budgets import make_budgets_router
from spanlake.server.api.common import ApiContext
from spanlake.server.api.evaluators import make_evaluators_router
from spanlake.server.api.experiments import make_experiments_router
from spanlake.server.api.labels import make_labels_router
from spanlake.server.api.reports import make_reports_router
from spanlake.server.api.saved_filters import make_saved_filters_router
from spanlake.server.api.traces import make_traces_router
from spanlake.server.http import HttpParts


def mount_api(app: FastAPI, parts: HttpParts) -> Callable[[], None]:
    """Include every API router; returns /ready's lake check (a read of the newest hour)."""
    dd, auth = parts.data_dir, parts.auth
    ctx = ApiContext(dd, parts.default_project, auth, parts.queries, parts.budget_watch, parts.evaluation_watch)
    app.include_router(make_labels_router(parts.writer, dd, parts.default_project, auth, parts.queries))
    app.include_router(make_traces_router(ctx))
    app.include_router(make_reports_router(ctx))
    app.include_router(make_admin_router(ctx))
    app.include_router(make_saved_filters_router(ctx))
    app.include_router(make_budgets_router(ctx))
    app.include_router(make_experiments_router(ctx))
    app.include_router(make_evaluators_router(ctx))
    return lambda: read_lake(ctx)
