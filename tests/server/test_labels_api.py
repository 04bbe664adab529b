"""Labels and feedback over HTTP: durable, visible in the `labels` view, bad input refused."""

from __future__ import annotations

import json
import os
import threading

import httpx
import pytest

from tests.conftest import RunningCollector, start_collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def post(collector: RunningCollector, path: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{collector.http}/api/v1/{path}", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def test_feedback_is_durable_and_visible(collector: RunningCollector) -> None:
    r = post(
        collector,
        "feedback",
        {"trace_id": TRACE.upper(), "value": "down", "comment": "wrong order id", "user_id": "u-7"},
    )
    assert r.status_code == 200, r.text
    label_id = r.json()["label_id"]
    collector.flush()
    (row,) = collector.query("SELECT * FROM labels")
    assert row["label_id"] == label_id
    assert (row["trace_id"], row["span_id"], row["project"]) == (TRACE, None, "default")
    assert (row["source"], row["author"], row["value"], row["comment"]) == (
        "user_feedback",
        "u-7",
        "down",
        "wrong order id",
    )
    assert row["score"] is None and row["verdict"] is None


def test_labels_batch_and_history(collector: RunningCollector) -> None:
    first = {"trace_id": TRACE, "span_id": SPAN, "source": "human", "author": "ana", "verdict": "fail",
             "failure_mode": "hallucination", "project": "shop"}  # fmt: skip
    r = post(collector, "labels", [first, {**first, "author": "bo", "verdict": "pass", "failure_mode": None}])
    assert r.status_code == 200, r.text
    assert len(r.json()["label_ids"]) == 2
    # A correction is a new event: both stay, in order.
    r = post(collector, "labels", {**first, "verdict": "pass", "failure_mode": None, "expected_output": "<b>42</b>"})
    assert r.status_code == 200
    collector.flush()
    rows = collector.query(
        "SELECT author, verdict, failure_mode, expected_output FROM labels ORDER BY created_at, author"
    )
    assert rows == [
        {"author": "ana", "verdict": "fail", "failure_mode": "hallucination", "expected_output": None},
        {"author": "bo", "verdict": "pass", "failure_mode": None, "expected_output": None},
        {"author": "ana", "verdict": "pass", "failure_mode": None, "expected_output": "<b>42</b>"},
    ]
    assert collector.query("SELECT DISTINCT project FROM labels") == [{"project": "shop"}]


def test_a_resent_label_id_counts_once(collector: RunningCollector) -> None:
    """An offline evaluator run re-sends its labels after an interruption: the lake keeps one per
    (project, label_id); a label without label_id gets a fresh one each time."""
    judged = {"trace_id": TRACE, "source": "judge", "author": "tone@v1", "verdict": "fail", "label_id": "ev-1"}
    r = post(collector, "labels", [judged, {**judged, "comment": "sent twice in one batch"}])
    assert r.status_code == 200 and r.json()["label_ids"] == ["ev-1", "ev-1"]
    assert post(collector, "labels", judged).json() == {"label_id": "ev-1"}
    assert post(collector, "labels", {**judged, "project": "other"}).status_code == 200  # another project's id
    plain = {"trace_id": TRACE, "source": "api", "verdict": "pass"}
    ids = {post(collector, "labels", plain).json()["label_id"] for _ in range(2)}
    assert len(ids) == 2 and "ev-1" not in ids
    collector.flush()
    rows = collector.query("SELECT project, label_id, count(*) AS n FROM labels GROUP BY ALL ORDER BY ALL")
    assert rows == sorted(
        [{"project": "default", "label_id": "ev-1", "n": 1}, {"project": "other", "label_id": "ev-1", "n": 1}]
        + [{"project": "default", "label_id": i, "n": 1} for i in ids],
        key=lambda r: (r["project"], r["label_id"]),
    )
    assert collector.query("SELECT count(*) AS n FROM labels_raw WHERE label_id = 'ev-1'") == [{"n": 4}]


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("feedback", {"trace_id": "xyz", "value": "up"}, "trace_id"),
        ("feedback", {"trace_id": TRACE}, "at least one of value, score or comment"),
        ("feedback", {"trace_id": TRACE, "value": "meh"}, "value"),
        ("feedback", {"trace_id": TRACE, "value": "up", "extra": 1}, "extra"),
        ("feedback", {"trace_id": TRACE, "score": "NaN"}, "finite"),
        ("feedback", {"trace_id": TRACE, "value": "up", "project": "../etc"}, "invalid project name"),
        ("feedback", {"trace_id": TRACE, "comment": "x" * 70_000}, "comment"),
        ("labels", {"trace_id": TRACE, "source": "human"}, "at least one of verdict"),
        ("labels", [], "between 1 and 1000"),
        ("labels", [{"trace_id": TRACE, "verdict": "pass"}, {"trace_id": TRACE, "verdict": "maybe"}], "[1].verdict"),
        ("labels", "just a string", "body"),
        ("labels", {"trace_id": TRACE, "verdict": "pass", "label_id": ""}, "label_id"),
        ("labels", {"trace_id": TRACE, "verdict": "pass", "label_id": "a/b"}, "label_id"),
        ("labels", {"trace_id": TRACE, "verdict": "pass", "label_id": "x" * 65}, "label_id"),
        ("feedback", {"trace_id": TRACE, "value": "up", "label_id": "abc"}, "label_id"),
    ],
)
def test_bad_label_input(collector: RunningCollector, path: str, body: object, fragment: str) -> None:
    r = post(collector, path, body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == 3
    assert fragment in r.json()["message"]
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM labels") == [{"n": 0}]


def test_not_json(collector: RunningCollector) -> None:
    r = httpx.post(f"{collector.http}/api/v1/feedback", content=b"{oops", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = httpx.post(f"{collector.http}/api/v1/feedback", content=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "application/json" in r.json()["message"]
    r = httpx.post(
        f"{collector.http}/api/v1/labels", content=b"[" + b" " * (3 * 1024 * 1024) + b"]",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 413


def test_hostile_text_is_stored_verbatim(collector: RunningCollector) -> None:
    text = "<script>alert(1)</script>\x00\x07\u202e" + "é" * 1000
    assert post(collector, "feedback", {"trace_id": TRACE, "comment": text}).status_code == 200
    collector.flush()
    assert collector.query("SELECT comment FROM labels") == [{"comment": text}]


def test_concurrent_feedback_loses_nothing(collector: RunningCollector) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client() as c:
            for i in range(25):
                r = c.post(
                    f"{collector.http}/api/v1/feedback",
                    json={"trace_id": os.urandom(16).hex(), "score": float(i), "user_id": f"client-{n}"},
                )
                assert r.status_code == 200
                with lock:
                    ids.append(r.json()["label_id"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    collector.flush()
    stored = {r["label_id"] for r in collector.query("SELECT label_id FROM labels")}
    assert stored == set(ids) and len(ids) == 100


def test_labels_survive_a_restart(tmp_path) -> None:
    running, stop = start_collector(tmp_path / "d")
    try:
        assert post(running, "feedback", {"trace_id": TRACE, "value": "up"}).status_code == 200
    finally:
        stop()
    running, stop = start_collector(tmp_path / "d")
    try:
        running.flush()
        assert running.query("SELECT value FROM labels") == [{"value": "up"}]
    finally:
        stop()


def test_a_label_id_written_again_keeps_its_first_copy(collector: RunningCollector) -> None:
    """An evaluator version judging the same target again (its label_id is deterministic) does
    not replace the first result, whichever file the lake reads first."""
    first = {"trace_id": TRACE, "source": "judge", "author": "tone@v1", "verdict": "fail", "label_id": "ev-9"}
    assert post(collector, "labels", first).status_code == 200
    collector.flush()
    for verdict in ("pass", "pass", "fail"):
        assert post(collector, "labels", {**first, "verdict": verdict, "comment": "again"}).status_code == 200
        collector.flush()
    assert collector.query("SELECT verdict, comment FROM labels WHERE label_id = 'ev-9'") == [
        {"verdict": "fail", "comment": None}
    ]
