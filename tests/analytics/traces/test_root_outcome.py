"""A trace with no marked task span: its root is the task, and an outcome the app recorded on
the root is the trace's outcome in the list, the trace view, the overview and the tasks report."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spanlake.analytics.reports import tasks
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.overview import overview
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.analytics.traces.seed import _span, trace_hex
from tests.factories import make_request

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_outcome_recorded_on_an_unmarked_root(tmp_path: Path) -> None:
    spans = [
        # trace 1: root records success, no span is marked as a task
        _span(1, 10, None, T0, 100, "handle", attrs={"spanlake.task.outcome": "success"}),
        _span(1, 11, 10, T0, 50, "child"),
        # trace 2: root records failure with a reason
        _span(2, 20, None, T0 + timedelta(minutes=1), 100, "handle",
              attrs={"spanlake.task.outcome": "failure", "spanlake.task.outcome_reason": "no answer"}),
        # trace 3: a marked task below an unmarked root with its own (ignored) outcome
        _span(3, 30, None, T0 + timedelta(minutes=2), 100, "handle", attrs={"spanlake.task.outcome": "failure"}),
        _span(3, 31, 30, T0 + timedelta(minutes=2), 80, "task",
              attrs={"spanlake.span.category": "task", "spanlake.task.name": "answer",
                     "spanlake.task.outcome": "success"}),
    ]  # fmt: skip
    dd = DataDir(tmp_path / "data").create()
    batch = decode_spans(make_request(spans, {"service.name": "svc", "spanlake.project": "p"}), time.time_ns())
    LakeWriter(dd).write_batch(SPANS, batch, uuid.uuid4().hex)
    an = Analytics(dd.root)
    window = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1), project="p")

    listed = list_traces(an, TraceFilters(since=window.since, until=window.until, project="p"))
    rows = {r["trace_id"]: r for r in listed.rows.to_dicts()}
    assert {t: r["outcome"] for t, r in rows.items()} == {
        trace_hex(1): "success",
        trace_hex(2): "failure",
        trace_hex(3): "success",
    }
    assert rows[trace_hex(2)]["outcome_reason"] == "no answer"
    for n, expected in ((1, "success"), (2, "failure"), (3, "success")):
        detail = trace_detail(an, trace_hex(n), project="p")
        assert detail is not None and detail.summary()["outcome"] == expected
    report = tasks(an, window).to_dicts()[0]
    assert (report["tasks"], report["successful_tasks"], report["failed_tasks"]) == (3, 2, 1)
    o = overview(an, window).current
    assert (o["tasks"], o["successful_tasks"], o["failed_tasks"]) == (3, 2, 1)
