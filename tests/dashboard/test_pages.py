"""Every page, run with Streamlit's AppTest against the seeded lake: the figures and rows shown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.analytics.traces.seed import MARKUP, trace_hex

Open = Callable[..., AppTest]


def elements(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from elements(child)


def metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    """label → (value, delta) of the first metric with each label."""
    out: dict[str, tuple[str, str]] = {}
    for m in at.metric:
        out.setdefault(m.label, (m.value, m.delta))
    return out


def trace_rows(at: AppTest, index: int = 0) -> list[tuple[Any, ...]]:
    df = at.dataframe[index].value
    return list(zip(df["trace_id"].str[-1:], df["outcome"], df["duration_ms"], strict=True))


def test_traces_table(open_app: Open) -> None:
    at = open_app()
    assert at.title[0].value == "Traces"
    assert at.caption[0].value.startswith("3 traces")
    df = at.dataframe[0].value
    assert list(df["trace_id"].str[-1:]) == ["3", "2", "1"]
    assert list(df["name"]) == ["handle", "answer", "answer"]
    assert list(df["outcome"]) == ["failure", "failure", "success"]
    assert list(df["duration_ms"]) == [500.0, 3000.0, 1000.0]
    assert list(df["cost_usd"].round(6)) == [0.00001, 0.0024, 0.0002]
    assert list(df["models"]) == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert "judge" not in df.columns  # no judge has labelled the seed: no judge column
    assert list(df["open"])[2] == f"trace?trace={trace_hex(1)}&project=shop"
    assert at.button(key="traces_next").proto.disabled  # one page only


@pytest.mark.parametrize(
    ("widget", "key", "value", "expected"),
    [
        ("selectbox", "traces_outcome", "failure", ["3", "2"]),
        ("selectbox", "traces_errors", "With errors", ["3"]),
        ("selectbox", "traces_model", "gpt-4o", ["2"]),
        ("text_input", "traces_text", "parcel", ["2"]),
        ("text_input", "traces_text", "<script>", ["1"]),
        ("text_area", "traces_attrs", "customer.tier = gold", ["2"]),
        ("number_input", "traces_min_ms", 2000.0, ["2"]),
        ("number_input", "traces_max_cost", 0.0001, ["3"]),
        ("selectbox", "traces_sort", "duration_ms", ["2", "1", "3"]),
        ("text_input", "traces_judge", "fail", []),  # no judge has labelled the seed
        ("text_input", "traces_judge", "maybe", ["3", "2", "1"]),  # not a judge filter: ignored, with a warning
    ],
)
def test_traces_filters_and_sort(open_app: Open, widget: str, key: str, value: Any, expected: list[str]) -> None:
    at = open_app()
    getattr(at, widget)(key=key).set_value(value).run()
    assert not at.exception
    if value == "maybe":
        assert "Judge filter ignored" in at.warning[0].value
    assert at.caption[0].value.startswith(f"{len(expected)} traces")
    if expected:
        assert [r[0] for r in trace_rows(at)] == expected
    else:
        assert not at.dataframe


def test_traces_ascending_and_other_project(open_app: Open) -> None:
    at = open_app()
    at.toggle(key="traces_desc").set_value(False).run()
    assert [r[0] for r in trace_rows(at)] == ["1", "2", "3"]
    other = open_app(project="other")
    assert [r[0] for r in trace_rows(other)] == ["9"]


def test_trace_view(open_app: Open) -> None:
    at = open_app("trace", trace=trace_hex(1), project="shop")
    assert at.title[0].value == "answer"
    shown = metrics(at)
    assert shown["Latency"][0] == "1.00 s" and shown["Spans"][0] == "4" and shown["LLM calls"][0] == "1"
    assert shown["Tokens in / out"][0] == "100 / 50" and shown["Cost"][0] == "$0.0002" and shown["Errors"][0] == "0"
    assert any(e.type == "vega_lite_chart" for e in elements(at._tree))  # the timeline
    tabs = [t.label for t in at.tabs]
    assert tabs == ["Conversation", "Spans", "Retrieved documents", "Validations & markers", "Raw"]
    conv = at.tabs[0]
    assert [c.name for c in conv.chat_message] == ["user", "assistant"]
    assert conv.chat_message[0].text[0].value == MARKUP  # as plain text
    assert conv.chat_message[1].text[0].value == "hi there"
    spans = at.tabs[1].dataframe[0].value
    assert [s.strip() for s in spans["span"]] == ["answer", "retrieval kb", "chat gpt-4o-mini", "validation no_pii"]
    assert list(spans["input_tokens"].fillna(-1)) == [-1, -1, 100, -1]
    docs = at.tabs[2].dataframe[0].value
    assert list(zip(docs["id"], docs["score"], strict=True)) == [("doc-a", 0.9), ("doc-b", 0.3)]
    checks = at.tabs[3].dataframe[0].value
    assert list(zip(checks["name"], checks["passed"], strict=True)) == [("no_pii", True)]


def test_content_is_never_html(open_app: Open) -> None:
    """Markup in prompts reaches the page only as text: no element may render HTML."""
    at = open_app("trace", trace=trace_hex(1))
    found = False
    for e in elements(at._tree):
        assert e.type not in ("html", "iframe"), e.type
        proto = getattr(e, "proto", None)
        if proto is not None and hasattr(proto, "allow_html"):
            assert not proto.allow_html
        value = getattr(e, "value", None)
        if isinstance(value, str) and "<script>" in value:
            assert e.type in ("text", "code", "json"), e.type  # never markdown
            found = True
    assert found


def test_trace_view_markers_logs_and_misses(open_app: Open) -> None:
    at = open_app("trace", trace=trace_hex(2))
    shown = metrics(at)
    assert shown["Latency"][0] == "3.00 s" and shown["Cost"][0] == "$0.0024"
    assert [c.name for c in at.tabs[0].chat_message] == ["system", "user", "assistant"]  # from log events
    checks = at.tabs[3].dataframe
    assert list(checks[0].value["errors"]) == ["field 'answer' missing"]
    markers = checks[1].value
    assert list(zip(markers["kind"], markers["to"], strict=True)) == [("fallback", "template"), ("escalation", "human")]
    missing = open_app("trace", trace="0" * 31 + "f")
    assert missing.warning and "No trace" in missing.warning[0].value
    empty = open_app("trace")
    assert empty.info and "Open a trace" in empty.info[0].value


def test_sessions(open_app: Open) -> None:
    at = open_app("sessions")
    sessions = at.dataframe[0].value
    assert list(zip(sessions["session_id"], sessions["traces"], sessions["failures"], strict=True)) == [
        ("s2", 1, 1),
        ("s1", 2, 1),
    ]
    at = open_app("sessions", session="s1")
    assert at.subheader[0].value == "Session s1"
    assert [r[0] for r in trace_rows(at, 1)] == ["1", "2"]  # in the order they started
    at.toggle(key="sessions_transcript").set_value(True).run()
    roles = [c.name for c in at.chat_message]
    assert roles == ["user", "assistant", "system", "user", "assistant"]


def test_overview(open_app: Open) -> None:
    at = open_app("overview")
    shown = metrics(at)
    assert shown["Tasks"] == ("3", "+2")
    assert shown["Success rate"] == ("33.3%", "-66.7 pp")
    assert shown["Cost"] == ("$0.00261", "+0.0024")
    assert shown["Cost per successful task"][0] == "$0.00261"
    assert shown["p50 latency"] == ("1.00 s", "-1,000 ms")
    assert shown["p95 latency"] == ("2.80 s", "+800 ms")
    assert shown["Error rate"] == ("33.3%", "+33.3 pp")
    assert shown["Validation failure rate"][0] == "50.0%"
    trend = at.expander[0].dataframe[0].value
    assert list(trend["tasks"]) == [3]
    at.selectbox(key="overview_model").set_value("gpt-4o").run()
    assert metrics(at)["Tasks"][0] == "1"


@pytest.mark.parametrize(("report", "column", "rows"), [("cost", "model", 2), ("tasks", "task_name", 2)])
def test_reports(open_app: Open, report: str, column: str, rows: int) -> None:
    at = open_app("reports")
    at.selectbox(key="reports_name").set_value(report).run()
    assert not at.exception
    df = at.dataframe[0].value
    assert len(df) == rows and column in df.columns
    assert any(e.type == "download_button" for e in elements(at._tree))
