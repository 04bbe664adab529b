"""Heavy API queries in their own lower-priority worker processes, so reads yield to ingest.

The API's lake queries (reports, trace lists and details, label and dataset reads, dataset
exports) run in `QueryLimits.workers` worker processes started with `spawn` (never `fork`
from the threaded collector), each at `niceness` above the collector and with at most
`duckdb_threads` DuckDB threads per connection. The receivers, the WAL and the flusher keep
the collector's priority, so under a CPU shortage the queries slow down, not ingest.

At most `workers + max_queued` heavy queries are admitted at once (running or waiting for a
worker); one more is refused with QueriesBusy: 429 problem+json with Retry-After. A query
whose client went away still holds its place until its worker finishes it, so the bound is
the real amount of work. Workers end with the pool (`stop`) and, after a kill of the
collector, on their own (collector.flusher.exit_with_parent).

Settings come from the environment (SPANLAKE_QUERY_*), see QueryLimits.from_env and docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from spanlake.collector.errors import ExportError
from spanlake.collector.flusher import exit_with_parent
from spanlake.storage.layout import DataDir

log = logging.getLogger(__name__)

DEFAULT_WORKERS = max(1, (os.cpu_count() or 2) // 2)  # half the cores: reads never hold them all
DEFAULT_DUCKDB_THREADS = 1
DEFAULT_NICENESS = 19  # the lowest: the receivers and the flusher get the CPU first
DEFAULT_MAX_QUEUED = 8
DEFAULT_RETRY_AFTER_S = 2
ENV_WORKERS = "SPANLAKE_QUERY_WORKERS"
ENV_THREADS = "SPANLAKE_QUERY_DUCKDB_THREADS"
ENV_NICENESS = "SPANLAKE_QUERY_NICENESS"
ENV_QUEUE = "SPANLAKE_QUERY_MAX_QUEUED"
ENV_RETRY_AFTER = "SPANLAKE_QUERY_RETRY_AFTER_S"
T = TypeVar("T")


class Local(enum.Enum):
    """Stand-ins for the reader objects of the process a query runs in: pass `Local.ANALYTICS`
    (the process's Analytics) or `Local.LAKE` (its Lake) as an argument of `QueryPool.run`."""

    ANALYTICS = "analytics"
    LAKE = "lake"


class QueriesBusy(ExportError):
    """Every query worker is busy and the queue is full: retry later (HTTP 429)."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


def _env_int(name: str, default: int, low: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        number = int(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return number


@dataclass(frozen=True)
class QueryLimits:
    """Bounds of the API's query workers. `workers = 0` runs queries in threads of the
    collector instead (at most `max_queued` at once; no lower priority)."""

    workers: int = DEFAULT_WORKERS
    duckdb_threads: int = DEFAULT_DUCKDB_THREADS
    niceness: int = DEFAULT_NICENESS
    max_queued: int = DEFAULT_MAX_QUEUED
    retry_after_s: int = DEFAULT_RETRY_AFTER_S

    @classmethod
    def from_env(cls) -> QueryLimits:
        """Defaults overridden by SPANLAKE_QUERY_WORKERS, SPANLAKE_QUERY_DUCKDB_THREADS,
        SPANLAKE_QUERY_NICENESS, SPANLAKE_QUERY_MAX_QUEUED, SPANLAKE_QUERY_RETRY_AFTER_S."""
        return cls(
            workers=_env_int(ENV_WORKERS, DEFAULT_WORKERS, 0),
            duckdb_threads=_env_int(ENV_THREADS, DEFAULT_DUCKDB_THREADS, 1),
            niceness=_env_int(ENV_NICENESS, DEFAULT_NICENESS, 0),
            max_queued=_env_int(ENV_QUEUE, DEFAULT_MAX_QUEUED, 0),
            retry_after_s=_env_int(ENV_RETRY_AFTER, DEFAULT_RETRY_AFTER_S, 1),
        ).validate()

    def validate(self) -> QueryLimits:
        if self.workers < 0 or self.max_queued < 0 or self.niceness < 0:
            raise ValueError("query workers, queue and niceness must be >= 0")
        if self.duckdb_threads < 1 or self.retry_after_s < 1:
            raise ValueError("query DuckDB threads and Retry-After must be at least 1")
        if self.workers == 0 and self.max_queued < 1:
            raise ValueError("without query workers, the query queue must hold at least 1")
        return self

    @property
    def admitted(self) -> int:
        """Heavy queries admitted at once (running or waiting)."""
        return self.workers + self.max_queued


def limit_duckdb_threads(threads: int) -> None:
    """Make every DuckDB connection this process opens from now on use at most `threads` threads
    (unless it asks for a number itself)."""
    import duckdb  # optional dependency: DuckDB, only in the processes that query (workers, dashboard child)

    original = getattr(duckdb.connect, "__wrapped__", duckdb.connect)

    @functools.wraps(original)
    def connect(database: Any = ":memory:", read_only: bool = False, config: Any = None, **kw: Any) -> Any:
        return original(database, read_only, {"threads": threads, **(config or {})}, **kw)

    duckdb.connect = connect  # type: ignore[assignment]


def lower_priority(niceness: int) -> None:
    """Add `niceness` to this process's nice value (best effort)."""
    with contextlib.suppress(OSError):
        os.nice(niceness)


# --- inside a worker process ----------------------------------------------------------------

_worker: dict[str, Any] = {}


def _set_nice(pid: int, value: int) -> None:
    """Set a process's nice value (0: this one); best effort (never raises it back)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, value)


def _init_worker(parent: int, root: str, lake: str, nice_value: int, threads: int) -> None:
    exit_with_parent(parent)
    _set_nice(0, nice_value)  # already set from the parent; again for this thread (Linux nice is per thread)
    limit_duckdb_threads(threads)
    _worker["data_dir"] = DataDir(root, lake)


def _analytics() -> Any:
    """The worker's own Analytics (lake reader + price book), made on first use."""
    if "an" not in _worker:
        # optional dependency: DuckDB and Polars load in the worker, never where this module is imported
        from spanlake.analytics.runner import Analytics  # optional dependency: in the worker only
        from spanlake.storage.reader import Lake  # optional dependency: in the worker only

        _worker["an"] = Analytics(Lake(_worker["data_dir"]))
    return _worker["an"]


def _call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    an = _analytics()
    stand_in = {Local.ANALYTICS: an, Local.LAKE: an.lake}
    return fn(*(stand_in[a] if isinstance(a, Local) else a for a in args))


def _ready() -> bool:
    """A worker's first task: its imports (Analytics, DuckDB, Polars) are done when it returns."""
    _analytics()
    return True


# --- in the collector -----------------------------------------------------------------------


class QueryPool:
    """The query workers of one API app over one data directory: `await run(fn, *args)`;
    `start()` (also on first use) and `stop()`."""

    def __init__(self, data_dir: DataDir, limits: QueryLimits | None = None) -> None:
        self.data_dir = data_dir
        self.limits = (limits or QueryLimits.from_env()).validate()
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._admitted = 0
        self._stopped = False
        self._local: Any = None  # the Analytics of thread mode (workers = 0)

    @property
    def admitted(self) -> int:
        """Heavy queries running or waiting right now."""
        return self._admitted

    def start(self) -> None:
        """Start the workers (spawn; they import the analytics stack meanwhile, not awaited)."""
        with self._lock:
            self._stopped = False
            if self._pool is None and self.limits.workers > 0:
                self._pool = self._new_pool()

    def stop(self) -> None:
        """Stop the workers; queries still running are abandoned (their callers get an error)."""
        with self._lock:
            self._stopped = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _shutdown(pool)

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and benchmarks)."""
        pool = self._pool
        procs = getattr(pool, "_processes", None) or {}
        return sorted(procs)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a query worker (Local stand-ins replaced by the worker's own); `fn`
        and the arguments must pickle (module-level functions, plain data). QueriesBusy when
        `workers + max_queued` queries are admitted already."""
        self._admit()
        if self.limits.workers == 0:
            try:
                return await asyncio.to_thread(self._call_here, fn, args)
            finally:
                self._release()
        for attempt in (1, 2):
            try:
                future = self._submit(fn, args)
            except BaseException:
                self._release()
                raise
            try:
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                # a worker died (killed, out of memory): new workers, and one more try
                log.warning("a query worker died; starting new ones")
                self._restart()
                if attempt == 2:
                    raise
                with self._lock:
                    self._admitted += 1  # the failed future released its place; the retry takes it again
        raise AssertionError("unreachable")

    def _admit(self) -> None:
        with self._lock:
            if self._admitted >= self.limits.admitted:
                limits = self.limits
                raise QueriesBusy(
                    f"too many heavy queries at once ({limits.workers} running, {limits.max_queued} waiting): "
                    "retry later",
                    retry_after_s=limits.retry_after_s,
                )
            self._admitted += 1

    def _release(self, _: object = None) -> None:
        with self._lock:
            self._admitted -= 1

    def _submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        with self._lock:
            if self._stopped:
                raise QueriesBusy("the server is stopping", retry_after_s=self.limits.retry_after_s)
            if self._pool is None:
                self._pool = self._new_pool()
            future = self._pool.submit(_call, fn, args)
        future.add_done_callback(self._release)  # when the worker is done, not when the caller gives up
        return future

    def _call_here(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._local is None:
            from spanlake.analytics.runner import Analytics  # optional dependency: DuckDB, Polars; when used
            from spanlake.storage.reader import Lake  # optional dependency: DuckDB; when used

            self._local = Analytics(Lake(self.data_dir))
        stand_in = {Local.ANALYTICS: self._local, Local.LAKE: self._local.lake}
        return fn(*(stand_in[a] if isinstance(a, Local) else a for a in args))

    def _new_pool(self) -> ProcessPoolExecutor:
        limits, dd = self.limits, self.data_dir
        lake = dd.lake_url or str(dd.lake)
        nice_value = min(19, os.getpriority(os.PRIO_PROCESS, 0) + limits.niceness)
        pool = ProcessPoolExecutor(
            limits.workers,
            mp_context=multiprocessing.get_context("spawn"),  # not fork: the collector runs threads
            initializer=_init_worker,
            initargs=(os.getpid(), str(dd.root), lake, nice_value, limits.duckdb_threads),
        )
        for _ in range(limits.workers):
            pool.submit(_ready)  # spawns the workers (and starts their imports)
        for pid in getattr(pool, "_processes", None) or {}:
            _set_nice(pid, nice_value)  # now: a worker's start-up imports run before its initializer
        return pool

    def _restart(self) -> None:
        with self._lock:
            old = self._pool
            self._pool = None if self._stopped else self._new_pool()
        if old is not None:
            _shutdown(old)


def _shutdown(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what waits, end the workers (a running query is not waited for)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
