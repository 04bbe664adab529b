"""The API's query workers (server.query_workers): a full queue answers 429 problem+json with
Retry-After while the server keeps serving, answers are the same as the analytics layer's,
workers run niced with bounded DuckDB threads, and no worker outlives its collector."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.server.api.common import jsonable
from spanlake.server.query_workers import ENV_QUEUE, ENV_THREADS, ENV_WORKERS, QueryLimits, QueryPool
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from tests.server.api_helpers import Api, alpha_requests, problem_of, seeded_api, send

SINCE = (datetime.now(UTC) - timedelta(days=400)).isoformat()


def wait_for(path: str) -> int:
    """A query that runs until `path` exists (deterministically slow); the worker's pid."""
    while not os.path.exists(path):
        time.sleep(0.02)
    return os.getpid()


def worker_facts() -> tuple[int, int, Any]:
    """(pid, nice value, DuckDB threads of a new connection) of the process running it."""
    threads = duckdb.connect(":memory:").execute("SELECT current_setting('threads')").fetchone()
    return os.getpid(), os.getpriority(os.PRIO_PROCESS, 0), threads[0] if threads else None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A seeded collector whose query workers admit one query at a time (1 worker, no queue)."""
    env = {ENV_WORKERS: "1", ENV_QUEUE: "0"}
    api, stop = seeded_api(tmp_path_factory.mktemp("tight") / "data", env=env)
    try:
        yield api
    finally:
        stop()


def submit(api: Api, fn: Any, *args: Any) -> Any:
    """Run `fn(*args)` in the collector's query pool, from the collector's own event loop."""
    pool = api.c.queries
    return asyncio.run_coroutine_threadsafe(pool.run(fn, *args), api.c.loop)


def test_full_queue_answers_429_problem_with_retry_after_and_the_server_keeps_serving(tight: Api, tmp_path: Path):
    key = tight.keys["alpha:read"]
    assert tight.get("/api/v1/reports/latency", key, since=SINCE).status_code == 200  # the worker is up
    gate = tmp_path / "go"
    slow = submit(tight, wait_for, str(gate))
    pool = tight.c.queries
    deadline = time.monotonic() + 10
    while pool.admitted < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        r = tight.get("/api/v1/reports/latency", key, since=SINCE)
        body = problem_of(r, 429)
        assert "too many heavy queries" in body["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        r = tight.get("/api/v1/traces", key, since=SINCE)
        assert problem_of(r, 429) and r.headers["Retry-After"]
        # the rest of the server keeps serving meanwhile: health, light API routes, ingest
        assert httpx.get(f"{tight.c.http}/health", timeout=10).status_code == 200
        assert tight.get("/api/v1/projects", key).status_code == 200
        send(tight.c.http, alpha_requests()[0], tight.keys["alpha:write"])
    finally:
        gate.touch()
    assert slow.result(timeout=30) in pool.pids()
    assert pool.admitted == 0
    assert tight.get("/api/v1/reports/latency", key, since=SINCE).status_code == 200


def test_workers_are_niced_with_bounded_duckdb_threads(tight: Api):
    pid, nice, threads = submit(tight, worker_facts).result(timeout=30)
    assert pid != os.getpid() and pid in tight.c.queries.pids()
    assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + QueryLimits().niceness)
    assert int(threads) == QueryLimits().duckdb_threads


def test_answers_through_the_workers_are_the_analytics_layers(api_v1: Api):
    """The report and trace list JSON equal what the analytics layer computes in this process."""
    r = api_v1.get("/api/v1/reports/latency", api_v1.keys["alpha:read"], since=SINCE, source="raw")
    assert r.status_code == 200, r.text
    got = r.json()
    f = Filters(since=datetime.fromisoformat(got["since"]), until=datetime.fromisoformat(got["until"]), project="alpha")
    an = Analytics(Lake(api_v1.c.data_dir))
    df, _ = run_report(an, "latency", f, [], "raw", options=TaskOptions())
    assert got["columns"] == df.columns
    assert got["rows"] == [jsonable(row) for row in df.to_dicts()] and got["rows"]


def test_stop_ends_the_workers(tmp_path: Path):
    pool = QueryPool(DataDir(tmp_path), QueryLimits(workers=2))
    pool.start()
    pids = {asyncio.run(pool.run(worker_facts))[0] for _ in range(3)}
    assert pids and all(alive(p) for p in pids)
    pool.stop()
    assert not any(alive(p) for p in pids)
    with pytest.raises(Exception, match="stopping"):
        asyncio.run(pool.run(worker_facts))


def test_workers_exit_when_the_collector_is_killed(tmp_path: Path):
    """SIGKILL of `spanlake up`: its query workers notice the parent is gone and exit."""
    exe = str(Path(sys.executable).with_name("spanlake"))
    env = dict(os.environ, SPANLAKE_ROLLUP_INTERVAL="0", **{ENV_WORKERS: "2"})
    cmd = [exe, "up", "--data-dir", str(tmp_path / "d"), "--grpc-port", "0", "--http-port", "0"]
    proc = subprocess.Popen([*cmd, "--no-dashboard", "--no-demo"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "OTLP/HTTP" in line:
                url = line.split()[1]
        assert url, "collector did not start"
        before = set(children(proc.pid))
        r = httpx.get(f"{url}/api/v1/reports/latency", params={"since": "7d"}, timeout=60)
        assert r.status_code == 200, r.text
        workers = set(children(proc.pid)) - before
        assert workers, "no query worker started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(p) for p in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize(
    ("name", "value"),
    [(ENV_WORKERS, "-1"), (ENV_THREADS, "0"), (ENV_QUEUE, "many"), (ENV_WORKERS, "1.5")],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        QueryLimits.from_env()


def test_duckdb_threads_bound_in_a_fresh_process():
    """limit_duckdb_threads (the dashboard child calls it too) caps connections opened after it."""
    code = (
        "from spanlake.server.query_workers import limit_duckdb_threads; limit_duckdb_threads(1); import duckdb;"
        "print(duckdb.connect(':memory:').execute(\"SELECT current_setting('threads')\").fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
