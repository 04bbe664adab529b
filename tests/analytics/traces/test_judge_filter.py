"""The trace list's judge filter and judge column (current judge labels of each trace)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import Page, TraceFilters, parse_judge
from spanlake.analytics.traces.trace_list import count_traces, list_traces
from tests.analytics.helpers import T0, human_event, judge_event, span, tid, write, write_labels

WINDOW = TraceFilters(since=T0, until=T0 + timedelta(hours=1))


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    d = tmp_path_factory.mktemp("lake")
    write(d, [s for t in range(1, 6) for s in (span(t, 1, at_ms=t * 1000), span(t, 2, 1, at_ms=t * 1000 + 1))])
    write(d, [span(6, 1, at_ms=2 * 3_600_000)])  # after the window
    at = [T0 + timedelta(minutes=m) for m in range(10)]
    write_labels(
        d,
        [
            judge_event(1, at[1], "fail"),
            judge_event(1, at[1], "pass", name="h"),
            judge_event(1, at[2], "pass", name="h", span_id=2),  # another target of the same evaluator
            judge_event(2, at[1], "fail", label_id="first"),
            judge_event(2, at[2], "pass", label_id="again"),  # g@v1 corrected itself: pass is current
            judge_event(3, at[3], "fail", version=2, span_id=2),
            human_event(4, at[4], "fail"),  # a reviewer, not a judge
            judge_event(5, at[5], None, score=0.3),  # a score, no verdict
            judge_event(6, at[6], "fail"),
        ],
    )
    return Analytics(d)


def ids(an: Analytics, **kw: str) -> list[int]:
    rows = list_traces(an, WINDOW.with_(**kw), Page(sort="start_time", descending=False)).rows
    return [int(t, 16) for t in rows["trace_id"].to_list()]


@pytest.mark.parametrize(
    ("judge", "expected"),
    [
        ("fail", [1, 3]),
        ("pass", [1, 2]),
        ("g:fail", [1, 3]),
        ("g@v2:fail", [3]),
        ("g@v1:fail", [1]),
        ("h:pass", [1]),
        ("h:fail", []),
        ("nobody:fail", []),
    ],
)
def test_judge_filter(an: Analytics, judge: str, expected: list[int]) -> None:
    assert ids(an, judge=judge) == expected
    assert count_traces(an, WINDOW.with_(judge=judge)) == len(expected)


def test_judge_column(an: Analytics) -> None:
    rows = list_traces(an, WINDOW, Page(sort="start_time", descending=False)).rows
    got = dict(zip(rows["trace_id"].to_list(), rows["judge"].to_list(), strict=True))
    assert got == {tid(1).hex(): "1 fail · 2 pass", tid(2).hex(): "1 pass", tid(3).hex(): "1 fail",
                   tid(4).hex(): None, tid(5).hex(): None}  # fmt: skip
    empty = list_traces(an, WINDOW.with_(judge="h:fail")).rows
    assert empty.height == 0 and "judge" in empty.columns


def test_bad_judge_filters() -> None:
    assert parse_judge("fail") == (None, "fail") and parse_judge(" a:b:pass ") == ("a:b", "pass")
    for bad in ("maybe", ":fail", "g:", "g:unknown", ""):
        with pytest.raises(ValueError, match="judge must be"):
            TraceFilters(judge=bad)


def test_a_lake_without_labels(tmp_path: Path) -> None:
    write(tmp_path, [span(1, 1)])
    an = Analytics(tmp_path)
    assert list_traces(an, WINDOW).rows["judge"].to_list() == [None]
    assert ids(an, judge="fail") == []
