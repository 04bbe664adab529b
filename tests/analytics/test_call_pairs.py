"""One model call, two spans (storage.call_pairs): a client library's own span and an
instrumentation's LLM span of the same call count once, with the client's numbers, in every
figure — the traces view, the trace list (both its lean sort and its rows), the trace detail,
the cost, tasks and latency reports — and the hourly rollups equal the raw figures.

Designed data, T0 = 10:00 UTC, every model priced $1 per million input and $2 per million
output tokens (cost = (in + 2 out) / 1e6). Instrumentation spans, client spans and roots
arrive in different files, as batches of different exporters would. Per trace (besides its
task root), and what counts (calls, input, output tokens):

1. OpenInference-like `messages.create` 1000/101 → its child, the client's span 1000/100: 1, 1000, 100.
2. OpenLLMetry-like `anthropic.chat` 2000/201 enclosing its sibling, the client's span 2000/200,
   same response id: 1, 2000, 200.
3. An instrumentation call 300/30, then a client call 400/40 (siblings, one after the other,
   same model): 2, 700, 70.
4. A retry: an instrumented call and its client child, both failed (no usage); then again,
   500/51 and 500/50: 2, 500, 50.
5. A client call alone 800/80: 1, 800, 80.
6. An instrumentation call 900/90 enclosing a client call 150/15, response ids differ: 2, 1050, 105.
7. An instrumentation call to acme-2 50/5 enclosing a client call to acme-1 60/6: 2, 110, 11.
8. Root at 10:59:59.995; an instrumented call at 10:59:59.999 600/60, its client child at
   11:00:00.0005 600/60: 1, 600, 60 (in hour 11).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

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
from tests.analytics.helpers import T0, span, tid, write
from tests.analytics.test_rollup_reports import agree

H = 3_600_000  # ms
MIN = 60_000  # ms
CLIENT = "com.anthropic.sdk.python"
OI = "openinference.instrumentation.anthropic"
OL = "opentelemetry.instrumentation.anthropic"
TASK = "spanlake.task.name"


def call(model: str, inp: int | None, out: int | None, rid: str | None = None) -> dict[str, Any]:
    """Attributes of a chat call (no usage when `inp` is None: a failed call)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": model,
    }
    if inp is not None:
        attrs |= {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    if rid is not None:
        attrs["gen_ai.response.id"] = rid
    return attrs


def build(d: Path) -> None:
    def at(trace: int) -> float:
        return (trace - 1) * MIN

    roots = [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{TASK: f"t{t}"}) for t in range(1, 8)]
    roots.append(span(8, 1, at_ms=H - 5, ms=400, name="task 8", **{TASK: "t8"}))
    inst: dict[str, list[Span]] = {
        OI: [
            span(1, 2, 1, at_ms=at(1) + 10, ms=500, name="messages.create", **call("acme-1", 1000, 101)),
            span(4, 2, 1, at_ms=at(4) + 10, ms=50, name="messages.create", error=True, **call("acme-1", None, None)),
            span(4, 4, 1, at_ms=at(4) + 100, ms=200, name="messages.create", **call("acme-1", 500, 51)),
            span(8, 2, 1, at_ms=H - 1, ms=300, name="messages.create", **call("acme-1", 600, 60)),
        ],
        OL: [
            span(2, 2, 1, at_ms=at(2) + 10, ms=500, name="anthropic.chat", **call("acme-1", 2000, 201, "msg_2")),
            span(3, 2, 1, at_ms=at(3) + 10, ms=100, name="anthropic.chat", **call("acme-1", 300, 30, "msg_3a")),
            span(6, 2, 1, at_ms=at(6) + 10, ms=600, name="anthropic.chat", **call("acme-1", 900, 90, "msg_6a")),
            span(7, 2, 1, at_ms=at(7) + 10, ms=500, name="anthropic.chat", **call("acme-2", 50, 5)),
        ],
    }
    name = "anthropic.messages.create"
    clients = [
        span(1, 3, 2, at_ms=at(1) + 11, ms=498, name=name, **call("acme-1", 1000, 100, "msg_1")),
        span(2, 3, 1, at_ms=at(2) + 12, ms=497, name=name, **call("acme-1", 2000, 200, "msg_2")),
        span(3, 3, 1, at_ms=at(3) + 200, ms=100, name=name, **call("acme-1", 400, 40, "msg_3b")),
        span(4, 3, 2, at_ms=at(4) + 11, ms=48, name=name, error=True, **call("acme-1", None, None)),
        span(4, 5, 4, at_ms=at(4) + 101, ms=198, name=name, **call("acme-1", 500, 50, "msg_4")),
        span(5, 2, 1, at_ms=at(5) + 10, ms=300, name=name, **call("acme-1", 800, 80, "msg_5")),
        span(6, 3, 1, at_ms=at(6) + 20, ms=300, name=name, **call("acme-1", 150, 15, "msg_6b")),
        span(7, 3, 1, at_ms=at(7) + 20, ms=400, name=name, **call("acme-1", 60, 6)),
        span(8, 3, 2, at_ms=H + 0.5, ms=290, name=name, **call("acme-1", 600, 60, "msg_8")),
    ]
    write(d, roots)
    for scope, spans in inst.items():
        write(d, spans, scope=scope)
    write(d, clients, scope=CLIENT)


# trace → (llm calls, input tokens, output tokens), counted once per call
COUNTED = {1: (1, 1000, 100), 2: (1, 2000, 200), 3: (2, 700, 70), 4: (2, 500, 50), 5: (1, 800, 80),
           6: (2, 1050, 105), 7: (2, 110, 11), 8: (1, 600, 60)}  # fmt: skip
# (trace, span) of each duplicate → the client's span it repeats
DUPLICATES = {(1, 2): 3, (2, 2): 3, (4, 2): 3, (4, 4): 5, (8, 2): 3}
ALL = Filters(since=T0, until=T0 + timedelta(hours=2))
HOUR_10 = Filters(since=T0, until=T0 + timedelta(hours=1))


def cost(inp: int, out: int) -> float:
    return (inp + 2 * out) / 1e6


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1.0, output_mtok=2.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


def sid_hex(n: int) -> str:
    return n.to_bytes(8, "big").hex()


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
