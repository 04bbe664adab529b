"""One model call, three spans (storage.call_pairs): a framework's LLM span over a client
instrumentation's over a client's own count once, with the numbers of the span nearest the wire,
and the pairing is skipped where a window holds one layer only.

The data and what each trace counts: tests/analytics/call_pair_data.py, `build_layers`.
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
from spanlake.analytics.spans import Filters, SpanSource, pairing_needed
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.reader import Lake
from tests.analytics.call_pair_data import (
    LAYERED_COUNTED,
    LAYERED_DUPLICATES,
    ONE_LAYER,
    build_layers,
    cost,
    sid_hex,
)
from tests.analytics.helpers import T0, tid
from tests.analytics.test_rollup_reports import agree


@pytest.fixture
def layered(tmp_path: Path) -> Analytics:
    build_layers(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1.0, output_mtok=2.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


def test_layers_pair_as_documented(layered: Analytics) -> None:
    lake = Lake(layered.lake.data_dir)
    rows = lake.query("SELECT project, trace_id, span_id, duplicate_of FROM duplicate_calls").to_pylist()
    assert {r["project"] for r in rows} == {"default"}
    got = {(r["trace_id"], r["span_id"]): r["duplicate_of"] for r in rows}
    assert got == {(tid(t).hex(), sid_hex(s)): sid_hex(c) for (t, s), c in LAYERED_DUPLICATES.items()}


def test_layers_count_each_call_once(layered: Analytics) -> None:
    traces = {r["trace_id"]: r for r in layered.sql("SELECT * FROM traces").to_dicts()}
    listed = {r["trace_id"]: r for r in list_traces(layered, TraceFilters(), Page(limit=50)).rows.to_dicts()}
    for t, (calls, inp, out) in LAYERED_COUNTED.items():
        trace_id = tid(t).hex()
        assert (traces[trace_id]["llm_calls"], traces[trace_id]["input_tokens"], traces[trace_id]["output_tokens"]) == (
            calls,
            inp,
            out,
        ), t
        row = listed[trace_id]
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (calls, inp, out), t
        assert row["cost_usd"] == pytest.approx(cost(inp, out), rel=1e-12), t
        detail = trace_detail(layered, trace_id)
        assert detail is not None
        s = detail.summary()
        assert (s["llm_calls"], s["input_tokens"], s["output_tokens"]) == (calls, inp, out), t
        for sp in detail.spans:
            key = (t, int(sp["span_id"], 16))
            assert sp["duplicate_of"] == (sid_hex(LAYERED_DUPLICATES[key]) if key in LAYERED_DUPLICATES else None), key
    by_model = {r["model"]: r for r in call_totals(layered, Filters(project="default"), ["model"]).to_dicts()}
    # acme-1: every counted call but trace 4's framework call (acme-2) and trace 7's failed one
    assert {m: (r["calls"], r["input_tokens"], r["output_tokens"]) for m, r in by_model.items()} == {
        "acme-1": (12, 4420, 446),
        "acme-2": (1, 50, 5),
    }
    (tasks,) = run_report(layered, "tasks", Filters(project="default"), source="raw")[0].to_dicts()
    assert tasks["tasks"] == 7 and tasks["task_cost_usd"] == pytest.approx(cost(4470, 451))
    llm = {r["level"]: r for r in latency(layered, Filters(project="default")).to_dicts()}["llm"]
    # 14 counted calls; trace 7's second openai call repeats the failed first one (both under the task)
    assert (llm["count"], llm["repeats"], llm["retries"]) == (14, 1, 1)


def test_pairing_is_skipped_where_one_layer_is_found(layered: Analytics) -> None:
    """The cheap skip: no pairing where the window holds LLM spans of one layer (or of none), and
    the figures are the same as if it had run."""
    con = Lake(layered.lake.data_dir).connect()
    assert pairing_needed(con, SpanSource(Filters(project="default")))
    for project, (calls, inp, out) in ONE_LAYER.items():
        assert not pairing_needed(con, SpanSource(Filters(project=project))), project
        (totals,) = call_totals(layered, Filters(project=project)).to_dicts()
        assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (calls, inp, out), project
        (v,) = layered.sql(f"SELECT * FROM traces WHERE project = '{project}'").to_dicts()
        assert (v["llm_calls"], v["input_tokens"]) == (calls, inp), project
    # A window holding trace 1's root, chain and framework LLM span (at 0, 10 and 20 ms) but not the
    # openai span (30 ms): pairing reads the spans starting up to PAIR_LOOKAHEAD after it too.
    assert pairing_needed(con, SpanSource(Filters(since=T0, until=T0 + timedelta(milliseconds=25))))
    assert not pairing_needed(con, SpanSource(Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))))


def test_layered_rollups_equal_raw(layered: Analytics) -> None:
    result = rollups.run(layered)
    assert result.hours_seen == 1
    f = Filters(project="default", since=T0, until=T0 + timedelta(hours=1))
    for name, group in (("cost", ["model"]), ("cost", []), ("tasks", []), ("latency", ["model"])):
        rolled, source = run_report(layered, name, f, group, source="rollups")
        raw, _ = run_report(layered, name, f, group, source="raw")
        assert source == "rollups"
        agree(rolled, raw, [c for c in rolled.columns if c in ("level", *group)])
