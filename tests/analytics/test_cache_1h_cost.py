"""1-hour cache writes are priced at their own rate in every figure that has a cost: the span
relation every report reads (the trace detail, the trace list, the cost and tasks reports),
the hourly rollups (equal to raw) and budgets.

Designed data, T0 = 10:00 UTC. Model `claude-acme` of provider `anthropic`, priced by an
override at $3 / M input, $0.30 cache read, $3.75 cache write (1.25x input: Anthropic's
5-minute rate), $15 output; its 1-hour cache-write rate is derived, 2x input: $6
(analytics.price_database). Each trace is a task with one call made through the anthropic
client (its own span: the only one with the 1-hour share). Per call, input (cache included),
cache reads, cache writes (of which 1-hour), output → cost by hand, in millionths of a USD:

1. 1-hour writes only, 2000 / 0 / 1000 (1000) / 100: 1000*3 + 1000*6 + 100*15 = 10500
2. 5-minute writes only, 2000 / 0 / 1000 (0) / 100: 1000*3 + 1000*3.75 + 100*15 = 8250
3. both, 3000 / 500 / 2000 (800) / 200: 500*3 + 500*0.3 + 1200*3.75 + 800*6 + 200*15 = 13950
4. none, 1000 / 0 / 0 (0) / 100: 1000*3 + 100*15 = 4500
5. call 1 traced twice: an instrumentation's span (OpenInference's scope, the sum of the
   writes alone) is the client span's parent; the call counts once, with the client's
   numbers: 10500 (the instrumentation's span would cost 8250)
6. call 1 in a file written before schema version 5 (no 1-hour column): its writes cost
   the cache-write rate, as they did then: 8250

Calls 1-3 start in hour 10, 4-6 in hour 11.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spanlake.analytics.budgets.definition import budget_from_dict
from spanlake.analytics.budgets.measure import measure
from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.layout import DEFAULT_PROJECT
from tests.analytics.helpers import T0, span, tid, write
from tests.analytics.test_rollup_reports import agree
from tests.storage.test_schema_steps import as_version_4

MODEL = "claude-acme"
CLIENT = "com.anthropic.sdk.python"
OI = "openinference.instrumentation.anthropic"
MIN = 60_000  # ms
H = 60 * MIN
ONE_HOUR = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
FIVE_MIN = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"

# trace → (input, cache read, cache write, of which 1-hour (None: not sent), output), as the client sends it
CALLS = {
    1: (2000, 0, 1000, 1000, 100),
    2: (2000, 0, 1000, 0, 100),
    3: (3000, 500, 2000, 800, 200),
    4: (1000, 0, 0, 0, 100),
    5: (2000, 0, 1000, 1000, 100),
    6: (2000, 0, 1000, 1000, 100),
}
COST = {1: 10500e-6, 2: 8250e-6, 3: 13950e-6, 4: 4500e-6, 5: 10500e-6, 6: 8250e-6}
STORED_1H = {1: 1000, 2: 0, 3: 800, 4: 0, 5: 1000, 6: None}  # the client span's column
HOUR_10, HOUR_11 = (1, 2, 3), (4, 5, 6)
ALL = Filters(since=T0, until=T0 + timedelta(hours=2))
WINDOWS = {
    "all": (ALL, (*HOUR_10, *HOUR_11)),
    "hour 10": (Filters(since=T0, until=T0 + timedelta(hours=1)), HOUR_10),
    "hour 11": (Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)), HOUR_11),
}


def call(inp: int, read: int, write: int, w1h: int | None, out: int) -> dict[str, Any]:
    """The attributes of a chat call, with the client's 5-minute / 1-hour split when `w1h` is sent."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.cache_read.input_tokens": read,
        "gen_ai.usage.cache_write.input_tokens": write,
    }
    if w1h is not None:
        attrs |= {ONE_HOUR: w1h, FIVE_MIN: write - w1h}
    return attrs


def at(trace: int) -> float:
    return (trace - 1) // 3 * H + (trace - 1) % 3 * MIN


