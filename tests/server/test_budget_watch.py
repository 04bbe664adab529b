"""The server's budget watch (server.budget_watch) on a real server: on a short interval it
evaluates every budget of budgets.toml through the query workers, the readings appear in
`latest` and in GET /api/v1/budgets/status, a changed file is picked up by the next cycle, a
broken one keeps the last good budgets (and says why), and a sink that raises does not stop it.

Project shop, four tasks `answer` started two minutes before the test, of 100, 200, 300 and
400 ms, the last one an error: traffic 4, error rate 1/4 over any window holding them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.server.budget_watch import DEFAULT_INTERVAL_S, INTERVAL_ENV, interval_from_env
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span
from tests.server.api_helpers import send

MS = 1_000_000
TRAFFIC = {"name": "traffic", "project": "shop", "metric": "traffic", "window": "15m", "warning": 5, "critical": 1}
ERRORS = {"name": "errors", "project": "shop", "metric": "error_rate", "window": "15m", "warning": 0.2,
          "critical": 0.5, "min_samples": 1}  # fmt: skip


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningCollector]:
    monkeypatch.setenv(INTERVAL_ENV, "0.3")
    running, stop = start_collector(tmp_path / "data")
    try:
        start = time.time_ns() - 120 * 10**9
        spans = [
            make_span("answer", bytes([i]) * 16, bytes([i]) * 8, b"", start + i * MS, ms * MS,
                      {"spanlake.task.name": "answer"}, status_code=2 if ms == 400 else 0)
            for i, ms in enumerate((100, 200, 300, 400), 1)
        ]  # fmt: skip
        send(running.http, make_request(spans, {"service.name": "svc", "spanlake.project": "shop"}), None)
        running.flush()
        yield running
    finally:
        stop()


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def readings(server: RunningCollector, after: datetime | None = None) -> dict[str, Any] | None:
    latest = server.server.budget_watch.latest
    if latest is None or latest.evaluation is None or (after is not None and latest.at <= after):
        return None
    return {r.budget.name: r for r in latest.evaluation.readings}


def test_readings_appear_and_follow_the_file(server: RunningCollector) -> None:
    watch = server.server.budget_watch
    assert watch.running and watch.interval_s == 0.3
    store = BudgetsFile(server.data_dir)
    store.put_budget(TRAFFIC)
    store.put_budget(ERRORS)
    got = wait_for(lambda: (r := readings(server)) and len(r) == 2 and r)
    assert (got["traffic"].level, got["traffic"].figure.value, got["traffic"].figure.samples) == ("warning", 4, 4)
    assert got["errors"].level == "warning" and got["errors"].figure.value == pytest.approx(0.25)

    status = httpx.get(f"{server.http}/api/v1/budgets/status", params={"project": "shop"}, timeout=30).json()
    assert status["interval_s"] == 0.3 and status["file_error"] is None and status["at"] is not None
    assert {r["name"]: (r["level"], r["value"]) for r in status["readings"]} == {
        "traffic": ("warning", 4), "errors": ("warning", 0.25)}  # fmt: skip
    listed = httpx.get(f"{server.http}/api/v1/budgets", timeout=30).json()["budgets"]
    assert {b["name"]: b["latest"]["level"] for b in listed} == {"traffic": "warning", "errors": "warning"}
    other = httpx.get(f"{server.http}/api/v1/budgets/status", params={"project": "beta"}, timeout=30).json()
    assert other["readings"] == []

    store.put_budget({**ERRORS, "warning": 0.3})  # a change: the next cycle reads it
    got = wait_for(lambda: (r := readings(server)) and r["errors"].level == "ok" and r)
    assert got["errors"].warning_at == 0.3

    path = store.path
    good = path.read_text()
    path.write_text(good.replace('metric = "traffic"', 'metric = "trafic"'))
    seen = watch.latest.at
    latest = wait_for(lambda: watch.latest.at > seen and watch.latest.file_error and watch.latest)
    assert "unknown metric 'trafic'" in latest.file_error
    assert {r.budget.name for r in latest.evaluation.readings} == {"traffic", "errors"}  # the last good set
    status = httpx.get(f"{server.http}/api/v1/budgets/status", timeout=30).json()
    assert "unknown metric 'trafic'" in status["file_error"] and len(status["readings"]) == 2


def test_a_failing_sink_does_not_stop_the_watch(server: RunningCollector) -> None:
    watch = server.server.budget_watch
    BudgetsFile(server.data_dir).put_budget(TRAFFIC)
    calls: list[tuple[int, datetime]] = []

    def sink(got: Any, at: datetime) -> None:
        calls.append((len(got), at))
        if len(calls) == 1:
            raise RuntimeError("the alerts engine fell over")

    watch.sink = sink
    wait_for(lambda: len(calls) >= 3)
    assert all(n == 1 for n, _ in calls) and calls[0][1] < calls[1][1] < calls[2][1]
    assert watch.running


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in (("", DEFAULT_INTERVAL_S), ("0", 0.0), ("2.5", 2.5), ("soon", DEFAULT_INTERVAL_S),
                          ("-1", DEFAULT_INTERVAL_S), ("nan", DEFAULT_INTERVAL_S)):  # fmt: skip
        monkeypatch.setenv(INTERVAL_ENV, raw)
        assert interval_from_env() == expected, raw
