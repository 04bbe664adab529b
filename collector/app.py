"""The ingest core: redaction → WAL → flusher → lake, with the OTLP receivers in front.

The server (server/app.py) composes it: `bind_grpc()` takes the OTLP/gRPC port,
`start_writes()` recovers the WAL (replaying unflushed segments) and starts the flusher and
the WAL writer, `start_grpc()` serves; `otlp_router()` is OTLP/HTTP, which the server mounts
on its HTTP app.
`stop()` runs in reverse: stop accepting, write what is queued, flush every segment, so a
clean stop leaves an empty WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import grpc
from fastapi import APIRouter

from spanlake.collector.auth import Authenticator
from spanlake.collector.config import CollectorConfig
from spanlake.collector.flusher import Flusher
from spanlake.collector.grpc_receiver import make_grpc_server
from spanlake.collector.http_receiver import make_otlp_router
from spanlake.collector.ingest import Ingestor
from spanlake.collector.redact import Redactor, redaction_path
from spanlake.collector.wal import Record, WriteAheadLog
from spanlake.storage.keys import keys_path
from spanlake.storage.layout import DataDir
from spanlake.storage.writer import LakeWriter

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0  # how long a state-changing write waits to become readable


class PortInUse(OSError):
    """A port could not be opened: `service` is "grpc" or "http"; `address` is host:port."""

    def __init__(self, service: str, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address} ({reason})")
        self.service, self.address, self.reason = service, address, reason


def _check_free(host: str, port: int) -> None:
    """PortInUse unless `host:port` can be bound right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise PortInUse("grpc", f"{host}:{port}", e.strerror or str(e)) from None


class Collector:
    """Receiving, authenticating, redacting, validating, the WAL and the flusher."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config.validate()
        self.redactor = Redactor(redaction_path(config.data_dir))  # RedactionError: a broken rule file
        self.data_dir = DataDir(config.data_dir, config.lake).create()
        self.wal = WriteAheadLog(
            self.data_dir.wal,
            segment_max_bytes=config.segment_max_bytes,
            segment_max_age_s=config.segment_max_age_s,
            max_pending_bytes=config.max_pending_bytes,
            max_backlog_bytes=config.max_backlog_bytes,
        )
        self.flusher = Flusher(self.wal, LakeWriter(self.data_dir), config.default_project, config.flush_workers)
        self.wal.on_segment_closed = self.flusher.submit
        self.ingestor = Ingestor(
            self.wal, config.max_future_s, self.redactor, config.default_project, max_past_s=config.max_past_s
        )
        keys = (config.keys_file or keys_path(config.data_dir)) if config.auth_enabled else None
        self.auth = Authenticator(keys, internal_token=config.internal_token)
        self._grpc: grpc.aio.Server | None = None
        self._writing = False

    def start_writes(self) -> None:
        """Replay what the last run left in the WAL, then take appends."""
        recovered = self.wal.recover()
        if recovered:
            log.info("replaying %d write-ahead log segment(s) left by the last run", len(recovered))
        self.flusher.start()
        for seg in recovered:
            self.flusher.submit(seg)
        self.wal.start()
        self._writing = True

    def bind_grpc(self) -> int:
        """Bind the OTLP/gRPC port (PortInUse when taken) without serving yet; returns the port.
        The server binds every port before it touches the WAL, so a second `spanlake up` on
        the same ports stops before replaying the first one's log."""
        cfg = self.config
        address = f"{cfg.host}:{cfg.grpc_port}"
        if cfg.grpc_port:
            _check_free(cfg.host, cfg.grpc_port)  # so grpcio's own bind error log never shows
        try:
            self._grpc, port = make_grpc_server(
                self.ingestor, address, cfg.max_message_bytes, self.auth, cfg.connection_limits()
            )
        except (RuntimeError, OSError) as e:  # grpcio raises RuntimeError("Failed to bind ...")
            raise PortInUse("grpc", address, "the port is in use or the address is not available") from e
        return port

    async def start_grpc(self) -> None:
        """Serve OTLP/gRPC on the bound port."""
        assert self._grpc is not None, "bind_grpc() first"
        await self._grpc.start()

    def otlp_router(self) -> APIRouter:
        """OTLP/HTTP (POST /v1/traces, /v1/logs, /v1/metrics) for the server's HTTP app."""
        return make_otlp_router(self.ingestor, self.config.max_body_bytes, self.auth)

    async def stop_receivers(self) -> None:
        """Stop accepting OTLP/gRPC (in-flight calls get 5 s)."""
        if self._grpc is not None:
            await self._grpc.stop(grace=5)
            self._grpc = None

    async def stop_writes(self) -> None:
        """Write what is queued and flush every segment into the lake."""
        if self._writing:
            await asyncio.to_thread(self.wal.close)
            await asyncio.to_thread(self.flusher.close)
            self._writing = False

    async def stop(self) -> None:
        await self.stop_receivers()
        await self.stop_writes()

    def flush(self, timeout: float = 30.0) -> bool:
        """Make everything acknowledged so far visible in the lake (blocking)."""
        return self.wal.rotate(timeout) and self.flusher.wait_idle(timeout)

    def publish(self, timeout: float = PUBLISH_TIMEOUT_S) -> bool:
        """Make everything acknowledged so far visible in the lake, without waiting for what
        arrives meanwhile (blocking)."""
        return self.wal.rotate(timeout) and self.flusher.wait_submitted(timeout)


class PublishingWriter:
    """The Ingestor's `append` for state changes (labels, dataset edits): it returns once the
    record is in the lake, so a read right after the write sees it (bounded by `timeout_s`;
    past that the change is durable in the WAL and published by the next flush).

    Group publish: one WAL rotation and flush at a time; every write acknowledged while one
    runs shares the next, so a burst of writes costs a few rotations, not one each."""

    def __init__(self, collector: Collector, timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self._collector, self._timeout_s = collector, timeout_s
        self._running: asyncio.Future[None] | None = None
        self._next: asyncio.Future[None] | None = None

    async def append(self, record: Record) -> None:
        await self._collector.ingestor.append(record)
        if self._next is None:  # the next publish has not started: it will include this record
            self._next = asyncio.ensure_future(self._publish_after(self._running))
        await asyncio.shield(self._next)

    async def _publish_after(self, previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(previous)
        self._running, self._next = self._next, None  # writes from now on wait for a later publish
        try:
            published = await asyncio.to_thread(self._collector.publish, self._timeout_s)
        except Exception:  # the record is durable in the WAL either way
            log.exception("publishing a state change failed; the next flush does it")
            return
        if not published:
            log.warning("a state change was not published within %.0f s; the next flush does it", self._timeout_s)
