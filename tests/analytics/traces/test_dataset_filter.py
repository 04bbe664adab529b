"""The trace list's dataset filter: the traces that are current members of a dataset (how an
evaluation rule's `queue_when` hands traces to the labelling queue: dataset `queue.<rule>`)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from spanlake.analytics.label_queue import labelling_queue
from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.collector.decode import decode_dataset_events
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import DATASET_EVENTS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, human_event, span, tid, unix_ns, write, write_labels

QUEUE = "queue.sample-answers"


def event(op: str, trace: int | None, minute: int, span_id: str | None = None, dataset: str = QUEUE) -> dict[str, Any]:
    return {"event_id": uuid.uuid4().hex, "dataset": dataset, "op": op, "author": "rule:sample-answers",
            "trace_id": tid(trace).hex() if trace else None, "span_id": span_id, "project": "default",
            "created_at_unix_nano": unix_ns(T0 + timedelta(minutes=minute))}  # fmt: skip


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    d = tmp_path_factory.mktemp("lake")
    write(d, [s for t in range(1, 7) for s in (span(t, 1, at_ms=t * 1000), span(t, 2, 1, at_ms=t * 1000 + 1))])
    events = [
        event("create", None, 0),
        event("add", 1, 1),
        event("add", 2, 1),
        event("add", 3, 2, span_id="0000000000000002"),  # a span of trace 3: the trace is in the queue
        event("add", 4, 2),
        event("remove", 4, 3),  # added, then removed: not a member
        event("add", 5, 3, dataset="queue.other-rule"),
    ]
    batch = decode_dataset_events(orjson.dumps(events), time.time_ns(), None)
    LakeWriter(DataDir(d).create()).write_batch(DATASET_EVENTS, batch, uuid.uuid4().hex)
    write_labels(d, [human_event(2, T0 + timedelta(minutes=5), "pass", author="ana")])
    return Analytics(d)


def test_members_of_the_dataset_only(an: Analytics) -> None:
    f = TraceFilters(project="default", dataset=QUEUE)  # no window: a queue is all time
    rows = list_traces(an, f, Page(sort="start_time", descending=False)).rows
    assert [int(t, 16) for t in rows["trace_id"].to_list()] == [1, 2, 3]
    window = f.with_(since=T0 + timedelta(seconds=1.5), until=T0 + timedelta(hours=1))
    assert [int(t, 16) for t in list_traces(an, window, Page()).rows["trace_id"].to_list()] == [3, 2]
    assert list_traces(an, f.with_(dataset="queue.nobody"), Page()).rows.height == 0


def test_the_labelling_queue_of_a_rule(an: Analytics) -> None:
    q = labelling_queue(an, TraceFilters(project="default", dataset=QUEUE), author="ana")
    assert (q.total, q.done) == (3, 1)  # ana labelled trace 2
    assert sorted(int(t, 16) for t in q.next["trace_id"].to_list()) == [1, 3]


def test_a_dataset_filter_needs_a_project() -> None:
    with pytest.raises(ValueError, match="needs a project"):
        TraceFilters(dataset=QUEUE)


def test_unknown_or_bad_names(an: Analytics, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        list_traces(an, TraceFilters(project="default", dataset="bad name/with slash"), Page())
