"""OTLP/gRPC receiver: TraceService/Export, LogsService/Export and MetricsService/Export.

Requests arrive as raw bytes (no deserializer registered) and go through the same
`Ingestor.export` path as OTLP/HTTP protobuf. Retryable refusals are UNAVAILABLE with a
`google.rpc.RetryInfo` detail, which the standard exporters honour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from spanlake.collector.auth import DISABLED, Authenticator
from spanlake.collector.connection_limits import ConnectionLimits, grpc_server_options
from spanlake.collector.errors import ExportError
from spanlake.collector.ingest import LOGS, METRICS, TRACES, Ingestor, SignalSpec

log = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def trailing_metadata(err: ExportError) -> tuple[tuple[str, bytes], ...]:
    """Error details for the client: a google.rpc.Status, plus RetryInfo when it may retry.

    RetryInfo goes both inside `grpc-status-details-bin` (the gRPC rich-error convention)
    and as `google.rpc.retryinfo-bin`, the key the OTel Python exporter reads.
    """
    status = status_pb2.Status(code=err.grpc_code.value[0], message=err.message)
    md: list[tuple[str, bytes]] = []
    if err.retry_after_s is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=max(1, int(err.retry_after_s))))
        status.details.add().Pack(info)
        md.append(("google.rpc.retryinfo-bin", info.SerializeToString()))
    md.append(("grpc-status-details-bin", status.SerializeToString()))
    return tuple(md)


def _handler(ingestor: Ingestor, spec: SignalSpec, auth: Authenticator) -> Callable:
    async def export(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        ingestor.stats.received(spec.name, "grpc", len(raw))
        try:
            principal = None
            if auth.enabled:
                md = dict(context.invocation_metadata() or ())
                principal = auth.authenticate(md.get("authorization"), "write", peer_host(context.peer()))
            response = await ingestor.export(spec, raw, "protobuf", principal.project if principal else None)
        except ExportError as e:
            ingestor.stats.refuse(spec.name, "grpc", e)
            await context.abort(e.grpc_code, e.message, trailing_metadata=trailing_metadata(e))
        except Exception:
            log.exception("unexpected error in %s/Export", spec.name)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the collector log")
        return response.SerializeToString()

    return export


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string ('ipv4:127.0.0.1:5000', 'ipv6:[::1]:5000')."""
    kind, _, rest = peer.partition(":")
    return rest.rpartition(":")[0] if kind in ("ipv4", "ipv6") else peer


def make_grpc_server(
    ingestor: Ingestor,
    address: str,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    auth: Authenticator = DISABLED,
    limits: ConnectionLimits | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Create (not start) the gRPC server bound to `address`; returns it and the bound port.

    With `auth` enabled, exports need a write key in the `authorization` metadata. `limits`
    bound each connection's handshake, idle time and age (defaults: ConnectionLimits())."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            *grpc_server_options(limits or ConnectionLimits()),
        ]
    )
    for service, spec in ((TRACE_SERVICE, TRACES), (LOGS_SERVICE, LOGS), (METRICS_SERVICE, METRICS)):
        method = grpc.unary_unary_rpc_method_handler(_handler(ingestor, spec, auth))  # raw bytes in and out
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": method}),))
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind the gRPC receiver to {address}")
    return server, port
