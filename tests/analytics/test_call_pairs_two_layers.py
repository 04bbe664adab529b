"""One model call, two spans (storage.call_pairs): a client library's own span and an
instrumentation's LLM span of the same call count once, with the client's numbers, in every
figure — the traces view, the trace list (both its lean sort and its rows), the trace detail,
the cost, tasks and latency reports — and the hourly rollups equal the raw figures.

The data and what each trace counts: tests/analytics/call_pair_data.py, `build`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.latency import latency
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.reader import Lake
from tests.analytics.call_pair_data import (
    COUNTED,
    DUPLICATES,
    build,
    cost,
    sid_hex,
)
from tests.analytics.helpers import T0, tid
from tests.analytics.test_rollup_reports import agree

ALL = Filters(since=T0, until=T0 + timedelta(hours=2))
HOUR_10 = Filters(since=T0, until=T0 + timedelta(hours=1))


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1.0, output_mtok=2.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


def test_duplicates_are_the_documented_pairs(an: Analytics) -> None:
    rows = Lake(an.lake.data_dir).query("SELECT trace_id, span_id, duplicate_of FROM duplicate_calls").to_pylist()
    got = {(r["trace_id"], r["span_id"]): r["duplicate_of"] for r in rows}
    assert got == {(tid(t).hex(), sid_hex(s)): sid_hex(c) for (t, s), c in DUPLICATES.items()}


def test_every_trace_figure_counts_each_call_once(an: Analytics) -> None:
    traces = {r["trace_id"]: r for r in an.sql("SELECT * FROM traces").to_dicts()}
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(), Page(limit=50)).rows.to_dicts()}
    for t, (calls, inp, out) in COUNTED.items():
        trace_id = tid(t).hex()
        v = traces[trace_id]
        assert (v["llm_calls"], v["input_tokens"], v["output_tokens"], v["total_tokens"]) == (
            calls,
            inp,
            out,
            inp + out,
        )
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (calls, inp, out), t
        assert row["cost_usd"] == pytest.approx(cost(inp, out), rel=1e-12), t
        detail = trace_detail(an, trace_id)
        assert detail is not None
        s = detail.summary()
        assert (s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (calls, inp, out), t
        assert s["cost_usd"] == pytest.approx(cost(inp, out), rel=1e-12), t
        for sp in detail.spans:  # both spans of a call stay in the trace; the duplicate costs nothing
            key = (t, int(sp["span_id"], 16))
            want = sid_hex(DUPLICATES[key]) if key in DUPLICATES else None
            assert sp["duplicate_of"] == want, key
            if want is not None:
                assert sp["cost_usd"] is None and (sp["input_tokens"] is not None or key == (4, 2))
    # Sorted by tokens (the trace list's lean relation pairs the calls too): counted twice, trace 1
    # (2201 tokens) would come before trace 6 (1155), and trace 8 (1320) before trace 3 (770).
    page = list_traces(an, TraceFilters(), Page(sort="total_tokens", limit=50)).rows
    assert [int(x, 16) for x in page["trace_id"]] == [2, 6, 1, 5, 3, 8, 4, 7]
    page = list_traces(an, TraceFilters(), Page(sort="llm_calls", limit=3)).rows
    assert sorted(page["llm_calls"].to_list()) == [2, 2, 2]


def test_cost_and_tasks_count_the_clients_numbers(an: Analytics) -> None:
    by_model = {r["model"]: r for r in call_totals(an, ALL, ["model"]).to_dicts()}
    # acme-1: every counted call but trace 7's instrumentation call (and trace 4's failed one,
    # which has no usage: no billable call)
    assert {m: (r["calls"], r["input_tokens"], r["output_tokens"]) for m, r in by_model.items()} == {
        "acme-1": (10, 6710, 671),
        "acme-2": (1, 50, 5),
    }
    assert by_model["acme-1"]["cost_usd"] == pytest.approx(cost(6710, 671))
    assert by_model["acme-2"]["cost_usd"] == pytest.approx(cost(50, 5))
    (tasks,) = run_report(an, "tasks", ALL, source="raw")[0].to_dicts()
    assert tasks["tasks"] == 8 and tasks["task_cost_usd"] == pytest.approx(cost(6760, 676))
    task_rows = {r["task_name"]: r for r in run_report(an, "task-list", ALL, source="raw", limit=10)[0].to_dicts()}
    for t, (calls, inp, out) in COUNTED.items():
        r = task_rows[f"t{t}"]
        # llm_calls of a task are its billable calls (with usage): trace 4's failed call has none
        assert (r["llm_calls"], r["input_tokens"], r["output_tokens"]) == (calls - (t == 4), inp, out), t
        assert r["cost_usd"] == pytest.approx(cost(inp, out)), t
    # Hour 10 alone: trace 8's instrumented call starts there, its client span at 11:00:00.0005,
    # so it counts in hour 11 only.
    (h10,) = call_totals(an, HOUR_10).to_dicts()
    assert (h10["calls"], h10["input_tokens"], h10["output_tokens"]) == (10, 6160, 616)


def test_latency_counts_the_client_calls_and_finds_the_retry(an: Analytics) -> None:
    llm = {r["level"]: r for r in latency(an, ALL).to_dicts()}["llm"]
    # 12 calls; trace 4's second client call repeats the failed first one: the client spans sit
    # under their instrumented calls, which are siblings under the task
    assert (llm["count"], llm["repeats"], llm["retries"]) == (12, 1, 1)
    assert llm["error_rate"] == pytest.approx(1 / 12)


def test_rollups_equal_raw(an: Analytics) -> None:
    result = rollups.run(an)
    assert result.hours_seen == 2
    hour_11 = Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    for f in (ALL, HOUR_10, hour_11):
        for name, group in (("cost", ["model"]), ("cost", []), ("tasks", []), ("latency", ["model"])):
            if f is hour_11 and name == "tasks":  # no task starts in hour 11 (the rollup answers no row)
                continue
            rolled, source = run_report(an, name, f, group, source="rollups")
            raw, _ = run_report(an, name, f, group, source="raw")
            assert source == "rollups"
            if f is hour_11 and name == "cost":  # ... nor task columns: compare the calls
                raw = raw.select(rolled.columns)
            agree(rolled, raw, [c for c in rolled.columns if c in ("level", *group)])
    (c,) = run_report(an, "cost", ALL, source="rollups")[0].to_dicts()
    assert (c["calls"], c["input_tokens"], c["output_tokens"]) == (11, 6760, 676)
    assert c["cost_usd"] == pytest.approx(cost(6760, 676)) and c["task_cost_usd"] == pytest.approx(cost(6760, 676))
    (h10,) = run_report(an, "cost", HOUR_10, source="rollups")[0].to_dicts()
    assert (h10["calls"], h10["input_tokens"]) == (10, 6160)
