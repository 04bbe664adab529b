"""Labelling, datasets, the labelling queue and the compare view, with Streamlit's AppTest against
the seeded lake (tests/analytics/traces/seed.py) and a real collector on a free loopback port:
labels and dataset changes go through its API, and the tests read them back from the lake."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.dataset_export import FORMATS, export_bytes
from spanlake.analytics.labels import current_labels, label_history
from spanlake.dashboard import writes
from spanlake.dashboard.labelling import filters_to_saved, saved_to_filters
from spanlake.storage.datasets import members, read_examples, read_version
from spanlake.storage.label_schema import LabelSchemas
from spanlake.storage.reader import Lake
from tests.analytics.traces.seed import trace_hex, write_lake
from tests.conftest import RunningCollector, start_collector
from tests.dashboard.conftest import APP, DAY, TIMEOUT_S
from tests.dashboard.test_pages import elements

SIGNIN_OFF = {"SPANLAKE_DASHBOARD_AUTH": "off"}  # these tests run without sign-in (dashboard/auth.py)
HOSTILE = "<script>window.__xss = 1</script><img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"
CONTROL = "tab\there\x00nul\x07bell\x1b[31mred\x1b[0m\r\nline\u202eevil"


@dataclass
class Live:
    """The seeded lake served by a real collector; `open` runs the app on it as a reviewer."""

    collector: RunningCollector
    data_dir: Path
    lake: Lake

    def open(self, page: str | None = None, reviewer: str | None = "ana", **query: Any) -> AppTest:
        return open_at(page, reviewer, **query)

    def flush(self) -> None:
        self.collector.flush()


def open_at(page: str | None, reviewer: str | None, project: str = "shop", **query: Any) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    at.sidebar.selectbox(key="global_project").set_value(project)
    at.sidebar.selectbox(key="global_range").set_value("Custom").run()
    at.sidebar.date_input(key="global_from").set_value(DAY)
    at.sidebar.date_input(key="global_to").set_value(DAY)
    if reviewer:
        at.sidebar.text_input(key="global_reviewer").set_value(reviewer)
    at.run()
    if page is not None:
        at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(autouse=True)
def _signin_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SIGNIN_OFF.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    root = tmp_path / "data"
    write_lake(root)
    running, stop = start_collector(root)
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(root))
    monkeypatch.setenv(writes.URL_ENV, running.http)
    try:
        yield Live(running, root, Lake(root))
    finally:
        stop()


def fill_label(at: AppTest, key: str, **fields: Any) -> AppTest:
    """Set the label form `key`'s fields (verdict, mode, score, note, expected) and press Save."""
    for name, value in fields.items():
        widget = {"verdict": at.radio, "mode": at.selectbox, "score": at.number_input}.get(name, at.text_area)
        widget(key=f"{key}_{name}").set_value(value)
    return at.button(key=f"{key}_save").click().run()


def frame(at: AppTest, column: str) -> pl.DataFrame:
    """The first table on the page with this column."""
    return pl.from_pandas(next(d.value for d in at.dataframe if column in d.value.columns))


def history(at: AppTest) -> pl.DataFrame:
    return frame(at, "target")


# --- trace view -------------------------------------------------------------------------------


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


# --- add to dataset, the Datasets page ----------------------------------------------------------


def test_add_to_dataset_from_the_trace_view(live: Live) -> None:
    at = live.open("trace", trace=trace_hex(2))
    assert at.selectbox(key="trace_dataset_pick").options == ["New dataset…"]
    at.text_input(key="trace_dataset_new").set_value("json-failures")
    next(b for b in at.button if b.proto.label == "Add to dataset").click().run()
    assert [s.value for s in at.success] == ["Added the trace to dataset json\\-failures."]
    items = members(live.lake, "shop", "json-failures")
    assert items.select("trace_id", "span_id", "added_by").rows() == [(trace_hex(2), None, "ana")]

    # A span of another trace, into the dataset that now exists.
    at = live.open("trace", trace=trace_hex(1))
    assert at.selectbox(key="trace_dataset_pick").options == ["json-failures", "New dataset…"]
    at.selectbox(key="trace_label_target").set_value(at.selectbox(key="trace_label_target").options[3]).run()
    next(b for b in at.button if b.proto.label == "Add to dataset").click().run()
    items = members(live.lake, "shop", "json-failures")
    assert items.select("trace_id", "span_id").rows() == [(trace_hex(2), None), (trace_hex(1), "000000000000000c")]


