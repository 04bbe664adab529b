"""The evaluation watch in a real server: `kill -9` in the middle of the online rules loses and
doubles nothing after a restart; a judge endpoint that is down delays results (retry list)
without slowing ingest."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.server.evaluation_watch import BATCH_ENV, EVENTS_BATCH_ENV, INTERVAL_ENV, wal_horizon
from spanlake.storage.reader import Lake
from tests.conftest import RunningCollector, start_collector
from tests.evaluators.online_helpers import (
    PROJECT,
    TWO_CHECKS,
    evaluation,
    expected,
    judge_labels,
    otel_app,
    send_traces,
    status,
    wait_for,
    write_evaluators,
)
from tests.net import free_port
from tests.server.up_helpers import Up


def test_wal_horizon_is_the_oldest_segment_to_flush(tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    wal.mkdir()
    assert wal_horizon(wal) is None and wal_horizon(None) is None
    (wal / f"{3_000_000_000_000_000_000:020d}-abc.wal").touch()
    (wal / f"{2_000_000_000_000_000_000:020d}-abc.open").touch()
    (wal / f"{1_000_000_000_000_000_000:020d}-abc.failed").touch()  # kept for an operator: not waited for
    h = wal_horizon(wal)
    assert h is not None and h.timestamp() == 2_000_000_000 - 2  # the .open one, less WAL_SLACK (2 s)


def test_kill_9_in_the_middle_then_restart_loses_and_doubles_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_evaluators(data, TWO_CHECKS.replace("sample = 0.1", "sample = 0.5"))
    env = {INTERVAL_ENV: "0.3", BATCH_ENV: "15"}
    node = Up(data, **env)
    try:
        node.wait_started()
        ids = send_traces(node.address("OTLP/HTTP"), 150)
        wait_for(lambda: 15 <= status(data).get("handled", 0) < 150, 120, "a first cycle, not the last")
        node.proc.send_signal(signal.SIGKILL)
        node.wait_exit()
        killed_at = status(data).get("handled", 0)
        assert killed_at < 150
    finally:
        node.stop()
    again = Up(data, **env)
    try:
        again.wait_started()
        wait_for(lambda: status(data).get("handled") == 150 and status(data)["backlog"] == 0, 120, "all handled")
    finally:
        assert again.stop() == 0
    want = expected("tenth", ids, 0.5)
    pairs = sorted((r["trace_id"], r["author"]) for r in judge_labels(data))
    assert pairs == sorted([(t, "fast@v1") for t in want] + [(t, "slow@v1") for t in want])  # none lost, none doubled
    assert status(data)["evaluators"]["shop/fast@v1"]["evaluated"] >= len(want)


def test_kill_9_while_reading_the_apps_evaluation_events_then_restart_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    write_evaluators(data, '[settings]\nquiet_period = "1s"\n')  # no rule: the app's events need none
    env = {INTERVAL_ENV: "0.3", EVENTS_BATCH_ENV: "10"}  # ten spans a cycle: the kill lands mid-stream
    node = Up(data, **env)
    sent = set()
    try:
        node.wait_started()
        with otel_app(node.address("OTLP/HTTP")) as (tracer, _):
            for i in range(120):
                verdict = "fail" if i % 3 == 0 else "pass"
                with tracer.start_as_current_span("answer", attributes={"spanlake.task.name": "answer"}) as span:
                    span.add_event("gen_ai.evaluation.result", evaluation("relevance", score=i / 100, label=verdict))
                ctx = span.get_span_context()
                sent.add((format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), verdict, i / 100))
        wait_for(lambda: 10 <= status(data).get("events", {}).get("read", 0) < 120, 120, "some events, not all")
        node.proc.send_signal(signal.SIGKILL)
        node.wait_exit()
        assert status(data)["events"]["read"] < 120
    finally:
        node.stop()
    again = Up(data, **env)
    try:
        again.wait_started()
        wait_for(lambda: status(data).get("events", {}).get("read") == 120, 180, "every event read")
        assert status(data)["events"]["more"] is False
    finally:
        assert again.stop() == 0
    sql = "SELECT trace_id, span_id, author, verdict, score FROM labels WHERE source = 'judge'"
    rows = Lake(data).query(sql).to_pylist()
    assert len(rows) == 120 and {r["author"] for r in rows} == {"relevance@otel"}  # none doubled
    assert {(r["trace_id"], r["span_id"], r["verdict"], r["score"]) for r in rows} == sent  # none lost


JUDGE = """
[settings]
quiet_period = "1s"

[[evaluator]]
name = "judge"
kind = "llm_judge"
project = "shop"
base_url = "{url}"
model = "judge-pass"
template = "Answer: {{output}}"
timeout_s = 2
retries = 0

[[rule]]
name = "all"
project = "shop"
evaluators = ["judge"]
sample = 1.0
"""


@pytest.fixture
def judge_port() -> int:
    return free_port()  # nothing listens there until the test starts the fake judge


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judge_port: int) -> Iterator[RunningCollector]:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    data = tmp_path / "data"
    write_evaluators(data, JUDGE.format(url=f"http://127.0.0.1:{judge_port}/v1"))
    running, stop = start_collector(data)
    try:
        yield running
    finally:
        stop()


def test_judge_down_then_up_results_arrive_later_and_ingest_is_unaffected(
    server: RunningCollector, judge_port: int
) -> None:
    first = send_traces(server.http, 8)
    wait_for(lambda: status(server.data_dir).get("retry") == 8, 60, "the 8 traces on the retry list")
    s = status(server.data_dir)
    assert s["evaluators"]["shop/judge@v1"]["transient"] >= 1 and s["evaluators"]["shop/judge@v1"]["evaluated"] == 0

    # ingest meanwhile: acknowledged and in the lake at once, the judge being down changes nothing
    t0 = time.monotonic()
    second = send_traces(server.http, 50)
    server.flush()
    assert time.monotonic() - t0 < 10
    seen = Lake(server.data_dir).query("SELECT count(DISTINCT trace_id) AS n FROM spans WHERE project = $p",
                                       {"p": PROJECT}).to_pylist()[0]["n"]  # fmt: skip
    assert seen == 58

    with FakeOpenAI(port=judge_port):
        wait_for(lambda: status(server.data_dir).get("retry") == 0 and status(server.data_dir).get("handled") == 58,
                 90, "the retries through")  # fmt: skip
        server.flush()
    labels = judge_labels(server.data_dir)
    assert sorted(r["trace_id"] for r in labels) == sorted(first + second)
    assert {r["author"] for r in labels} == {"judge@v1"} and {r["verdict"] for r in labels} == {"pass"}
