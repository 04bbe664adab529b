"""Labelling from the trace view, with Streamlit's AppTest against the seeded lake
(tests/analytics/traces/seed.py) and a real collector on a free loopback port: a trace and a span,
the label schema, who may label, hostile text, document relevance; labels go through the
collector's API, and the tests read them back from the lake."""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.labels import current_labels, label_history
from spanlake.dashboard import writes
from spanlake.storage.label_schema import LabelSchemas
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import Live
from tests.dashboard.labelling_helpers import CONTROL, HOSTILE, fill_label, history
from tests.dashboard.test_pages import elements


def test_label_a_trace_and_a_span(live: Live) -> None:
    at = live.open("trace", trace=trace_hex(2), project="shop")
    assert [s.value for s in at.subheader][-2:] == ["Labels", "Add to dataset"]
    targets = at.selectbox(key="trace_label_target").options
    assert targets[0] == "The whole trace" and len(targets) == 6
    assert targets[2] == f"span 2. chat gpt-4o ({'00000000000000' + '15'})"
    modes = at.selectbox(key="trace_label_trace_mode").options
    assert modes == ["(none)", "hallucination", "retrieval_miss", "wrong_tool", "format_error", "policy_violation",
                     "too_slow", "too_expensive"]  # fmt: skip

    fill_label(at, "trace_label_trace", verdict="fail", mode="format_error", score=2.0, note="no JSON",
               expected='{"answer": 42}')  # fmt: skip
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Label saved by ana (")
    rows = live.lake.query("SELECT * FROM labels").to_pylist()
    assert len(rows) == 1
    r = rows[0]
    assert (r["trace_id"], r["span_id"], r["source"], r["author"], r["project"]) == (
        trace_hex(2),
        None,
        "human",
        "ana",
        "shop",
    )
    assert (r["verdict"], r["failure_mode"], r["score"], r["comment"], r["expected_output"]) == (
        "fail", "format_error", 2.0, "no JSON", '{"answer": 42}')  # fmt: skip
    assert json.loads(r["metadata"]) == {"via": "dashboard"}
    shown = history(at)
    assert shown.select("target", "author", "verdict", "failure_mode", "score", "comment").rows() == [
        ("trace", "ana", "fail", "format_error", 2.0, "no JSON")
    ]

    # A span of it: pick it, label it; the history shows both, newest first.
    at.selectbox(key="trace_label_target").set_value(targets[2]).run()
    span = "0000000000000015"
    fill_label(at, f"trace_label_{span}", verdict="pass", note="the model call itself was fine")
    assert not at.error, [e.value for e in at.error]
    shown = history(at)
    assert shown.select("target", "verdict", "comment").rows() == [
        (f"span chat gpt-4o ({span})", "pass", "the model call itself was fine"),
        ("trace", "fail", "no JSON"),
    ]
    current = current_labels(live.lake, project="shop", trace_ids=[trace_hex(2)])
    assert set(current["span_id"].to_list()) == {span, None}

    # A correction is a new event: the history keeps both, the current label is the latest.
    at.selectbox(key="trace_label_target").set_value(targets[0]).run()
    fill_label(at, "trace_label_trace", verdict="pass", mode="(none)", note="on second thought")
    assert len(label_history(live.lake, trace_hex(2), "shop")) == 3
    now = current_labels(live.lake, project="shop", trace_ids=[trace_hex(2)]).filter(pl.col("span_id").is_null())
    assert now.select("verdict", "comment").rows() == [("pass", "on second thought")]


def test_label_schema_is_enforced_before_sending(live: Live) -> None:
    LabelSchemas(live.data_dir).update(
        "shop", "lead", add_failure_modes=["unsafe_advice"], score_min=1.0, score_max=5.0, required=["verdict"]
    )
    at = live.open("trace", trace=trace_hex(1))
    assert at.selectbox(key="trace_label_trace_mode").options[-1] == "unsafe_advice"
    assert at.number_input(key="trace_label_trace_score").label == "Score (1 to 5)"
    fill_label(at, "trace_label_trace", note="no verdict given")
    assert [e.value for e in at.error] == ["Not saved: the project requires verdict on a reviewer's label"]
    fill_label(at, "trace_label_trace", verdict="fail", mode="unsafe_advice", score=5.0)
    assert not at.error
    live.flush()
    rows = live.lake.query("SELECT verdict, failure_mode, score, comment FROM labels").to_pylist()
    assert rows == [{"verdict": "fail", "failure_mode": "unsafe_advice", "score": 5.0, "comment": "no verdict given"}]


def test_labelling_needs_a_reviewer_and_a_reachable_collector(open_app: Callable[..., AppTest], monkeypatch) -> None:
    at = open_app("trace", trace=trace_hex(1))
    assert "Type your name under Reviewer in the sidebar to label." in [i.value for i in at.info]
    assert not [b for b in at.button if b.key == "trace_label_trace_save"]

    # Nothing listens on this port: the label is refused with the reason, and the form keeps what was typed.
    monkeypatch.setenv(writes.URL_ENV, "http://127.0.0.1:9")
    at.sidebar.text_input(key="global_reviewer").set_value("ana").run()
    fill_label(at, "trace_label_trace", verdict="pass", note="keep me")
    assert len(at.error) == 1 and at.error[0].value.startswith("Not saved: cannot reach spanlake at http://127.0.0.1:9")
    assert at.text_area(key="trace_label_trace_note").value == "keep me"
    assert not at.success


def test_signed_in_viewer_cannot_label(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from spanlake.dashboard import context

    monkeypatch.setattr(context, "current_user", lambda: context.User("vic", "viewer", False))
    at = live.open("trace", reviewer=None, trace=trace_hex(1))
    assert "vic is a viewer: labelling needs the labeller or admin role." in [i.value for i in at.info]
    assert not [b for b in at.button if (b.key or "").startswith("trace_label")]


def test_signed_in_labeller_labels_as_themselves_in_their_projects(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from spanlake.dashboard import context

    monkeypatch.setattr(context, "current_user", lambda: context.User("lea", "labeller", True, ("shop",)))
    at = live.open("trace", reviewer=None, trace=trace_hex(1))
    assert not [t for t in at.sidebar.text_input if t.key == context.REVIEWER_KEY]  # the name comes from sign-in
    fill_label(at, "trace_label_trace", verdict="pass")
    assert at.success[0].value.startswith("Label saved by lea (")
    assert live.lake.query("SELECT author FROM labels").to_pylist() == [{"author": "lea"}]

    monkeypatch.setattr(context, "current_user", lambda: context.User("lea", "labeller", True, ("other",)))
    at = live.open("trace", reviewer=None, trace=trace_hex(1))
    assert "lea may not label project shop." in [i.value for i in at.info]


def test_hostile_labels_are_stored_and_shown_as_text(live: Live) -> None:
    huge = ("x" * 1000 + "\n") * 60  # 60 KB note (the API takes up to 64 KB)
    expected = HOSTILE + CONTROL + "y" * 500_000
    at = live.open("trace", trace=trace_hex(1))
    fill_label(at, "trace_label_trace", verdict="fail", note=HOSTILE + CONTROL, expected=expected)
    assert not at.error, [e.value for e in at.error]
    at2 = live.open("trace", trace=trace_hex(3))
    fill_label(at2, "trace_label_trace", note=huge)
    assert not at2.error, [e.value for e in at2.error]

    stored = {r["trace_id"]: r for r in live.lake.query("SELECT * FROM labels").to_pylist()}
    assert stored[trace_hex(1)]["comment"] == HOSTILE + CONTROL  # byte for byte, NUL and escapes included
    assert stored[trace_hex(1)]["expected_output"] == expected
    assert stored[trace_hex(3)]["comment"] == huge

    at = live.open("trace", trace=trace_hex(1))
    shown = history(at)
    assert shown["comment"].to_list() == [HOSTILE + CONTROL]
    assert shown["expected_output"].to_list() == [expected]
    for e in elements(at._tree):
        assert e.type not in ("html", "iframe"), e.type
        proto = getattr(e, "proto", None)
        if proto is not None and hasattr(proto, "allow_html"):
            assert not proto.allow_html
        value = getattr(e, "value", None)
        if isinstance(value, str) and "window.__xss" in value:
            assert e.type in ("text", "code", "json", "text_area"), e.type


def test_judge_document_relevance_from_the_trace_view(live: Live) -> None:
    from datetime import UTC, datetime

    from spanlake.analytics.pricing import PriceBook
    from spanlake.analytics.reports import retrieval
    from spanlake.analytics.runner import Analytics
    from spanlake.analytics.spans import Filters

    at = live.open("trace", trace=trace_hex(1), project="shop")
    span = "000000000000000b"  # the retrieval span: doc-a, doc-b
    at.multiselect(key=f"relevance_{span}_relevant").set_value(["doc-b"])
    at.button(key=f"relevance_{span}_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith("Relevance saved by ana (")
    (row,) = live.lake.query("SELECT span_id, author, verdict, metadata FROM labels").to_pylist()
    assert (row["span_id"], row["author"], row["verdict"]) == (span, "ana", None)
    assert json.loads(row["metadata"]) == {"relevant": {"doc-a": False, "doc-b": True}, "via": "dashboard"}
    an = Analytics(live.data_dir, prices=PriceBook(use_database=False))
    window = Filters(since=datetime(2025, 5, 30, tzinfo=UTC), until=datetime(2025, 6, 5, tzinfo=UTC), project="shop")
    kb = retrieval(an, window, k=1).filter(data_source="kb").to_dicts()[0]
    assert (kb["judged_queries"], kb["hit_rate_at_k"], kb["precision_at_k"]) == (1, 0.0, 0.0)  # doc-b ranks 2nd
