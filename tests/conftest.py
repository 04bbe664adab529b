"""Shared fixtures: a real collector on loopback, free ports, a lake to query."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spanlake.collector.app import Collector
from spanlake.collector.config import CollectorConfig
from spanlake.server.app import Endpoints, Server, ServerOptions
from spanlake.storage.reader import Lake

# CI sets this: a test that skips for want of a tool (moto, Java, chromium, promptfoo, root...)
# fails instead, so a missing install can never pass as a green run.
REQUIRE_ALL = os.environ.get("SPANLAKE_REQUIRE_ALL_TESTS") == "1"


def _refuse_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but SPANLAKE_REQUIRE_ALL_TESTS=1 requires it to run: {reason}"


# The longest files first (a Spark session takes minutes to start and run): with two workers
# (scripts/test: -n 2 --dist loadfile) one of them runs these while the other works through the
# rest, instead of the whole run waiting on them at the end. Files stay whole (the sort is stable).
SLOW_FILES = ("tests/engines/test_spark.py", "tests/server/test_api_schemathesis.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in SLOW_FILES)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _refuse_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _refuse_skip(outcome.get_result())  # a module-level importorskip


@dataclass
class RunningCollector:
    """A server (role all, no dashboard, no demo) on 127.0.0.1 in a background thread of this
    test process; `collector` is its ingest core (WAL, flusher, auth, redactor)."""

    collector: Collector
    endpoints: Endpoints
    data_dir: Path
    lake: Lake
    loop: asyncio.AbstractEventLoop
    queries: Any = None  # the server's query workers (server.query_workers)
    server: Any = None  # the Server itself (its background jobs, e.g. budget_watch)

    @property
    def http(self) -> str:
        return self.endpoints.http

    @property
    def grpc(self) -> str:
        assert self.endpoints.grpc is not None
        return self.endpoints.grpc

    def flush(self) -> None:
        """Make everything acknowledged so far visible in the lake."""
        assert self.collector.flush(), "collector did not flush in time"

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return self.lake.query(sql, params).to_pylist()


def start_collector(data_dir: Path, **overrides: Any) -> tuple[RunningCollector, Callable[[], None]]:
    """Start a server (role all) on free loopback ports; returns it and a stop function."""
    # Flush in-process by default (fast start); tests of the worker pool pass flush_workers.
    overrides.setdefault("flush_workers", 0)
    overrides.setdefault("segment_max_age_s", 0.2)  # spans reach the lake quickly
    config = CollectorConfig(data_dir=data_dir, host="127.0.0.1", grpc_port=0, http_port=0, **overrides)
    loop = asyncio.new_event_loop()
    started: Future[Endpoints] = Future()
    server = Server(ServerOptions(config, rollups=False))  # as before: no rollup child per test

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(server.start()))
        except BaseException as e:  # surface bind errors to the test
            started.set_exception(e)
            return
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-collector", daemon=True)
    thread.start()
    endpoints = started.result(timeout=30)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

    assert server.collector is not None
    running = RunningCollector(server.collector, endpoints, data_dir, Lake(data_dir), loop, server.queries, server)
    return running, stop


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[RunningCollector]:
    running, stop = start_collector(tmp_path / "data")
    try:
        yield running
    finally:
        stop()


@pytest.fixture(params=["grpc", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param
