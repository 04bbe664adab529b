"""Keys and project scope for the rest of /api/v1 (label reads, label schemas, datasets).

An ASGI middleware in front of those routes, installed only when authentication is on:
it requires a key (a read key for GET, a write key for anything else; the key routes then
ask for an admin key), refuses a request
naming another project than the key's (in the `project` query parameter, or the `project`
field of a JSON body) with 403, and fills in the key's project where the request names none,
so a route never falls back to the default project for a key of another one. Errors are
problems (server.api.problems). The OpenAPI document and its page are public.

POST /api/v1/labels and /api/v1/feedback check keys themselves (server.api.labels).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spanlake.collector.auth import Authenticator, Principal, check_project
from spanlake.collector.errors import ExportError, PayloadTooLarge
from spanlake.server.api.problems import from_error

SELF_CHECKED = frozenset({"/api/v1/labels", "/api/v1/feedback"})  # for POST
PUBLIC = frozenset({"/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/oauth2-redirect"})  # the spec and its page
BODY_PROJECT = re.compile(r"^/api/v1/datasets(/[^/]+/items)?/?$")  # POST bodies with a `project` field
MAX_BODY_BYTES = 4 * 1024 * 1024 + 1024
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _scoped_body(body: bytes, principal: Principal) -> bytes:
    """A JSON object body with its `project` checked against the key and filled in."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body  # the route says what is wrong with it
    if not isinstance(doc, dict):
        return body
    named = doc.get("project")
    check_project(principal, named if isinstance(named, str) else None)
    doc["project"] = principal.project
    return orjson.dumps(doc)


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class ApiScopeMiddleware:
    """Authenticate /api/v1 requests and pin them to the key's project."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope.get("path", ""), scope.get("method", "")
        if (
            scope["type"] != "http"
            or not path.startswith("/api/v1/")
            or path in PUBLIC
            or (method == "POST" and path in SELF_CHECKED)
        ):
            await self.app(scope, receive, send)
            return
        try:
            scope, receive = await self._scoped(scope, receive)
        except ExportError as e:
            await from_error(e, path)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _scoped(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        headers = Headers(scope=scope)
        client = scope.get("client")
        need = "read" if scope["method"] in READ_METHODS else "write"
        principal = self.auth.authenticate(headers.get("authorization"), need, client[0] if client else "")
        if principal is None:
            return scope, receive
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        named = [v for k, v in query if k == "project"]
        for project in named:
            check_project(principal, project)
        if not named:
            query.append(("project", principal.project))
        scope = {**scope, "query_string": urlencode(query).encode("latin-1")}
        if scope["method"] != "POST" or not BODY_PROJECT.match(scope["path"]):
            return scope, receive
        body = _scoped_body(await _read(receive, MAX_BODY_BYTES), principal)
        raw: list[tuple[bytes, bytes]] = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        scope["headers"] = [*raw, (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return scope, replay