def _post_labels(live: Live, labels: list[tuple[int, str, str]]) -> None:
    """(trace number, author, verdict) labels through the API, as other reviewers would."""
    for n, author, verdict in labels:
        writes.post_label("shop", trace_hex(n), None, author, {"verdict": verdict})
    live.flush()


def test_saving_a_filter_goes_through_the_api(
    open_app: Callable[..., AppTest], seeded_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard writes no state file itself: with no spanlake to send it to, a filter is not saved."""
    monkeypatch.setenv(writes.URL_ENV, "http://127.0.0.1:9")  # nothing listens here
    at = open_app("queue")
    at.sidebar.text_input(key="global_reviewer").set_value("ana").run()
    at.text_input(key="queue_save_name").set_value("never saved")
    next(b for b in at.button if b.proto.label == "Save filter").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("Not saved: cannot reach spanlake at http://127.0.0.1:9")
    assert not (seeded_dir / "config" / "saved_filters" / "shop" / "never saved.json").exists()


def test_datasets_page(live: Live) -> None:
    # bob first, so ana's labels are the latest (a trace's outcome follows its latest reviewer label)
    _post_labels(live, [(1, "bob", "pass"), (2, "bob", "fail"), (3, "bob", "pass")])
    _post_labels(live, [(1, "ana", "pass"), (2, "ana", "fail"), (3, "ana", "fail")])
    at = live.open("datasets")
    assert at.title[0].value == "Datasets" and at.caption[0].value == "0 dataset(s) in project shop"
    agree = frame(at, "percent agreement")
    verdict = agree.filter(pl.col("field") == "verdict").row(0, named=True)
    assert (verdict["items"], verdict["reviewers"], verdict["ratings"]) == (3, 2, 6)
    assert verdict["percent agreement"] == "66.7%" and verdict["cohen kappa"] == 0.4

    at.text_input(key="datasets_new_name").set_value("failures")
    at.text_input(key="datasets_new_description").set_value(HOSTILE)
    next(b for b in at.button if b.proto.label == "Create").click().run()
    listing = frame(at, "latest_version")
    assert listing.select("dataset", "description", "examples", "created_by").rows() == [
        ("failures", HOSTILE, 0, "ana")
    ]
    assert at.selectbox(key="datasets_pick").value == "failures"

    # The Traces page's filter (outcome = failure) picks traces 3 and 2; only ana's "fail" verdicts count too.
    traces = live.open("traces")
    traces.selectbox(key="traces_outcome").set_value("failure").run()
    traces.switch_page("app_pages/datasets.py").run()
    assert traces.selectbox(key="datasets_pick").value == "failures"
    traces.selectbox(key="datasets_add_verdict").set_value("fail").run()
    button = traces.button(key="datasets_add_matching")
    assert button.proto.label == "Add 2 to failures"  # trace 2 (both said fail), trace 3 (ana said fail)
    button.click().run()
    assert not traces.error, [e.value for e in traces.error]
    items = frame(traces, "added_by")
    assert items["trace_id"].to_list() == [trace_hex(2), trace_hex(3)]  # oldest trace first
    assert items["open"].to_list()[0] == f"trace?trace={trace_hex(2)}&project=shop"
    events = members(live.lake, "shop", "failures")
    assert events["metadata"].to_list()[0] and "outcome" in str(events["metadata"].to_list()[0])

    traces.button(key="datasets_freeze").click().run()
    assert [s.value for s in traces.success] == ["Froze new version v1 (2 examples)."]
    buttons = {b.key: b for b in traces.get("download_button")}
    assert sorted(buttons) == sorted(f"datasets_dl_{f}" for f in FORMATS)
    v = read_version(live.lake.data_dir, "shop", "failures", 1)
    assert v is not None and v.manifest["examples"] == 2
    from spanlake.dashboard import data

    for fmt in FORMATS:  # what each button downloads: the frozen version in that format
        got = data.export(str(live.data_dir), "shop", "failures", 1, fmt, None)
        assert got == export_bytes(read_examples(live.lake.data_dir, v), v.manifest, fmt), fmt
    assert b'"expected_output"' in data.export(str(live.data_dir), "shop", "failures", 1, "jsonl", None)

    traces.button(key="datasets_freeze").click().run()  # nothing changed since
    assert [s.value for s in traces.success] == ["Nothing changed since v1 (2 examples)."]


# --- the labelling queue ----------------------------------------------------------------------


def test_queue_labels_fifty_style(live: Live) -> None:
    _post_labels(live, [(2, "bob", "pass")])  # another reviewer's label does not take trace 2 out of ana's queue
    at = live.open("queue")
    assert at.title[0].value == "Labelling queue"
    assert at.get("progress")[0].proto.text == "0 of 3 labelled by ana"
    assert at.subheader[0].value == "handle"  # newest first, like the Traces page
    shortcuts = {b.proto.label: b.proto.shortcut for b in at.button if b.proto.shortcut}
    assert shortcuts == {"Save label": "alt+enter", "Pass & next": "alt+p", "Fail & next": "alt+f", "Skip": "alt+s"}
    up_next = frame(at, "models")
    assert up_next["trace_id"].to_list() == [trace_hex(2), trace_hex(1)]

    at.button(key=f"queue_form_{trace_hex(3)}_pass").click().run()  # Alt+P: pass & next
    assert not at.error, [e.value for e in at.error]
    assert at.get("progress")[0].proto.text == "1 of 3 labelled by ana"
    assert at.subheader[0].value == "answer" and trace_hex(2) in at.caption[1].value
    assert [s.value for s in at.success] == ["Saved pass on handle."]
    assert [c.name for c in at.chat_message] == ["system", "user", "assistant"]

    at.button(key="queue_skip").click().run()  # Alt+S: skip trace 2 for now
    assert trace_hex(1) in at.caption[1].value
    at.selectbox(key=f"queue_form_{trace_hex(1)}_mode").set_value("hallucination")
    at.button(key=f"queue_form_{trace_hex(1)}_fail").click().run()  # Alt+F: fail & next
    assert at.get("progress")[0].proto.text == "2 of 3 labelled by ana"
    assert [i.value for i in at.info] == ["1 skipped trace(s) left."]
    at.button(key="queue_unskip").click().run()
    fill_label(at, f"queue_form_{trace_hex(2)}", verdict="fail", note="invalid JSON twice")
    assert at.get("progress")[0].proto.text == "3 of 3 labelled by ana"
    assert [s.value for s in at.success][-1] == "Nothing left to label in this queue."

    mine = current_labels(live.lake, project="shop", source="human").filter(pl.col("author") == "ana")
    assert sorted(mine.select("trace_id", "verdict", "failure_mode").rows()) == [
        (trace_hex(1), "fail", "hallucination"),
        (trace_hex(2), "fail", None),
        (trace_hex(3), "pass", None),
    ]
    assert {json.dumps(json.loads(m), sort_keys=True) for m in mine["metadata"]} == {
        '{"queue": "The Traces page\'s filter", "via": "dashboard-queue"}'
    }


def test_queue_of_an_evaluation_rule(live: Live) -> None:
    """A rule's queue_when sends traces to the dataset queue.<rule>; the queue offers it as a source."""
    http = live.collector.http
    created = httpx.post(f"{http}/api/v1/datasets", json={"name": "queue.sample", "project": "shop"})
    assert created.status_code in (200, 201), created.text
    items = [{"trace_id": trace_hex(1)}, {"trace_id": trace_hex(3)}]
    added = httpx.post(f"{http}/api/v1/datasets/queue.sample/items", json={"project": "shop", "items": items})
    assert added.status_code == 200, added.text
    _post_labels(live, [(3, "ana", "pass")])
    at = live.open("queue")
    at.selectbox(key="queue_source").set_value("Sent by rule sample").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.get("progress")[0].proto.text == "1 of 2 labelled by ana"
    assert trace_hex(1) in at.caption[1].value and r"queue\.sample" in at.caption[0].value  # markdown-escaped


def test_queue_from_a_saved_filter(live: Live) -> None:
    at = live.open("traces")
    at.selectbox(key="traces_outcome").set_value("failure").run()
    at.switch_page("app_pages/queue.py").run()
    assert at.get("progress")[0].proto.text == "0 of 2 labelled by ana"  # the Traces page's filter
    at.text_input(key="queue_save_name").set_value("failed today")
    next(b for b in at.button if b.proto.label == "Save filter").click().run()
    assert at.selectbox(key="queue_source").value == "failed today"
    saved = (live.data_dir / "config" / "saved_filters" / "shop" / "failed today.json").read_bytes()
    assert b'"outcome": "failure"' in saved and b'"range_s": 86400.0' in saved

    # Another reviewer, another session: the saved filter is there; its window is the last 24 h, which holds no
    # seeded trace (they are from 2025).
    other = live.open("queue", reviewer="bob")
    other.selectbox(key="queue_source").set_value("failed today").run()
    assert other.get("progress")[0].proto.text == "0 of 0 labelled by bob"


def test_saved_filter_round_trip() -> None:
    from datetime import UTC, datetime, timedelta

    from spanlake.analytics.traces.filters import TraceFilters

    now = datetime(2025, 6, 3, tzinfo=UTC)
    f = TraceFilters(since=now - timedelta(days=1), until=now, project="shop", outcome="failure", min_ms=10.0,
                     attributes={"customer.tier": "gold"}, text="refund")  # fmt: skip
    doc, range_s = filters_to_saved(f)
    assert range_s == 86400.0
    assert saved_to_filters({"filters": doc, "range_s": range_s}, "shop", now) == f


# --- two reviewers at once ----------------------------------------------------------------------


def test_two_reviewers_labelling_at_once_lose_nothing(live: Live) -> None:
    """Two dashboard sessions label the same trace at the same moment, while an API client labels it
    too: every event is kept, and each reviewer's current label is their own latest."""
    rounds = 4
    errors: list[BaseException] = []
    start = threading.Barrier(3)
    # AppTest sets and clears one process-wide mock Streamlit Runtime around each script run, so
    # two runs at once in one process break each other ("Runtime hasn't been created!"): the two
    # sessions take turns running their scripts, while the API client writes alongside them.
    one_run_at_a_time = threading.Lock()

    def dashboard_session(name: str) -> None:
        try:
            with one_run_at_a_time:
                at = open_at("trace", name, trace=trace_hex(2))
            start.wait(30)
            for i in range(rounds):
                with one_run_at_a_time:
                    fill_label(at, "trace_label_trace", verdict="fail" if i % 2 else "pass", note=f"{name} {i}")
                assert not at.error, [e.value for e in at.error]
        except BaseException as e:
            errors.append(e)

    def api_client() -> None:
        try:
            start.wait(30)
            for i in range(rounds * 5):
                writes.post_label("shop", trace_hex(2), None, "judge-bot", {"score": float(i)})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=dashboard_session, args=(n,)) for n in ("ana", "bob")]
    threads.append(threading.Thread(target=api_client))
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    live.flush()
    events = label_history(live.lake, trace_hex(2), "shop")
    assert events.height == 2 * rounds + rounds * 5
    for name in ("ana", "bob"):
        assert sorted(events.filter(pl.col("author") == name)["comment"].to_list()) == [
            f"{name} {i}" for i in range(rounds)
        ]
    current = current_labels(live.lake, project="shop", trace_ids=[trace_hex(2)])
    latest = {r["author"]: r for r in current.to_dicts()}
    assert latest["ana"]["comment"] == f"ana {rounds - 1}" and latest["bob"]["comment"] == f"bob {rounds - 1}"
    assert latest["judge-bot"]["score"] == float(rounds * 5 - 1)


