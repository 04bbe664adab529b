"""OTLP/HTTP receiver: POST /v1/traces, /v1/logs and /v1/metrics, protobuf or JSON, optionally gzipped.

A router the server mounts on its HTTP app (server/http.py), beside the API when the role
serves one.

Answers in the request's content type. Failures carry a `google.rpc.Status` body:
400 malformed, 413 too large, 415 wrong content type or encoding, 503 + Retry-After
when the collector cannot take more right now (the exporter retries those).
"""

from __future__ import annotations

import logging
import math
import zlib

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from starlette.requests import ClientDisconnect

from spanlake.collector.auth import DISABLED, Authenticator
from spanlake.collector.errors import ExportError, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from spanlake.collector.ingest import LOGS, METRICS, TRACES, Encoding, Ingestor, SignalSpec

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def encoding_of(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";")[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    shown = media or "none"
    raise UnsupportedMediaType(f"unsupported Content-Type {shown!r}: send {PROTOBUF} or {JSON}")


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip, refusing output over `limit` bytes (a small bomb stays small)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit:
            raise PayloadTooLarge(f"decompressed body is over the {limit} byte limit")
        if not d.eof:
            raise InvalidRequest("gzip body is truncated")
        if d.unused_data:
            raise InvalidRequest("unexpected data after the gzip stream")
    except zlib.error as e:
        raise InvalidRequest(f"body is not valid gzip: {e}") from None
    return out


def render(message: Message, encoding: Encoding, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if encoding == "json":
        body = json_format.MessageToJson(message, indent=None).encode()
        return Response(body, status_code=status, media_type=JSON, headers=headers)
    return Response(message.SerializeToString(), status_code=status, media_type=PROTOBUF, headers=headers)


def error_response(err: ExportError, encoding: Encoding) -> Response:
    status = status_pb2.Status(code=err.grpc_code.value[0], message=err.message)
    headers = {"WWW-Authenticate": 'Bearer realm="spanlake"'} if err.http_status == 401 else {}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
    return render(status, encoding, err.http_status, headers)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than `limit` bytes as it streams in."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is over the {limit} byte limit")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off by the body timeout (collector/connection_limits.py)
        raise InvalidRequest("the connection closed before the whole body arrived") from None
    return b"".join(chunks)


def make_otlp_router(
    ingestor: Ingestor, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, auth: Authenticator = DISABLED
) -> APIRouter:
    """POST /v1/traces, /v1/logs and /v1/metrics, for the server to mount on its HTTP app.

    With `auth` enabled, exports need a write key and are stored under its project (401/403)."""
    router = APIRouter()

    async def handle(spec: SignalSpec, request: Request) -> Response:
        encoding: Encoding = "json"
        try:
            encoding = encoding_of(request.headers.get("content-type"))
            peer = request.client.host if request.client else ""
            principal = auth.authenticate(request.headers.get("authorization"), "write", peer)
            body = await read_body(request, max_body_bytes)
            ingestor.stats.received(spec.name, "http", len(body))
            content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if content_encoding == "gzip":
                body = gunzip(body, max_body_bytes)
            elif content_encoding not in ("", "identity"):
                raise UnsupportedMediaType(f"unsupported Content-Encoding {content_encoding!r}: send gzip or none")
            response = await ingestor.export(spec, body, encoding, principal.project if principal else None)
            return render(response, encoding)
        except ExportError as e:
            ingestor.stats.refuse(spec.name, "http", e)
            return error_response(e, encoding)
        except Exception:
            log.exception("unexpected error handling %s", request.url.path)
            return error_response(ExportError("internal error; see the collector log"), encoding)

    @router.post("/v1/traces", include_in_schema=False)
    async def traces(request: Request) -> Response:
        return await handle(TRACES, request)

    @router.post("/v1/logs", include_in_schema=False)
    async def logs(request: Request) -> Response:
        return await handle(LOGS, request)

    @router.post("/v1/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return await handle(METRICS, request)

    return router
