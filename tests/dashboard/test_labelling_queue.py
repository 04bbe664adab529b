"""The labelling queue, with Streamlit's AppTest against the seeded lake
(tests/analytics/traces/seed.py) and a real collector on a free loopback port: a reviewer's queue,
an evaluation rule's, a saved filter's, and two reviewers labelling one trace at once."""

from __future__ import annotations

import json
import threading

import httpx
import polars as pl

from spanlake.analytics.labels import current_labels, label_history
from spanlake.dashboard import writes
from spanlake.dashboard.labelling import filters_to_saved, saved_to_filters
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import Live, open_at
from tests.dashboard.labelling_helpers import fill_label, frame, post_labels


def test_queue_labels_fifty_style(live: Live) -> None:
    post_labels(live, [(2, "bob", "pass")])  # another reviewer's label does not take trace 2 out of ana's queue
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
    post_labels(live, [(3, "ana", "pass")])
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
