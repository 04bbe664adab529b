"""The start-time sort without aggregate filters reads spans without de-duplicating them
(relation.DEDUP_FREE); it must list exactly what the de-duplicated path lists, on traces that
cross hour partitions (early and late spans) and spans written twice, at every page."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import count_traces, list_traces
from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.analytics.traces.seed import T0, _span, trace_hex
from tests.factories import make_request

# trace n: (root start, other spans' offsets from the root in minutes)
TRACES = {
    1: (T0 + timedelta(minutes=55), [2, 10]),  # runs on into the next hour
    2: (T0 + timedelta(minutes=62), [-4]),  # a child whose clock runs early: starts in the older hour
    3: (T0 + timedelta(minutes=30), [1]),
    4: (T0 + timedelta(minutes=119), [3, 70]),  # late span two hours on
    5: (T0 - timedelta(minutes=3), [4]),  # starts before the window (within SKEW): not listed
    6: (T0 + timedelta(minutes=61), [0]),
    7: (T0 + timedelta(minutes=30), [-1]),  # same root start as trace 3, earlier child
}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    root: Path = tmp_path_factory.mktemp("cross") / "data"
    dd = DataDir(root).create()
    writer = LakeWriter(dd)
    spans = []
    for n, (start, offsets) in TRACES.items():
        spans.append(_span(n, n * 10, None, start, 1000, "root"))
        spans += [
            _span(n, n * 10 + i + 1, n * 10, start + timedelta(minutes=m), 10, "step") for i, m in enumerate(offsets)
        ]
    resource = {"service.name": "svc", "spanlake.project": "p"}
    for _ in range(2):  # every span written twice (a retried export)
        batch = decode_spans(make_request(spans, resource), ingested_at_ns=time.time_ns())
        writer.write_batch(SPANS, batch, uuid.uuid4().hex)
    return Analytics(root)


F = TraceFilters(since=T0, until=T0 + timedelta(hours=3), project="p")


@pytest.mark.parametrize("descending", [True, False])
def test_pages_match_the_deduplicated_path(lake: Analytics, descending: bool) -> None:
    expected_order = sorted((s + timedelta(minutes=min(0, *o)), trace_hex(n)) for n, (s, o) in TRACES.items() if n != 5)
    if descending:
        expected_order.reverse()
    expected = [t for _, t in expected_order]
    dedup = F.with_(min_ms=0)  # a duration filter needs de-duplicated spans: the other path
    assert count_traces(lake, F) == count_traces(lake, dedup) == len(expected)
    seen = []
    for offset in range(0, 8, 2):
        page = Page(descending=descending, limit=2, offset=offset)
        fast, slow = list_traces(lake, F, page), list_traces(lake, dedup, page)
        assert fast.rows.equals(slow.rows)
        assert (fast.total, fast.has_next) == (slow.total, slow.has_next) == (len(expected), offset + 2 < len(expected))
        seen += fast.rows["trace_id"].to_list()
    assert seen == expected
    row = list_traces(lake, F, Page(limit=50)).rows.filter(trace_id=trace_hex(2)).to_dicts()[0]
    assert row["start_time"] == TRACES[2][0] - timedelta(minutes=4) and row["span_count"] == 2
