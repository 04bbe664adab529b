"""Reviewer verdicts sent through the labels API decide task outcomes in the reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from spanlake.analytics.reports import task_list, tasks
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.conftest import RunningCollector
from tests.factories import make_request, make_span

TASK = "spanlake.task.name"


def label(collector: RunningCollector, path: str, body: dict) -> None:
    r = httpx.post(f"{collector.http}/api/v1/{path}", json=body)
    assert r.status_code == 200, r.text
    time.sleep(0.002)  # distinct created_at, so "latest" is well defined


def test_latest_human_verdict_overrides_the_app_and_feedback_does_not(collector: RunningCollector) -> None:
    t1 = make_span("t1", attributes={TASK: "t1", "spanlake.task.outcome": "success"})
    t2 = make_span("t2", attributes={TASK: "t2", "spanlake.task.outcome": "success"})
    t3 = make_span("t3", attributes={TASK: "t3"})
    body = make_request([t1, t2, t3]).SerializeToString()
    r = httpx.post(f"{collector.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200

    # t1: a reviewer fails the whole trace (no span id: applies to its root task).
    label(collector, "labels", {"trace_id": t1.trace_id.hex(), "source": "human", "author": "ana", "verdict": "fail"})
    # t2: failed, then corrected to pass on the task span: the latest verdict wins.
    on_t2 = {"trace_id": t2.trace_id.hex(), "span_id": t2.span_id.hex(), "source": "human", "author": "bo"}
    label(collector, "labels", {**on_t2, "verdict": "fail"})
    label(collector, "labels", {**on_t2, "verdict": "pass"})
    # t3: an end user's thumbs down and an automated judge are not reviewer verdicts.
    label(collector, "feedback", {"trace_id": t3.trace_id.hex(), "value": "down"})
    label(collector, "labels", {"trace_id": t3.trace_id.hex(), "source": "judge", "verdict": "fail"})
    collector.flush()

    an = Analytics(collector.data_dir)
    now = datetime.now(UTC)
    window = Filters(since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    got = {r["task_name"]: (r["outcome"], r["outcome_source"]) for r in task_list(an, window, limit=10).to_dicts()}
    assert got == {"t1": ("failure", "label"), "t2": ("success", "label"), "t3": ("unknown", "default")}
    (row,) = tasks(an, window).to_dicts()
    # By hand: 3 tasks; 1 success (t2); 2 outcomes from labels, none left from the app.
    assert (row["tasks"], row["successful_tasks"], row["from_label"], row["from_app"]) == (3, 1, 2, 0)


def test_a_judge_that_decides_comes_after_reviewers(collector: RunningCollector) -> None:
    spans = {n: make_span(n, attributes={TASK: n, "spanlake.task.outcome": "success"}) for n in ("j1", "j2", "j3")}
    body = make_request(list(spans.values())).SerializeToString()
    r = httpx.post(f"{collector.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200

    def judge(name: str, verdict: str, decides: bool) -> dict:
        meta = {"evaluator": "grounded", "evaluator_version": 1} | ({"decides_outcome": True} if decides else {})
        trace = spans[name].trace_id.hex()
        return {"trace_id": trace, "source": "judge", "author": "grounded@v1", "verdict": verdict, "metadata": meta}

    label(collector, "labels", judge("j1", "fail", True))  # j1: a deciding judge's fail decides
    label(collector, "labels", {"trace_id": spans["j2"].trace_id.hex(), "source": "human", "author": "ana",
                                "verdict": "pass"})  # fmt: skip
    label(collector, "labels", judge("j2", "fail", True))  # j2: a reviewer's pass overrides a later judge
    label(collector, "labels", judge("j3", "fail", False))  # j3: a judge without the flag does not decide
    collector.flush()

    an = Analytics(collector.data_dir)
    now = datetime.now(UTC)
    window = Filters(since=now - timedelta(hours=1), until=now + timedelta(hours=1))
    got = {r["task_name"]: (r["outcome"], r["outcome_source"]) for r in task_list(an, window, limit=10).to_dicts()}
    assert got == {"j1": ("failure", "judge"), "j2": ("success", "label"), "j3": ("success", "app")}
    (row,) = tasks(an, window).to_dicts()
    assert (row["tasks"], row["from_label"], row["from_judge"], row["from_app"]) == (3, 1, 1, 1)
