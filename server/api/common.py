"""What the read API routes share: who is asking, which project, time and text parameters,
and running lake queries off the event loop: heavy ones in the query workers
(server.query_workers), light ones in threads (at most LAKE_SLOTS at a time)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
import orjson
from fastapi import Request

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import parse_attr_filter, parse_duration
from spanlake.collector.auth import DISABLED, Authenticator, Principal, check_project
from spanlake.collector.errors import InvalidRequest
from spanlake.collector.http_receiver import read_body
from spanlake.server.query_workers import Local, QueryPool
from spanlake.storage.keys import Scope
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, valid_project
from spanlake.storage.reader import Lake

LAKE_SLOTS = 4  # concurrent lake queries per collector (2 cores: more only queue in DuckDB)
MAX_TEXT = 1024  # longest filter value
MAX_ATTR = 8192  # longest attribute key (or key=value) to filter or group on
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
T = TypeVar("T")


@dataclass
class ApiContext:
    """The collector's pieces the API reads from (one per HTTP app)."""

    data_dir: DataDir
    default_project: str = DEFAULT_PROJECT
    auth: Authenticator = DISABLED
    queries: QueryPool | None = None
    budget_watch: Any = None  # server.budget_watch.BudgetWatch, where the server runs one
    evaluation_watch: Any = None  # server.evaluation_watch.EvaluationWatch, where the server runs one
    _cache: dict[str, Any] = field(default_factory=dict)

    def analytics(self) -> Any:
        """One Analytics (lake reader + price book) for the app's lifetime."""
        if "an" not in self._cache:
            self._cache["an"] = Analytics(Lake(self.data_dir))
        return self._cache["an"]

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking lake query in a worker thread, at most LAKE_SLOTS at once."""
        if "slots" not in self._cache:
            self._cache["slots"] = anyio.CapacityLimiter(LAKE_SLOTS)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._cache["slots"])

    async def query(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a heavy lake query in the query workers (429 when their queue is full); `fn` is
        module-level, Local.ANALYTICS / Local.LAKE stand for the reader. Without query
        workers, like run()."""
        if self.queries is not None:
            return await self.queries.run(fn, *args)
        stand_in = {Local.ANALYTICS: self.analytics(), Local.LAKE: self.analytics().lake}
        return await self.run(fn, *(stand_in[a] if isinstance(a, Local) else a for a in args))

    def principal(self, need: Scope) -> Callable[[Request], Awaitable[Principal | None]]:
        """A dependency authenticating the request for `need` (None when authentication is off)."""

        async def dep(request: Request) -> Principal | None:
            peer = request.client.host if request.client else ""
            return self.auth.authenticate(request.headers.get("authorization"), need, peer)

        return dep


def project_for(principal: Principal | None, project: str | None) -> str | None:
    """The project a read acts on: the key's (403 when another is named); with authentication
    off, the one named (None: every project)."""
    if project is not None and not valid_project(project):
        raise InvalidRequest("invalid project name (letters, digits, '_', '.', '-'; at most 64)")
    return check_project(principal, project)