def build(d: Path) -> None:
    write(d, [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{"spanlake.task.name": f"t{t}"}) for t in CALLS])
    inp, read, cw, _, out = CALLS[5]
    write(
        d, [span(5, 2, 1, at_ms=at(5) + 10, ms=500, name="messages.create", **call(inp, read, cw, None, out))], scope=OI
    )
    parents = {5: 2}
    clients = [
        span(t, 3, parents.get(t, 1), at_ms=at(t) + 11, ms=400, name="anthropic.messages.create", **call(*c))
        for t, c in CALLS.items()
        if t != 6
    ]
    write(d, clients, scope=CLIENT)
    before = set(d.rglob("*.parquet"))
    write(
        d, [span(6, 3, 1, at_ms=at(6) + 11, ms=400, name="anthropic.messages.create", **call(*CALLS[6]))], scope=CLIENT
    )
    (old,) = set(d.rglob("*.parquet")) - before
    as_version_4(old)


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    d = tmp_path_factory.mktemp("lake")
    build(d)
    override = PriceOverride(
        model=MODEL, provider="anthropic", input_mtok=3.0, output_mtok=15.0, cache_read_mtok=0.3, cache_write_mtok=3.75
    )
    return Analytics(d, prices=PriceBook(overrides=[override], use_database=False))


def test_each_call_is_priced_by_hand_in_the_trace_detail_and_list(an: Analytics) -> None:
    listed = {r["trace_id"]: r for r in list_traces(an, TraceFilters(), Page(limit=50)).rows.to_dicts()}
    for t, want in COST.items():
        detail = trace_detail(an, tid(t).hex())
        assert detail is not None
        assert detail.summary()["cost_usd"] == pytest.approx(want, rel=1e-12), t
        assert listed[tid(t).hex()]["cost_usd"] == pytest.approx(want, rel=1e-12), t
        by_id = {int(s["span_id"], 16): s for s in detail.spans}
        client = by_id[3]
        assert (client["cache_write_tokens"], client["cache_write_1h_tokens"]) == (CALLS[t][2], STORED_1H[t]), t
        assert client["cost_usd"] == pytest.approx(want, rel=1e-12), t
        if t == 5:  # the instrumentation's span: no split, a duplicate, no cost
            assert (by_id[2]["cache_write_1h_tokens"], by_id[2]["duplicate_of"], by_id[2]["cost_usd"]) == (
                None,
                client["span_id"],
                None,
            )


@pytest.mark.parametrize("window", list(WINDOWS))
def test_cost_and_tasks_reports(an: Analytics, window: str) -> None:
    f, traces = WINDOWS[window]
    want = sum(COST[t] for t in traces)
    (totals,) = call_totals(an, f).to_dicts()
    assert (totals["calls"], totals["cache_write_tokens"]) == (len(traces), sum(CALLS[t][2] for t in traces))
    assert totals["cost_usd"] == pytest.approx(want, rel=1e-12)
    (tasks,) = run_report(an, "tasks", f, source="raw")[0].to_dicts()
    assert (tasks["tasks"], tasks["task_cost_usd"]) == (len(traces), pytest.approx(want, rel=1e-12))


def test_rollups_and_budgets_equal_raw(an: Analytics) -> None:
    spend = budget_from_dict({"name": "spend", "metric": "spend", "window": "2h", "warning": 1e9}, DEFAULT_PROJECT)
    raw_spend = measure(an, spend, T0 + timedelta(hours=2)).figure
    assert (raw_spend.source, raw_spend.value) == ("raw", pytest.approx(sum(COST.values()), rel=1e-12))
    assert rollups.run(an).hours_seen == 2
    for window, (f, traces) in WINDOWS.items():
        for name in ("cost", "tasks") if window == "all" else ("cost",):
            rolled, source = run_report(an, name, f, source="rollups")
            raw, _ = run_report(an, name, f, source="raw")
            assert source == "rollups"
            agree(rolled, raw, [])
            assert rolled["cost_usd" if name == "cost" else "task_cost_usd"].sum() == pytest.approx(
                sum(COST[t] for t in traces), rel=1e-12
            )
    rolled_spend = measure(an, spend, T0 + timedelta(hours=2)).figure
    assert (rolled_spend.source, rolled_spend.value) == ("rollups", pytest.approx(raw_spend.value, rel=1e-12))
