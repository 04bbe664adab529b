"""One error shape for the HTTP API: `application/problem+json` (RFC 9457).

Every error of an /api/v1 route (and of /health, /ready and unknown paths) is a JSON object
with `type`, `title`, `status`, `detail` and `instance`, plus three extension members:
`code` (the matching gRPC status code, as the labels API always sent), `message` (the same
text as `detail`, for clients written against the first labels API) and, for invalid
parameters, `errors` (one `{loc, msg}` per problem). 401 carries `WWW-Authenticate`, 429 and
503 carry `Retry-After`. The OTLP receivers keep their own OTLP-mandated bodies
(collector.http_receiver.error_response).
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import grpc
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from spanlake.collector.errors import ExportError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:spanlake:problem:"
# HTTP status → (problem type slug, gRPC status code number)
KINDS: dict[int, tuple[str, int]] = {
    400: ("invalid-request", 3),
    401: ("unauthenticated", 16),
    403: ("permission-denied", 7),
    404: ("not-found", 5),
    405: ("method-not-allowed", 12),
    409: ("conflict", 10),
    413: ("payload-too-large", 3),
    415: ("unsupported-media-type", 3),
    422: ("invalid-parameters", 3),
    429: ("too-many-requests", 8),
    500: ("internal", 13),
    503: ("unavailable", 14),
}
DESCRIPTIONS = {
    400: "Malformed request: the body or a parameter breaks a rule (detail says which)",
    401: "No key, an unknown key or a revoked key (authentication on)",
    403: "The key may not do this: a read key writing, another project's key, or not an admin key",
    404: "No such resource in the key's project",
    409: "Conflict: someone saved a newer version first, or the name is taken",
    413: "Request body over the size limit",
    415: "Wrong Content-Type",
    422: "A parameter has the wrong type or is out of range",
    429: "Rate limit (per key, or per client address without one) or authentication lock-out; see Retry-After",
    503: "Temporarily unable to serve (write-ahead log full, not ready); see Retry-After",
}


class NotFound(ExportError):
    """No such resource (in the key's project): HTTP 404."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class Conflict(ExportError):
    """The resource exists already (a create naming a taken name): HTTP 409."""

    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class FieldProblem(BaseModel):
    """One invalid parameter or body field."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(description="URI naming the kind of problem (urn:spanlake:problem:<slug>)")
    title: str = Field(description="The HTTP status phrase")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong, for a human")
    instance: str = Field(description="The request path")
    code: int = Field(description="The matching gRPC status code (extension)")
    message: str = Field(description="Same as detail (extension, for clients of the first labels API)")
    errors: list[FieldProblem] | None = Field(default=None, description="Invalid parameters (422 only)")
    checks: dict[str, str] | None = Field(default=None, description="Readiness checks (GET /ready only)")


def problem(
    status: int,
    detail: str,
    instance: str = "",
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    """A problem+json response."""
    slug, code = KINDS.get(status, ("error", 2))
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + slug,
        "title": HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "message": detail,
    }
    if errors is not None:
        body["errors"] = errors
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="spanlake"')
    return Response(orjson.dumps(body), status, headers, PROBLEM_JSON)


def from_error(err: ExportError, instance: str = "") -> Response:
    """The problem for a collector error (status, Retry-After)."""
    headers = {}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
    return problem(err.http_status, err.message, instance, headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses, all problem+json."""
    out: dict[int | str, dict[str, Any]] = {}
    for c in codes:
        entry: dict[str, Any] = {
            "description": DESCRIPTIONS.get(c, HTTPStatus(c).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if c in (429, 503):
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
        out[c] = entry
    return out


def _loc(loc: Any) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


def install(app: FastAPI) -> None:
    """Answer every error FastAPI/Starlette raise with a problem (OTLP routes answer their own)."""

    @app.exception_handler(ExportError)
    async def _export_error(request: Request, exc: ExportError) -> Response:
        return from_error(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"]) or "request"
        return problem(422, f"{where}: {first['msg']}", request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, request.url.path, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error serving %s", request.url.path, exc_info=exc)
        return problem(500, "internal error; see the collector log", request.url.path)


def openapi_of(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error response as a problem+json `Problem`
    (FastAPI's own 422 entries point at its validation schema; they are rewritten here)."""
    if app.openapi_schema:
        return app.openapi_schema

    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    ref = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for code, resp in op.get("responses", {}).items():
                if code.isdigit() and int(code) >= 400:
                    resp["content"] = ref
                    resp["description"] = DESCRIPTIONS.get(int(code), resp.get("description", ""))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
