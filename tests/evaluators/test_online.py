"""Online rules (evaluators.online): sampling by trace id, and a rule sampling 10 % of a stream
of traces sent by the OTel SDK exporter into the real server."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.evaluators.complete_traces import Cursor
from spanlake.evaluators.online import sampled
from spanlake.evaluators.rule_actions import wants
from spanlake.server.evaluation_watch import INTERVAL_ENV
from tests.conftest import RunningCollector, start_collector
from tests.evaluators.online_helpers import (
    TWO_CHECKS,
    expected,
    judge_labels,
    queued,
    send_traces,
    status,
    wait_for,
    write_evaluators,
)


def test_sampled_is_the_plans_hash_of_rule_and_trace() -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    h = int(hashlib.sha256(f"tenth:{trace}".encode()).hexdigest()[:8], 16)  # by hand, as the plan says
    assert sampled("tenth", trace, h / 2**32 + 1e-12) is True
    assert sampled("tenth", trace, h / 2**32) is False  # strictly below the rate
    assert sampled("tenth", trace.upper(), 1.0) and not sampled("tenth", trace, 0.0)
    ids = [f"{i:032x}" for i in range(20_000)]
    share = sum(sampled("tenth", t, 0.1) for t in ids) / len(ids)
    assert 0.095 < share < 0.105
    other = {t for t in ids if sampled("other", t, 0.1)}
    assert other != {t for t in ids if sampled("tenth", t, 0.1)}  # each rule its own sample


def test_action_conditions() -> None:
    assert wants("fail", ["pass", "fail"], True) and not wants("fail", ["pass"], True)
    assert wants("disagree", ["pass", "fail"], True) and not wants("disagree", ["fail", "fail"], True)
    assert wants("always", [], True) and not wants("always", [], False) and not wants(None, ["fail"], True)


def test_cursor_orders_by_time_then_project_then_trace() -> None:
    a, b, c = Cursor(5, "p", "aa"), Cursor(5, "p", "ab"), Cursor(6, "a", "00")
    assert a < b < c and Cursor.from_dict(b.to_dict()) == b and Cursor.from_dict(None) == Cursor()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningCollector]:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    data = tmp_path / "data"
    write_evaluators(data, TWO_CHECKS)
    running, stop = start_collector(data)
    try:
        yield running
    finally:
        stop()


def test_a_rule_sampling_a_tenth_judges_exactly_the_sampled_traces_once(server: RunningCollector) -> None:
    ids = send_traces(server.http, 120)
    send_traces(server.http, 30, task="other")  # outside the rule's scope (task = "answer")
    want = expected("tenth", ids, 0.1)
    assert want, "120 traces sample none at 10 %: the hash is broken"
    wait_for(lambda: status(server.data_dir).get("handled") == 150 and status(server.data_dir)["backlog"] == 0,
             60, "every complete trace handled")  # fmt: skip
    server.flush()
    labels = judge_labels(server.data_dir)
    pairs = [(r["trace_id"], r["author"]) for r in labels]
    assert sorted(pairs) == sorted([(t, "fast@v1") for t in want] + [(t, "slow@v1") for t in want])
    assert {(r["author"], r["verdict"]) for r in labels} == {("fast@v1", "pass"), ("slow@v1", "fail")}
    assert len(judge_labels(server.data_dir, raw=True)) == 2 * len(want)  # written once, not de-duplicated
    assert queued(server.data_dir, "tenth") == want  # they disagree: every one goes to the queue
    s = status(server.data_dir)
    fast, slow = s["evaluators"]["shop/fast@v1"], s["evaluators"]["shop/slow@v1"]
    assert (fast["evaluated"], fast["passed"], fast["failed"]) == (len(want), len(want), 0)
    assert (slow["evaluated"], slow["passed"], slow["failed"]) == (len(want), 0, len(want))
    assert s["retry"] == 0 and s["skipped"] == 0 and s["file_error"] is None

    # later traces are taken from the cursor: the first ones are not judged again
    more = send_traces(server.http, 40)
    wait_for(lambda: status(server.data_dir).get("handled") == 190, 60, "the new traces handled")
    server.flush()
    want |= expected("tenth", more, 0.1)
    assert sorted((r["trace_id"], r["author"]) for r in judge_labels(server.data_dir, raw=True)) == sorted(
        [(t, "fast@v1") for t in want] + [(t, "slow@v1") for t in want]
    )
