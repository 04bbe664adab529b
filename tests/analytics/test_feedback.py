"""The feedback report: end-user thumbs and scores on the window's traces, by hand."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, PartitionKey
from spanlake.storage.schema import LABELS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, sid, span, tid, write

MIN = 60_000  # ms
TASK = "spanlake.task.name"
W = Filters(since=T0, until=T0 + timedelta(hours=1))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def label(d: Path, trace: int, minutes: float, source: str = "user_feedback", **fields: object) -> None:
    """One label event on `trace`, set `minutes` after T0, written as the collector writes them."""
    when = at(minutes)
    row = {c.name: None for c in LABELS.columns}
    row.update(label_id=uuid.uuid4().hex, trace_id=tid(trace).hex(), source=source, created_at=when,
               ingested_at=when, **fields)  # fmt: skip
    key = PartitionKey(DEFAULT_PROJECT, when.date(), when.hour)
    LakeWriter(DataDir(d)).write_batch(LABELS, {key: {k: [v] for k, v in row.items()}}, uuid.uuid4().hex)


def build(d: Path) -> None:
    write(
        d,
        [
            span(1, 1, at_ms=1 * MIN, ms=100, name="A", **{TASK: "answer"}),
            span(2, 1, at_ms=5 * MIN, ms=100, name="A", **{TASK: "answer"}),
            span(2, 2, 1, at_ms=5 * MIN + 1, ms=10, name="chat"),
            span(3, 1, at_ms=10 * MIN, ms=100, name="A", **{TASK: "answer"}),
            span(5, 1, at_ms=20 * MIN, ms=100, name="A", **{TASK: "answer"}),
            span(6, 1, at_ms=-30 * MIN, ms=100, name="A", **{TASK: "answer"}),  # before the window
            span(7, 1, at_ms=30 * MIN, ms=100, name="A", **{TASK: "answer"}),
        ],
    )
    write(d, [span(4, 1, at_ms=15 * MIN, ms=100, name="S", **{TASK: "summarize"})], {"service.name": "svc-b"})
    # 1: u1 says up, then changes to down
    label(d, 1, 2, author="u1", value="up")
    label(d, 1, 3, author="u1", value="down")
    # 2: two users: u1 down, then u2 up (on a span); scores without a value: u2 4, u1 2 then 3
    label(d, 2, 6, author="u1", value="down")
    label(d, 2, 7, author="u2", value="up", span_id=sid(2).hex())
    label(d, 2, 8, author="u2", score=4.0)
    label(d, 2, 9, author="u1", score=2.0)
    label(d, 2, 10, author="u1", score=3.0)
    # 3: an anonymous score without a value
    label(d, 3, 11, score=5.0)
    # 4 (summarize, svc-b): down
    label(d, 4, 16, author="u3", value="down")
    # 5: a comment only
    label(d, 5, 21, author="u1", comment="hmm")
    # 6 started before the window: its feedback does not count
    label(d, 6, 1, author="u1", value="down", score=1.0)
    # 7: a reviewer and a judge are not end users
    label(d, 7, 31, source="human", author="ana", verdict="fail", score=1.0)
    label(d, 7, 32, source="judge", author="j", verdict="fail", score=0.0)


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    build(tmp_path)
    return Analytics(tmp_path)


def row(an: Analytics, f: Filters) -> dict:
    df, source = run_report(an, "feedback", f)
    assert source == "raw"
    (r,) = df.to_dicts()
    return r


def test_votes_scores_and_shares_by_hand(an: Analytics) -> None:
    r = row(an, W)
    # traces 1-5 have feedback (7 has labels, not feedback; 6 started before the window)
    assert (r["traces_with_feedback"], r["traces_with_value"]) == (5, 3)
    # 1 down (u1's latest), 2 up (u2's up is later than u1's down), 4 down
    assert (r["positive"], r["negative"]) == (1, 2) and r["negative_share"] == pytest.approx(2 / 3)
    # each user's latest score: 2 → u1 3, u2 4; 3 → anonymous 5
    assert r["scores"] == 3 and r["mean_score"] == pytest.approx(4.0)


def test_filters_and_window(an: Analytics) -> None:
    r = row(an, Filters(since=W.since, until=W.until, task_name="answer"))
    assert (r["traces_with_feedback"], r["positive"], r["negative"], r["negative_share"]) == (4, 1, 1, 0.5)
    assert (r["scores"], r["mean_score"]) == (3, pytest.approx(4.0))
    r = row(an, Filters(since=W.since, until=W.until, service="svc-b"))
    assert (r["traces_with_feedback"], r["negative"], r["negative_share"], r["scores"], r["mean_score"]) == (
        1, 1, 1.0, 0, None)  # fmt: skip
    r = row(an, Filters(since=at(5), until=W.until))  # trace 1 (10:01) is left out: until exclusive, since inclusive
    assert (r["traces_with_value"], r["negative_share"]) == (2, 0.5)
    r = row(an, Filters(since=W.since, until=at(5)))  # trace 2 starts at the (exclusive) end
    assert (r["traces_with_feedback"], r["negative_share"], r["scores"]) == (1, 1.0, 0)
    r = row(an, Filters(since=at(40), until=W.until))
    assert (r["traces_with_feedback"], r["traces_with_value"], r["negative_share"], r["mean_score"]) == (
        0,
        0,
        None,
        None,
    )
    assert row(an, Filters(since=W.since, until=W.until, project="elsewhere"))["traces_with_feedback"] == 0


def test_no_label_files(tmp_path: Path) -> None:
    write(tmp_path, [span(1, 1, at_ms=1 * MIN, ms=100, name="A", **{TASK: "answer"})])
    r = row(Analytics(tmp_path), W)
    assert (r["traces_with_feedback"], r["negative_share"], r["scores"]) == (0, None, 0)