def text(value: str | None, name: str) -> str | None:
    """A filter value: at most MAX_TEXT characters, no NUL or other control characters but tab."""
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise InvalidRequest(f"{name} is longer than {MAX_TEXT} characters")
    if any((ord(c) < 32 and c != "\t") or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidRequest(f"{name} contains a control character")
    return value


def texts(values: Sequence[str], name: str) -> list[str]:
    return [text(v, name) or "" for v in values]


def attr_text(value: str, name: str) -> str:
    """An attribute key or `key=value`: any text a span may carry (control characters too, as
    they are compared as bound values), at most MAX_ATTR characters."""
    if len(value) > MAX_ATTR:
        raise InvalidRequest(f"{name} is longer than {MAX_ATTR} characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidRequest(f"{name} contains a lone surrogate")
    return value


def attributes(pairs: Sequence[str]) -> dict[str, str]:
    r"""`key=value` parameters → {key: value} (exact matches on span attributes; in the key,
    `\=` stands for '=' and `\\` for a backslash)."""

    out: dict[str, str] = {}
    for item in pairs:
        item = attr_text(item, "attr")
        try:
            key, value = parse_attr_filter(item)
        except ValueError:
            key, value = "", ""
        if not key:  # the empty key too: far more often a mistake than a key (group_by_attr takes it)
            raise InvalidRequest("attr: use key=value (write \\= for an '=' in the key)")
        if key in out:
            raise InvalidRequest(f"attr {key!r} given twice")
        out[key] = value
    return out


def parse_time(value: str | None, now: datetime, name: str) -> datetime | None:
    """A duration ago ('30m', '24h', '7d') or an ISO 8601 time (UTC unless it says otherwise)."""

    if value is None or value == "":
        return None
    value = text(value, name) or ""
    try:
        t = now - parse_duration(value)
    except (ValueError, OverflowError):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest(f"{name}: use a duration such as 24h or 7d, or an ISO 8601 time") from None
        t = t if t.tzinfo else t.replace(tzinfo=UTC)
    if not EARLIEST <= t <= LATEST:
        raise InvalidRequest(f"{name} must be between 1970 and 2200")
    return t.astimezone(UTC)


def window(since: str | None, until: str | None, default_since: str = "24h") -> tuple[datetime, datetime]:
    """The [since, until) window of a request; `until` defaults to now."""
    now = datetime.now(UTC)
    start = parse_time(since or default_since, now, "since") or now
    end = parse_time(until, now, "until") or now
    if start >= end:
        raise InvalidRequest("since must be before until")
    return start, end


def finite(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number")
    return value


def event_bytes(events: Any) -> bytes:
    """JSON of label or dataset events for the WAL; InvalidRequest (400) for a value JSON
    cannot carry here, such as an integer outside 64 bits in free-form metadata."""
    try:
        return orjson.dumps(events)
    except TypeError as e:
        raise InvalidRequest(f"request body: {e} (numbers must fit in 64 bits)") from None


def jsonable(value: Any) -> Any:
    """Rows for a JSON answer: non-finite floats become null, datetimes ISO strings, bytes hex."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def request_body(schema: Any, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body for routes that read the raw body
    themselves; `schema` is a pydantic model or a JSON schema (its $defs are inlined)."""
    doc = schema.model_json_schema() if hasattr(schema, "model_json_schema") else dict(schema)
    defs = doc.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    body = {"required": required, "content": {"application/json": {"schema": inline(doc)}}}
    return {"requestBody": body}


def strings_ok(value: Any, where: str = "body") -> None:
    """Every text of a body: no control characters or lone surrogates, at most MAX_TEXT long."""
    if isinstance(value, str):
        text(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            text(k, where)
            strings_ok(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            strings_ok(v, f"{where}[{i}]")


async def project_object(
    request: Request, principal: Principal | None, project: str | None, default_project: str, max_bytes: int, what: str
) -> dict[str, Any]:
    """The JSON object of a write to a project's file (a budget, an evaluator, ...): its texts
    checked, its `project` checked against the key and the query's, and filled in."""
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() != "application/json":
        raise InvalidRequest("send Content-Type: application/json")
    try:
        body = orjson.loads(await read_body(request, max_bytes))
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"body must be a JSON object ({what})")
    strings_ok(body)
    named = body.get("project")
    if named is not None and (not isinstance(named, str) or not valid_project(named)):
        raise InvalidRequest("project: letters, digits, '_', '.', '-'; at most 64")
    check_project(principal, named)  # 403: another project's key
    in_query = project_for(principal, project)
    if named is not None and in_query is not None and named != in_query:
        raise InvalidRequest(f"the body names project {named!r}, ?project= names {in_query!r}")
    body["project"] = named or in_query or default_project
    return body
