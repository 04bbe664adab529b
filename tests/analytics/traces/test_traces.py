"""Trace list, detail, sessions and overview on the seeded lake (known figures: see seed.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.overview import overview
from spanlake.analytics.traces.trace_list import count_traces, facets, list_sessions, list_traces, session_traces
from tests.analytics.traces.seed import MARKUP, T0, trace_hex

DAY = TraceFilters(since=T0 - timedelta(hours=10), until=T0 + timedelta(hours=14), project="shop")


def ids(an: Analytics, f: TraceFilters, page: Page | None = None) -> list[str]:
    return [t[-1:] for t in list_traces(an, f, page).rows["trace_id"]]


def test_list_rows_and_figures(seeded: Analytics) -> None:
    page = list_traces(seeded, DAY)
    assert page.total == 3 and not page.has_next
    rows = {r["trace_id"][-1:]: r for r in page.rows.to_dicts()}
    assert list(rows) == ["3", "2", "1"]  # newest first
    assert (rows["1"]["name"], rows["1"]["outcome"], rows["1"]["duration_ms"]) == ("answer", "success", 1000.0)
    assert (rows["1"]["span_count"], rows["1"]["llm_calls"], rows["1"]["total_tokens"]) == (4, 1, 150)
    assert rows["1"]["cost_usd"] == pytest.approx(0.0002)
    assert rows["2"]["outcome"] == "failure" and rows["2"]["validation_failures"] == 1  # failed validation
    assert rows["2"]["cost_usd"] == pytest.approx(0.0024)
    assert rows["3"]["outcome"] == "failure" and rows["3"]["has_error"] and rows["3"]["name"] == "handle"
    assert rows["3"]["models"] == ["gpt-4o-mini"] and rows["2"]["models"] == ["gpt-4o"]
    assert rows["1"]["session_id"] == "s1" and rows["1"]["service_name"] == "shop-api"


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"outcome": "failure"}, ["3", "2"]),
        ({"outcome": "success"}, ["1"]),
        ({"has_error": True}, ["3"]),
        ({"has_error": False}, ["2", "1"]),
        ({"model": "gpt-4o"}, ["2"]),
        ({"service": "shop-api"}, ["3", "2", "1"]),
        ({"service": "nope"}, []),
        ({"min_ms": 900, "max_ms": 1500}, ["1"]),
        ({"min_cost": 0.001}, ["2"]),
        ({"max_cost": 0.0001}, ["3"]),
        ({"attributes": {"customer.tier": "gold"}}, ["2"]),
        ({"attributes": {"customer.tier": "silver"}}, []),
        ({"text": "<SCRIPT>"}, ["1"]),  # span content, case-insensitive
        ({"text": "where is my parcel"}, ["2"]),  # a log record's body
        ({"text": "100%_"}, []),  # no LIKE wildcards
        ({"session_id": "s1"}, ["2", "1"]),
        ({"prompt_version": "v9"}, []),
    ],
)
def test_filters(seeded: Analytics, kw: dict, expected: list[str]) -> None:
    assert ids(seeded, DAY.with_(**kw)) == expected
    assert count_traces(seeded, DAY.with_(**kw)) == len(expected)


def test_window_and_project_isolation(seeded: Analytics) -> None:
    assert ids(seeded, TraceFilters(project="shop")) == ["3", "2", "1", "4"]  # all time, trace 0 is id 4
    assert ids(seeded, TraceFilters(since=T0 + timedelta(seconds=30), until=T0 + timedelta(minutes=2))) == ["2"]
    assert ids(seeded, TraceFilters(project="other")) == ["9"]
    assert ids(seeded, TraceFilters(project="other", text="hello")) == []


def test_sort_and_page(seeded: Analytics) -> None:
    assert ids(seeded, DAY, Page(sort="duration_ms")) == ["2", "1", "3"]
    assert ids(seeded, DAY, Page(sort="cost_usd", descending=False)) == ["3", "1", "2"]
    first = list_traces(seeded, DAY, Page(limit=2))
    second = list_traces(seeded, DAY, Page(limit=2, offset=2))
    assert first.has_next and not second.has_next and first.total == second.total == 3
    assert [*first.rows["trace_id"], *second.rows["trace_id"]] == list(list_traces(seeded, DAY).rows["trace_id"])
    with pytest.raises(ValueError):
        Page(sort="name; DROP TABLE x")


def test_detail(seeded: Analytics) -> None:
    d = trace_detail(seeded, trace_hex(1), "shop", T0)
    assert d is not None
    assert [(s["name"], s["depth"]) for s in d.spans] == [
        ("answer", 0), ("retrieval kb", 1), ("chat gpt-4o-mini", 1), ("validation no_pii", 1)
    ]  # fmt: skip
    assert [s["offset_ms"] for s in d.spans] == [0, 10, 200, 900]
    llm = d.spans[2]
    assert llm["cost_usd"] == pytest.approx(0.0002) and not llm["unpriced"]
    assert [(m["role"], m["content"]) for m in d.conversation] == [("user", MARKUP), ("assistant", "hi there")]
    assert [(x["id"], x["score"], x["rank"]) for x in d.documents] == [("doc-a", 0.9, 0), ("doc-b", 0.3, 1)]
    assert d.validations == [{"span_id": d.spans[3]["span_id"], "name": "no_pii", "passed": True, "errors": []}]
    s = d.summary()
    assert (s["outcome"], s["duration_ms"], s["spans"], s["llm_calls"]) == ("success", 1000.0, 4, 1)
    assert (s["input_tokens"], s["output_tokens"], s["session_id"]) == (100, 50, "s1")
    assert s["cost_usd"] == pytest.approx(0.0002)


def test_detail_logs_markers_and_validation_errors(seeded: Analytics) -> None:
    d = trace_detail(seeded, trace_hex(2))  # no project, no time hint: looks everywhere
    assert d is not None and d.project == "shop"
    assert [(m["role"], m["content"]) for m in d.conversation] == [
        ("system", "You are a shop assistant."),
        ("user", "Where is my parcel?"),
        ("assistant", '{"answer": 42}'),
    ]
    assert [len(s["logs"]) for s in d.spans] == [0, 3, 0, 0, 0]
    assert d.validations[0]["passed"] is False and d.validations[0]["errors"] == ["field 'answer' missing"]
    assert [(m["kind"], m["reason"], m["to"]) for m in d.markers] == [
        ("fallback", "invalid json", "template"),
        ("escalation", "still invalid", "human"),
    ]
    assert d.summary()["outcome"] == "failure"


def test_detail_misses(seeded: Analytics) -> None:
    assert trace_detail(seeded, "f" * 32) is None
    assert trace_detail(seeded, trace_hex(1), project="other") is None
    assert trace_detail(seeded, trace_hex(1), "shop", T0 + timedelta(days=30)) is not None  # wrong hint: full scan


def test_sessions(seeded: Analytics) -> None:
    s = list_sessions(seeded, DAY)
    assert s.select("session_id", "traces", "failures", "errors").rows() == [("s2", 1, 1, 1), ("s1", 2, 1, 0)]
    assert s.filter(s["session_id"] == "s1")["cost_usd"][0] == pytest.approx(0.0026)
    assert [t[-1:] for t in session_traces(seeded, DAY, "s1")["trace_id"]] == ["1", "2"]  # in order


def test_facets(seeded: Analytics) -> None:
    f = facets(seeded, DAY)
    assert f["services"] == ["shop-api"] and f["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert f["task_names"] == ["answer"]


def test_overview_figures_and_change(seeded: Analytics) -> None:
    day = Filters(since=T0.replace(hour=0), until=T0.replace(hour=0) + timedelta(days=1), project="shop")
    o = overview(seeded, day)
    c, p = o.current, o.previous
    assert (c["tasks"], c["successful_tasks"], c["failed_tasks"]) == (3, 1, 2)
    assert c["success_rate"] == pytest.approx(1 / 3)
    assert c["task_cost_usd"] == pytest.approx(0.00261)
    assert c["cost_per_successful_task"] == pytest.approx(0.00261)
    assert (c["p50_ms"], c["p95_ms"]) == (pytest.approx(1000), pytest.approx(2800))
    assert c["error_rate"] == pytest.approx(1 / 3)
    assert c["validation_failure_rate"] == pytest.approx(0.5)
    assert (p["tasks"], p["success_rate"], p["p50_ms"]) == (1, 1.0, 2000)
    assert o.change("tasks") == 2 and o.change("success_rate") == pytest.approx(-2 / 3)
    assert o.bucket == "hour" and o.trend["tasks"].to_list() == [3]
    assert overview(seeded, Filters(project="other")).current["tasks"] == 1


def test_overview_agrees_with_the_analytics_reports(seeded: Analytics) -> None:
    """One task per trace here, so the overview's figures are the tasks/validation reports'."""
    from spanlake.analytics.reports import tasks, validation

    day = Filters(since=T0.replace(hour=0), until=T0.replace(hour=0) + timedelta(days=1), project="shop")
    o = overview(seeded, day).current
    report = tasks(seeded, day).to_dicts()[0]
    for k in ("tasks", "successful_tasks", "failed_tasks", "success_rate", "task_cost_usd", "cost_per_successful_task",
              "p50_ms", "p95_ms"):  # fmt: skip
        assert o[k] == pytest.approx(report[k]), k
    checks = validation(seeded, day, ()).to_dicts()[0]
    assert o["validation_failure_rate"] == pytest.approx(checks["failure_rate"])


def test_long_windows_read_whole_days(seeded: Analytics) -> None:
    """Windows over 72 h list day partitions instead of hours; same traces either way."""
    ten_days = TraceFilters(since=T0 - timedelta(days=5), until=T0 + timedelta(days=5), project="shop")
    assert ids(seeded, ten_days) == ["3", "2", "1", "4"]
    assert ids(seeded, ten_days.with_(since=T0 - timedelta(hours=30), until=T0 + timedelta(hours=30))) == [
        "3", "2", "1", "4"
    ]  # fmt: skip
