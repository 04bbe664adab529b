"""GET /health and GET /ready, served by every role (they import neither DuckDB nor analytics).

/ready checks what this process runs: the write-ahead log takes appends and its folder is
writable, the flusher is alive (roles that write), and the lake is readable (`lake_check`: a
DuckDB read where the API runs, the folder or bucket elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel

from spanlake.server.api.problems import problem, responses
from spanlake.storage.layout import DataDir

READY_RETRY_AFTER_S = 5


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


def lake_reachable(dd: DataDir) -> None:
    """Raise unless the lake's folder can be listed (locally) or the bucket answers (object storage)."""
    if dd.is_remote:
        dd.store.exists("_ready_probe")
    elif not os.access(dd.lake, os.R_OK | os.X_OK):
        raise PermissionError(str(dd.lake))


def make_health_router(lake_check: Callable[[], None], wal: Any = None, flusher: Any = None) -> APIRouter:
    """Routes /health and /ready; `wal` and `flusher` are checked when given (the roles that write)."""
    router = APIRouter()

    @router.get("/health", tags=["health"], response_model=Health)
    async def health() -> Any:
        """The process is up and serving HTTP."""
        return {"status": "ok"}

    @router.get("/ready", tags=["health"], response_model=Ready, responses=responses(503))
    async def ready() -> Any:
        """Ready for traffic: the write-ahead log takes appends and its folder is writable, the
        flusher is alive and the lake is readable. 503 (problem+json with `checks`) otherwise."""
        checks = await anyio.to_thread.run_sync(_checks, lake_check, wal, flusher)
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", "checks": checks}
        failed = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        response = problem(503, f"not ready: {failed}", "/ready", {"Retry-After": str(READY_RETRY_AFTER_S)})
        return _with_checks(response, checks)

    return router


def _with_checks(response: Response, checks: dict[str, str]) -> Response:
    body = orjson.loads(response.body) | {"checks": checks}
    return Response(orjson.dumps(body), response.status_code, {"Retry-After": str(READY_RETRY_AFTER_S)},
                    response.media_type)  # fmt: skip


def _checks(lake_check: Callable[[], None], wal: Any, flusher: Any) -> dict[str, str]:
    checks: dict[str, str] = {}
    if wal is not None:
        checks["wal"] = "ok"
        if not wal.running:
            checks["wal"] = "write-ahead log is not running"
        elif not _writable(wal.directory):
            checks["wal"] = f"cannot write in {wal.directory}"
    if flusher is not None:
        checks["flusher"] = "ok" if flusher.alive else "flusher is not running"
    try:
        lake_check()
        checks["lake"] = "ok"
    except Exception as e:
        checks["lake"] = f"cannot read the lake: {type(e).__name__}"
    return checks


def _writable(directory: Path) -> bool:
    probe = directory / f".ready-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
        probe.unlink()
        return True
    except OSError:
        return False
