"""The frameworks observed over client instrumentations (storage.call_pairs): model names that
differ, LlamaIndex's later siblings, wrappers and helpers, the most complete span counting; each
call counts once, and the hourly rollups equal the raw figures.

The data and what each trace counts: tests/analytics/call_pair_data.py, `build_frameworks`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, SpanSource, pairing_needed
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.reader import Lake
from tests.analytics.call_pair_data import (
    FRAMEWORK_COUNTED,
    FRAMEWORK_DUPLICATES,
    build_frameworks,
    cached_cost,
    sid_hex,
)
from tests.analytics.helpers import T0, tid
from tests.analytics.test_rollup_reports import agree


@pytest.fixture
def frameworks(tmp_path: Path) -> Analytics:
    build_frameworks(tmp_path)
    price = PriceOverride(model="*acme-*", input_mtok=1.0, output_mtok=2.0, cache_read_mtok=0.5)
    return Analytics(tmp_path, prices=PriceBook(overrides=[price], use_database=False))


def test_frameworks_pair_as_documented(frameworks: Analytics) -> None:
    rows = Lake(frameworks.lake.data_dir).query("SELECT trace_id, span_id, duplicate_of FROM duplicate_calls")
    got = {(r["trace_id"], r["span_id"]): r["duplicate_of"] for r in rows.to_pylist()}
    want = {(tid(t).hex(), sid_hex(s)): sid_hex(c) for (t, s), c in FRAMEWORK_DUPLICATES.items()}
    assert got == {**want, (tid(21).hex(), sid_hex(2)): sid_hex(3)}  # llama_only: predict repeats chat


def test_frameworks_count_each_call_once_with_the_most_complete_numbers(frameworks: Analytics) -> None:
    traces = {r["trace_id"]: r for r in frameworks.sql("SELECT * FROM traces").to_dicts()}
    listed = {r["trace_id"]: r for r in list_traces(frameworks, TraceFilters(), Page(limit=50)).rows.to_dicts()}
    for t, (calls, inp, out, cached) in FRAMEWORK_COUNTED.items():
        trace_id = tid(t).hex()
        v = traces[trace_id]
        assert (v["llm_calls"], v["input_tokens"], v["output_tokens"]) == (calls, inp, out), t
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (calls, inp, out), t
        assert row["cost_usd"] == pytest.approx(cached_cost(inp, out, cached), rel=1e-12), t
        detail = trace_detail(frameworks, trace_id)
        assert detail is not None
        s = detail.summary()
        assert (s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (calls, inp, out), t
        assert s["cost_usd"] == pytest.approx(cached_cost(inp, out, cached), rel=1e-12), t
        for sp in detail.spans:
            key = (t, int(sp["span_id"], 16))
            want = sid_hex(FRAMEWORK_DUPLICATES[key]) if key in FRAMEWORK_DUPLICATES else None
            assert sp["duplicate_of"] == want, key
    (totals,) = call_totals(frameworks, Filters(project="default")).to_dicts()
    # billable calls: the 25 counted but trace 10's failed call and trace 11's stream without usage
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"], totals["cache_read_tokens"]) == (
        23,
        8150,
        815,
        40 + 40 + 80 + 30 + 80,
    )
    assert totals["cost_usd"] == pytest.approx(cached_cost(8150, 815, 270), rel=1e-12)
    # Hour 11 alone: only trace 17's openai-v2 span starts there, and it repeats Pydantic AI's (hour 10)
    (h11,) = call_totals(frameworks, Filters(project="default", since=T0 + timedelta(hours=1))).to_dicts()
    assert (h11["calls"], h11["input_tokens"]) == (0, 0)
    (h10,) = call_totals(frameworks, Filters(project="default", until=T0 + timedelta(hours=1))).to_dicts()
    assert (h10["calls"], h10["input_tokens"], h10["cache_read_tokens"]) == (23, 8150, 270)


def test_method_tracing_framework_alone_is_paired(frameworks: Analytics) -> None:
    """One layer, but LlamaIndex's: its wrappers repeat their calls, so the pairing is not skipped."""
    con = Lake(frameworks.lake.data_dir).connect()
    assert pairing_needed(con, SpanSource(Filters(project="llama_only")))
    (totals,) = call_totals(frameworks, Filters(project="llama_only")).to_dicts()
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (1, 100, 10)
    (v,) = frameworks.sql("SELECT * FROM traces WHERE project = 'llama_only'").to_dicts()
    assert (v["llm_calls"], v["input_tokens"]) == (1, 100)


def test_framework_rollups_equal_raw(frameworks: Analytics) -> None:
    """Hourly rollups count trace 17's call once, in hour 10, though Pydantic AI's span that counts
    starts there and openai-v2's in hour 11."""
    assert rollups.run(frameworks).hours_seen == 2
    h10, h11 = (T0, T0 + timedelta(hours=1)), (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    for since, until in (h10, h11, (T0, T0 + timedelta(hours=2))):
        f = Filters(project="default", since=since, until=until)
        for name, group in (("cost", ["model"]), ("cost", []), ("latency", ["model"])):
            rolled, source = run_report(frameworks, name, f, group, source="rollups")
            raw, _ = run_report(frameworks, name, f, group, source="raw")
            assert source == "rollups"
            if name == "cost":  # hour 11: no task starts, so the rollup has no task columns
                raw = raw.select(rolled.columns)
            agree(rolled, raw, [c for c in rolled.columns if c in ("level", *group)])
    both = Filters(project="default", since=T0, until=T0 + timedelta(hours=2))
    (c,) = run_report(frameworks, "cost", both, source="rollups")[0].to_dicts()
    assert (c["calls"], c["input_tokens"], c["cache_read_tokens"]) == (23, 8150, 270)
