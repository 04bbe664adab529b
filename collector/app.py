"""Compose the collector: WAL → flusher → lake, with both receivers in front.

Start-up order: recover the WAL (replaying unflushed segments), start the flusher and the
WAL writer, then open the ports. Shutdown runs in reverse: stop accepting, write what is
queued, flush every segment, so a clean stop leaves an empty WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn

from spanlake.collector.auth import Authenticator
from spanlake.collector.config import CollectorConfig
from spanlake.collector.flusher import Flusher
from spanlake.collector.grpc_receiver import make_grpc_server
from spanlake.collector.http_receiver import make_http_app
from spanlake.collector.ingest import Ingestor
from spanlake.collector.redact import Redactor, redaction_path
from spanlake.collector.wal import WriteAheadLog
from spanlake.storage.compact import compact
from spanlake.storage.keys import keys_path
from spanlake.storage.layout import DataDir
from spanlake.storage.retention import apply_retention
from spanlake.storage.writer import LakeWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    grpc: str
    http: str


def _bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({e.strerror}); pick another port") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Collector:
    """The running collector. Use `async with Collector(cfg) as c:` or `await c.run()`."""

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
        self.ingestor = Ingestor(self.wal, config.max_future_s, self.redactor, config.default_project)
        keys = (config.keys_file or keys_path(config.data_dir)) if config.auth_enabled else None
        self.auth = Authenticator(keys, internal_token=config.internal_token)
        self._grpc: grpc.aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self._queries: Any = None  # the API's query workers (server.query_workers), stopped with the collector
        self._http_task: asyncio.Task[None] | None = None
        self._stop_compactor = threading.Event()
        self._compactor: threading.Thread | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        recovered = self.wal.recover()
        if recovered:
            log.info("replaying %d write-ahead log segment(s) left by the last run", len(recovered))
        self.flusher.start()
        for seg in recovered:
            self.flusher.submit(seg)
        self.wal.start()

        cfg = self.config
        self._grpc, grpc_port = make_grpc_server(
            self.ingestor, f"{cfg.host}:{cfg.grpc_port}", cfg.max_message_bytes, self.auth
        )
        await self._grpc.start()

        sock = _bind_socket(cfg.host, cfg.http_port)
        http_port = sock.getsockname()[1]
        app = make_http_app(self.ingestor, cfg.max_body_bytes, self.data_dir, cfg.default_project, self.auth)
        self._queries = app.state.queries
        self._http = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        )
        self._http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
            await asyncio.sleep(0.01)

        if cfg.compaction:
            self._compactor = threading.Thread(target=self._compact_loop, name="spanlake-compactor", daemon=True)
            self._compactor.start()
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.endpoints = Endpoints(grpc=f"{host}:{grpc_port}", http=f"http://{host}:{http_port}")
        return self.endpoints

    async def stop(self) -> None:
        if self._http is not None:
            self._http.should_exit = True
        if self._http_task is not None:
            with contextlib.suppress(Exception):
                await self._http_task
        if self._grpc is not None:
            await self._grpc.stop(grace=5)
        if self._queries is not None:
            await asyncio.to_thread(self._queries.stop)
        self._stop_compactor.set()
        await asyncio.to_thread(self.wal.close)
        await asyncio.to_thread(self.flusher.close)
        if self._compactor is not None:
            await asyncio.to_thread(self._compactor.join)

    def flush(self, timeout: float = 30.0) -> bool:
        """Make everything acknowledged so far visible in the lake (blocking; for tests and tools)."""
        return self.wal.rotate(timeout) and self.flusher.wait_idle(timeout)

    def _compact_loop(self) -> None:
        """Compaction every `compact_interval_s`, retention every `retention_interval_s`
        (both under the lake's compaction lock, so they never overlap)."""
        cfg = self.config
        next_retention = time.monotonic()
        while not self._stop_compactor.wait(cfg.compact_interval_s):
            try:
                result = compact(self.data_dir, min_age_s=cfg.compact_min_age_s)
                if result.partitions:
                    log.info("compacted %d files into %d", result.files_in, result.files_out)
            except Exception:
                log.exception("compaction failed; will try again")
            if not cfg.retention or time.monotonic() < next_retention:
                continue
            try:
                kept = apply_retention(self.data_dir, cfg.retention)
                if not kept.skipped_busy:
                    next_retention = time.monotonic() + cfg.retention_interval_s
                if kept.partitions:
                    log.info("retention deleted %d partition(s), %d files", kept.partitions, kept.files)
            except Exception:
                log.exception("retention failed; will try again")

    async def __aenter__(self) -> Collector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, on_started: object = None) -> None:
        """Serve until SIGINT/SIGTERM, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        endpoints = await self.start()
        if callable(on_started):
            on_started(endpoints)
        try:
            await stop.wait()
        finally:
            await self.stop()
