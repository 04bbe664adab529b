"""Errors that say whether the sender should retry, and how each maps to HTTP and gRPC."""

from __future__ import annotations

import grpc


class ExportError(Exception):
    """A request the collector did not accept. `message` is shown to the sender."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    retryable = False

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidRequest(ExportError):
    """Malformed data: never retry (HTTP 400, gRPC INVALID_ARGUMENT)."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class UnsupportedMediaType(ExportError):
    """Wrong Content-Type or Content-Encoding (HTTP 415)."""

    http_status = 415
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class PayloadTooLarge(ExportError):
    """Body over the configured limit, before or after decompression (HTTP 413)."""

    http_status = 413
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(ExportError):
    """Temporarily refused (queue full, disk full, shutting down): retry later (503 / UNAVAILABLE)."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    retryable = True
