"""The judge report (analytics/reports/judge.py): pass rates of current judge labels, hand-worked
on designed traces and labels — a re-sent label, a corrected one, a trace without a prompt
version, a label on a nested task's span, labels outside the window."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from spanlake.analytics.reports.judge import judge, judge_failed_traces
from spanlake.analytics.reports.registry import REPORTS, run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.analytics.helpers import T0, human_event, judge_event, llm, span, tid, write, write_labels

TASK = "spanlake.task.name"
WINDOW = Filters(since=T0, until=T0 + timedelta(hours=1))
BETA = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "beta-2",
        "gen_ai.usage.input_tokens": 10}  # fmt: skip


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    d = tmp_path_factory.mktemp("lake")
    write(
        d,
        [
            # 1: prompt v1 on acme-1
            span(1, 1, name="A", ms=100, **{TASK: "answer"}),
            span(1, 2, 1, at_ms=1, name="chat", **llm("acme-1", 100, "v1")),
            # 2: prompt v2 on acme-1
            span(2, 1, at_ms=60_000, name="B", ms=100, **{TASK: "answer"}),
            span(2, 2, 1, at_ms=60_001, name="chat", **llm("acme-1", 100, "v2")),
            # 3: no prompt version, beta-2
            span(3, 1, at_ms=120_000, name="C", ms=100, **{TASK: "answer"}),
            span(3, 2, 1, at_ms=120_001, name="chat", **BETA),
            # 4: starts after the window
            span(4, 1, at_ms=3_600_000, name="D", ms=100, **{TASK: "answer"}),
            # 5: only a reviewer's label
            span(5, 1, at_ms=180_000, name="E", ms=100, **{TASK: "answer"}),
            # 6: task `outer` holds task `inner`, whose call uses prompt v3
            span(6, 1, at_ms=240_000, name="outer", ms=100, **{TASK: "outer"}),
            span(6, 2, 1, at_ms=240_010, name="inner", ms=50, **{TASK: "inner"}),
            span(6, 3, 2, at_ms=240_020, name="chat", **llm("acme-1", 100, "v3")),
        ],
    )
    resent = judge_event(1, at(5), "pass")
    write_labels(
        d,
        [
            resent,
            judge_event(1, at(6), "fail", version=2),
            judge_event(1, at(-60), "fail", version=3),  # set before the window's start - skew: not read
            judge_event(2, at(10), "fail", label_id="first-look"),
            judge_event(2, at(12), "pass", label_id="second-look"),  # g@v1 corrects itself on trace 2
            judge_event(2, at(11), "pass", name="h", score=0.9),
            judge_event(3, at(13), "fail", score=0.4),
            judge_event(4, at(70), "fail"),  # trace 4 is outside the window
            human_event(5, at(14), "fail"),  # a reviewer is not a judge
            judge_event(6, at(15), "pass"),  # the whole trace: its first task, outer
            judge_event(6, at(16), "fail", name="h", span_id=3),  # the call inside inner
        ],
    )
    write_labels(d, [resent])  # the same event delivered twice
    return Analytics(d)


# Current judge labels of the window's traces, by hand:
#   trace 1 (v1, acme-1, answer): g@v1 pass, g@v2 fail
#   trace 2 (v2, acme-1, answer): g@v1 pass (its latest), h@v1 pass (0.9)
#   trace 3 (no version, beta-2, answer): g@v1 fail (0.4)
#   trace 6 (v3, acme-1): g@v1 pass on outer, h@v1 fail on inner


def rows(df: pl.DataFrame, *keys: str) -> dict:
    cols = ("labels", "passed", "failed", "pass_rate")
    return {tuple(r[k] for k in keys): tuple(r[c] for c in cols) for r in df.to_dicts()}


def test_overall(an: Analytics) -> None:
    (row,) = judge(an, WINDOW).to_dicts()
    assert row == {"labels": 7, "passed": 4, "failed": 3, "pass_rate": pytest.approx(4 / 7), "scored": 2,
                   "mean_score": pytest.approx(0.65), "traces": 4}  # fmt: skip


def test_by_evaluator_and_version(an: Analytics) -> None:
    got = rows(judge(an, WINDOW, ["evaluator", "evaluator_version"]), "evaluator", "evaluator_version")
    assert got == {("g", 1): (4, 3, 1, 0.75), ("g", 2): (1, 0, 1, 0.0), ("h", 1): (2, 1, 1, 0.5)}


def test_by_prompt_version_model_task_and_day(an: Analytics) -> None:
    by_prompt = rows(judge(an, WINDOW, ["prompt_version"]), "prompt_version")
    assert by_prompt == {("v1",): (2, 1, 1, 0.5), ("v2",): (2, 2, 0, 1.0), ("v3",): (2, 1, 1, 0.5),
                         (None,): (1, 0, 1, 0.0)}  # fmt: skip
    by_model = rows(judge(an, WINDOW, ["model"]), "model")
    assert by_model == {("acme-1",): (6, 4, 2, pytest.approx(4 / 6)), ("beta-2",): (1, 0, 1, 0.0)}
    by_task = rows(judge(an, WINDOW, ["task_name"]), "task_name")
    assert by_task == {("answer",): (5, 3, 2, 0.6), ("outer",): (1, 1, 0, 1.0), ("inner",): (1, 0, 1, 0.0)}
    (day,) = judge(an, WINDOW, ["day"]).to_dicts()
    assert (day["day"].date(), day["labels"], day["passed"]) == (T0.date(), 7, 4)


def test_one_evaluator_and_the_failed_traces(an: Analytics) -> None:
    (g,) = judge(an, WINDOW, evaluator="g").to_dicts()
    assert (g["labels"], g["passed"], g["failed"]) == (5, 3, 2)
    (v2,) = judge(an, WINDOW, evaluator="g@v2").to_dicts()
    assert (v2["labels"], v2["pass_rate"]) == (1, 0.0)
    (none,) = judge(an, WINDOW, evaluator="nobody").to_dicts()
    assert (none["labels"], none["pass_rate"]) == (0, None)
    # fails, the latest judged first: 6 (10:16), 3 (10:13), 1 (10:06); trace 2's g@v1 fail was corrected
    assert judge_failed_traces(an, WINDOW, limit=10) == [tid(6).hex(), tid(3).hex(), tid(1).hex()]
    assert judge_failed_traces(an, WINDOW, limit=10, evaluator="h") == [tid(6).hex()]


def test_declared_like_every_report(an: Analytics) -> None:
    assert "judge" in REPORTS and REPORTS["judge"].rollup is None
    df, source = run_report(an, "judge", WINDOW, ["evaluator"], evaluator="h")
    assert source == "raw" and rows(df, "evaluator") == {("h",): (2, 1, 1, 0.5)}
    with pytest.raises(ValueError, match="cannot group by"):
        run_report(an, "judge", WINDOW, ["verdict"])


def test_an_empty_lake(tmp_path: Path) -> None:
    write(tmp_path, [span(1, 1, name="A", **{TASK: "answer"})])
    (row,) = judge(Analytics(tmp_path), WINDOW).to_dicts()
    assert (row["labels"], row["pass_rate"], row["mean_score"]) == (0, None, None)
