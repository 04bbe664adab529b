"""The running system, composed once: `spanlake up` (and the tests) start a `Server`.

One lifecycle for every part a role runs, started in this order and stopped in reverse
(an AsyncExitStack, so a part that fails to start stops the ones before it):

    write path   WAL recovery/replay, flusher, WAL writer   (all, ingest, api)
    receivers    OTLP/gRPC; OTLP/HTTP on the HTTP app        (all, ingest)
    HTTP app     /health, /ready; the REST API /api/v1        (every role; the API: all, api)
    upkeep       compaction and retention                    (all, compactor; --no-compaction: off)
    rollups      the rollup schedule                         (all, api)
    budgets      the budget watch (server.budget_watch)      (all, api; SPANLAKE_BUDGET_INTERVAL=0: off)
    evaluators   online rules (server.evaluation_watch)      (all, api; SPANLAKE_EVAL_INTERVAL=0: off)
    dashboard    the Streamlit child, supervised             (all, api; --no-dashboard: off)
    demo         the first-start demo child                  (all)

The ingest role imports neither DuckDB nor spanlake.analytics: the modules of the other roles
are imported only when their role starts (see docs/architecture.md, "Roles").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

from spanlake.collector.app import Collector, PortInUse, PublishingWriter
from spanlake.collector.auth import DISABLED
from spanlake.collector.config import CollectorConfig
from spanlake.collector.connection_limits import http_server_options
from spanlake.server.dashboard import Dashboard, start_for_up
from spanlake.server.demo import FirstStartDemo
from spanlake.server.http import ApiMount, HttpParts, make_http_app
from spanlake.server.metrics import ServerMetrics
from spanlake.server.query_workers import Local, QueryLimits, QueryPool
from spanlake.storage.layout import LAKE_ENV, DataDir
from spanlake.storage.signin import DEFAULT_PROXY_HEADER

log = logging.getLogger(__name__)

Role = Literal["all", "ingest", "api", "compactor"]
ROLES: tuple[Role, ...] = ("all", "ingest", "api", "compactor")
ROLE_ENV = "SPANLAKE_ROLE"
WRITES = {"all", "ingest", "api"}  # runs a WAL and a flusher (the api role for label and dataset writes)
RECEIVES = {"all", "ingest"}
SERVES_API = {"all", "api"}
UPKEEP = {"all", "compactor"}


@dataclass(frozen=True)
class Endpoints:
    http: str
    grpc: str | None = None  # None: this role does not receive OTLP/gRPC


@dataclass(frozen=True)
class DashboardSettings:
    port: int
    auth: str = "auto"
    header: str = DEFAULT_PROXY_HEADER


@dataclass
class ServerOptions:
    """What `spanlake up` was told. `dashboard` None: no dashboard; `demo`: the first-start
    demo may run (role all only); `rollups`: run the rollup schedule where the role serves the
    API; `say`: where messages for the operator go."""

    config: CollectorConfig
    role: Role = "all"
    dashboard: DashboardSettings | None = None
    demo: bool = False
    rollups: bool = True
    say: Callable[[str], None] = print


class Server:
    """`async with Server(options) as s:`, or `await s.run(on_ready)` until SIGINT/SIGTERM."""

    def __init__(self, options: ServerOptions) -> None:
        if options.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {options.role!r}")
        self.options, self.role = options, options.role
        config = options.config.validate()
        if config.auth_enabled and self.dashboard_wanted:
            # The dashboard we start writes labels through our API: give it a secret of this run.
            config = dataclasses.replace(config, internal_token=secrets.token_urlsafe(32))
        self.config = config
        self.collector = Collector(config) if self.role in WRITES else None  # RedactionError before anything starts
        self.data_dir = self.collector.data_dir if self.collector else DataDir(config.data_dir, config.lake).create()
        # Decided before the WAL is replayed into the lake.
        no_demo = not options.demo or self.role != "all" or config.auth_enabled
        self.first_demo = FirstStartDemo(config.data_dir, config.lake, no_demo, options.say)
        self.endpoints: Endpoints | None = None
        self.dashboard_url = "off (--no-dashboard)"
        self.dashboards: list[Dashboard] = []
        self.rollups: Any = None
        self.queries: QueryPool | None = None  # heavy API reads (the roles that serve the API)
        self.budget_watch: Any = None  # server.budget_watch.BudgetWatch (the roles that serve the API)
        self.alerts: Any = None  # server.alerts.engine.Alerts, fed by the budget watch
        self.upkeep: Any = None  # server.upkeep.LakeUpkeep (the roles that compact)
        self.evaluation_watch: Any = None  # server.evaluation_watch.EvaluationWatch (the roles that serve the API)
        self._stack = AsyncExitStack()

    @property
    def dashboard_wanted(self) -> bool:
        return self.options.dashboard is not None and self.role in SERVES_API

    async def start(self, on_ready: Callable[[Server], None] | None = None) -> Endpoints:
        """Start every part of the role; `on_ready` runs once all listen (before the demo starts)."""
        try:
            await self._start(on_ready)
        except BaseException:
            await self._stack.aclose()
            raise
        assert self.endpoints is not None
        return self.endpoints

    async def _start(self, on_ready: Callable[[Server], None] | None) -> None:
        stack, cfg, c = self._stack, self.config, self.collector
        # Every port is bound before the WAL is touched: a second `spanlake up` on taken ports
        # stops before it replays (and flushes) the log of the one running.
        grpc_port = None
        if c is not None:
            stack.push_async_callback(c.stop_writes)  # a no-op until start_writes() ran
        if self.role in RECEIVES:
            assert c is not None
            grpc_port = c.bind_grpc()
            stack.push_async_callback(c.stop_receivers)
        sock = _bind_socket(cfg.host, cfg.http_port)
        stack.callback(sock.close)
        if c is not None:
            c.start_writes()
        if grpc_port is not None:
            assert c is not None
            await c.start_grpc()
        http_port = await self._serve_http(sock)
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.endpoints = Endpoints(
            http=f"http://{host}:{http_port}", grpc=f"{host}:{grpc_port}" if grpc_port is not None else None
        )
        if self.role in UPKEEP and cfg.compaction:
            # Only this role compacts: its module loads DuckDB, which an ingest node never imports.
            from spanlake.server.upkeep import LakeUpkeep  # optional dependency: DuckDB, not for an ingest node

            upkeep = self.upkeep = LakeUpkeep(self.data_dir, cfg)
            upkeep.start()
            stack.push_async_callback(asyncio.to_thread, upkeep.stop)
        if self.role in SERVES_API and self.options.rollups:
            self._start_rollups()
        if self.dashboard_wanted:
            self._start_dashboard()
        if self.budget_watch is not None:
            self._start_alerts()
            self.budget_watch.start()
            stack.push_async_callback(self.budget_watch.stop)
        if self.evaluation_watch is not None:
            self._start_evaluation_watch()
        if on_ready is not None:
            on_ready(self)
        self.first_demo.start(self.endpoints.http, self.dashboard_url)
        stack.push_async_callback(asyncio.to_thread, self.first_demo.stop)

    async def _serve_http(self, sock: socket.socket) -> int:
        cfg, c = self.config, self.collector
        api: ApiMount | None = None
        queries = None
        if self.role in SERVES_API:
            # The API's routers load DuckDB and spanlake.analytics, which an ingest node never imports.
            from spanlake.server.api.app import mount_api  # optional dependency: not for an ingest node

            api = mount_api
            queries = self.queries = QueryPool(self.data_dir, QueryLimits.from_env())  # reads yield to ingest
            self._stack.push_async_callback(asyncio.to_thread, queries.stop)
            self.budget_watch = self._budget_watch(queries)
            self.evaluation_watch = self._evaluation_watch()
        parts = HttpParts(
            self.data_dir,
            cfg.default_project,
            c.auth if c is not None else DISABLED,  # the compactor serves /health and /ready only
            otlp=c.otlp_router() if c is not None and self.role in RECEIVES else None,
            api=api,
            queries=queries,
            budget_watch=self.budget_watch,
            evaluation_watch=self.evaluation_watch,
            writer=PublishingWriter(c) if c is not None else None,
            wal=c.wal if c is not None else None,
            flusher=c.flusher if c is not None else None,
            metrics=ServerMetrics(self).registry,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                make_http_app(parts),
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=5,
                **http_server_options(cfg.connection_limits()),  # slow clients are cut off
            )
        )
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve(sockets=[sock]))

        async def stop_http() -> None:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task

        self._stack.push_async_callback(stop_http)
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        return int(sock.getsockname()[1])

    def _start_rollups(self) -> None:
        # Only the roles serving reads run rollups (in a child process); an ingest node never
        # imports spanlake.analytics.
        from spanlake.analytics.rollups.schedule import RollupSchedule  # optional dependency: not for ingest

        cfg, c = self.config, self.collector
        self.rollups = RollupSchedule.from_env(cfg.data_dir, cfg.lake)  # SPANLAKE_ROLLUP_INTERVAL (s), 0: off
        if c is not None:
            self.rollups.busy = lambda: len(c.wal.closed_segments()) > 1  # a flush backlog: ingest first
        self.rollups.start()
        self._stack.push_async_callback(asyncio.to_thread, self.rollups.stop)

    def _budget_watch(self, queries: QueryPool) -> Any:
        """The budget watch (started after the rollups); the API shows its latest readings."""
        from spanlake.analytics.budgets.budgets_file import BudgetsFile  # optional dependency: not for ingest
        from spanlake.server.budget_watch import BudgetWatch, interval_from_env  # optional dependency: not for ingest

        budgets = BudgetsFile(self.data_dir.root, self.config.default_project)
        return BudgetWatch(budgets, queries, interval_from_env())

    def _evaluation_watch(self) -> Any:
        """The online rules' watch (None when this node does not write: it appends labels to the WAL)."""
        from spanlake.evaluators.evaluators_file import EvaluatorsFile  # optional dependency: not for ingest
        from spanlake.server.evaluation_watch import EvaluationWatch  # optional dependency: not for ingest
        from spanlake.server.evaluation_watch import interval_from_env as eval_interval  # optional dependency: idem

        c = self.collector
        if c is None:
            return None
        budgets = self.budget_watch.budgets if self.budget_watch is not None else None

        def destinations() -> dict[str, Any]:
            return {d.name: d for d in budgets.current().destinations} if budgets is not None else {}

        return EvaluationWatch(
            self.data_dir, EvaluatorsFile(self.data_dir.root), c.ingestor.append, eval_interval(),
            wal_dir=c.wal.directory, destinations=destinations,
        )  # fmt: skip

    def _start_evaluation_watch(self) -> None:
        """Start the online rules; judge spans go to this server's OTLP/HTTP endpoint where it receives."""
        from spanlake.server.evaluation_watch import EvaluationBusy  # optional dependency: not for ingest

        watch, endpoints = self.evaluation_watch, self.endpoints
        assert endpoints is not None
        if self.role in RECEIVES:
            watch.traces_endpoint = f"{endpoints.http}/v1/traces"
        try:
            watch.start()
        except EvaluationBusy as e:
            self.options.say(f"online evaluators: off on this node ({e})")
            return
        self._stack.push_async_callback(watch.stop)

    def _start_alerts(self) -> None:
        """The alerts engine behind the budget watch: states, notifications, their delivery."""
        from spanlake.analytics.budgets.measure import worst_traces  # optional dependency: not for ingest
        from spanlake.analytics.datasets import DASHBOARD_URL_ENV  # optional dependency: not for ingest
        from spanlake.server.alerts.engine import Alerts, AlertsBusy  # optional dependency: not for ingest

        watch, queries, loop = self.budget_watch, self.queries, asyncio.get_running_loop()
        assert watch is not None and queries is not None

        def worst(budget: Any, since: Any, until: Any) -> list[str]:
            # called from the sink's thread while the loop runs: the query goes to a worker
            query = queries.run(worst_traces, Local.ANALYTICS, budget, since, until)
            return asyncio.run_coroutine_threadsafe(query, loop).result(timeout=120)

        url = os.environ.get(DASHBOARD_URL_ENV) or (
            self.dashboard_url if self.dashboard_url.startswith("http") else None
        )
        try:
            self.alerts = Alerts(self.data_dir, watch.budgets.current, url, worst)
        except AlertsBusy as e:
            self.options.say(f"alerts: off on this node ({e})")
            return
        self.alerts.start()
        self._stack.push_async_callback(asyncio.to_thread, self.alerts.stop)
        watch.sink = self.alerts.record

    def _start_dashboard(self) -> None:
        cfg, dash = self.config, self.options.dashboard
        assert dash is not None and self.endpoints is not None
        if cfg.lake:
            os.environ[LAKE_ENV] = cfg.lake  # the dashboard child reads the same lake
        self.dashboard_url = start_for_up(
            cfg.data_dir, cfg.host, dash.port, False, self.dashboards, dash.auth, dash.header,
            api_url=self.endpoints.http, api_key=cfg.internal_token,
        )  # fmt: skip
        for d in self.dashboards:
            d.watch()
            self._stack.push_async_callback(asyncio.to_thread, d.stop)

    async def stop(self) -> None:
        """Stop every part in reverse order of start (a clean stop leaves an empty WAL)."""
        await self._stack.aclose()

    def flush(self, timeout: float = 30.0) -> bool:
        """Make everything acknowledged so far visible in the lake (blocking; for tests and tools)."""
        return self.collector.flush(timeout) if self.collector is not None else True

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self, on_ready: Callable[[Server], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start(on_ready)
        try:
            await stop.wait()
        finally:
            await self.stop()


def _bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: a response written as headers then body is not held
    # back by Nagle's algorithm until the client's delayed ACK (40 ms on every API answer).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise PortInUse("http", f"{host}:{port}", e.strerror or str(e)) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock
