"""Datasets from the dashboard, with Streamlit's AppTest against the seeded lake
(tests/analytics/traces/seed.py) and a real collector on a free loopback port: add to a dataset
from the trace view, the Datasets page (agreement, create, add matching, freeze, downloads), saved
filters through the API; the tests read the changes back from the lake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.dataset_export import FORMATS, export_bytes
from spanlake.dashboard import writes
from spanlake.storage.datasets import members, read_examples, read_version
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import Live
from tests.dashboard.labelling_helpers import HOSTILE, frame, post_labels


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
    post_labels(live, [(1, "bob", "pass"), (2, "bob", "fail"), (3, "bob", "pass")])
    post_labels(live, [(1, "ana", "pass"), (2, "ana", "fail"), (3, "ana", "fail")])
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


def test_datasets_and_queue_need_a_project(open_app: Callable[..., AppTest]) -> None:
    for page in ("datasets", "queue"):
        at = open_app(page, project="All projects")
        assert at.info[0].value.startswith("Pick a project in the sidebar"), page