# --- the compare view -------------------------------------------------------------------------


def test_compare_view(open_app: Callable[..., AppTest]) -> None:
    at = open_app("reports")
    at.selectbox(key="reports_name").set_value("compare").run()
    at.selectbox(key="reports_compare_by").set_value("model").run()
    assert at.selectbox(key="reports_compare_a_model").options == ["gpt-4o", "gpt-4o-mini"]
    assert not at.exception
    df = frame(at, "model")
    assert df["model"].to_list() == ["gpt-4o", "gpt-4o-mini", "b - a"]
    assert df["tasks"].to_list() == [1, 2, 1]
    assert df["success_rate"].to_list() == [0.0, 0.5, 0.5]
    assert df["validation_failure_rate"].to_list() == [1.0, 0.0, -1.0]
    assert any(e.type == "vega_lite_chart" for e in elements(at._tree))
    (dl,) = at.get("download_button")
    assert dl.proto.label == "Download CSV" and dl.proto.url.endswith(".csv")

    at.selectbox(key="reports_compare_by").set_value("prompt_version").run()  # none in the seed: typed values
    at.text_input(key="reports_compare_a_prompt_version").set_value("v1")
    at.text_input(key="reports_compare_b_prompt_version").set_value("v2").run()
    assert [i.value for i in at.info] == ["No tasks with prompt_version v1 or v2 in this window."]


def test_datasets_and_queue_need_a_project(open_app: Callable[..., AppTest]) -> None:
    for page in ("datasets", "queue"):
        at = open_app(page, project="All projects")
        assert at.info[0].value.startswith("Pick a project in the sidebar"), page


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
