"""One model call, two spans (storage.call_pairs): a client library's own span and an
instrumentation's LLM span of the same call count once, with the client's numbers, in every
figure — the traces view, the trace list (both its lean sort and its rows), the trace detail,
the cost, tasks and latency reports — and the hourly rollups equal the raw figures. The same for
a framework's LLM span over those (three layers, at the end), and the pairing is skipped where a
window holds one layer only.

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
from spanlake.analytics.spans import Filters, SpanSource, pairing_needed
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


# --- three layers: a framework's LLM span over a client instrumentation's over a client's own --------
#
# Designed data (storage.call_pairs: layer 0 the client's own span, 1 a client instrumentation's,
# 2 a framework's; other scopes have none), same prices, T0 = 10:00 UTC, trace t at (t - 1) min,
# each under its task root. Per trace, and what counts (calls, input, output tokens):
#
# 1. As observed with OpenInference's LangChain and openai instrumentations: root → chain →
#    framework LLM 700/70; the openai span 700/71 is the root's child, enclosed by the LLM span
#    in time: 1, 700, 71 (the inner span's numbers).
# 2. OpenLLMetry LangChain 1000/100 (msg_2), its sibling OpenLLMetry anthropic 1000/101 (msg_2),
#    that span's child the client's own 1000/102 (msg_2): 1, 1000, 102; both others repeat the
#    client's span.
# 3. A framework call alone 300/30, then an openai call alone 200/20: 2, 500, 50.
# 4. A framework call to acme-2 50/5 enclosing an openai call to acme-1 60/6: 2, 110, 11.
# 5. A framework call 400/40 (msg_5a) enclosing an OpenLLMetry openai call 100/10 (msg_5b): 2, 500, 50.
# 6. An app's own LLM span (no layer) 500/50 enclosing an openai call 500/50; then a framework
#    call 80/8 with a framework LLM span 80/8 under it (one layer): 4, 1160, 116.
# 7. A retry: a framework call and its openai call, both failed (no usage), then again 500/50
#    over 500/51: 2 calls (the openai ones), 500, 51.
#
# Projects whose window holds one layer only (pairing is skipped, and nothing changes): fw_only
# (a framework call 300/30), inst_only (an openai call 200/20), client_only (a client's own span
# 100/10), app_over_inst (an app's LLM span 500/50 enclosing an openai call 500/50: 2 calls).

FW_OI = "openinference.instrumentation.langchain"
FW_OL = "opentelemetry.instrumentation.langchain"
OAI_OI = "openinference.instrumentation.openai"
OAI_OL = "opentelemetry.instrumentation.openai.v1"
APP = "acme.app"
CHAIN = {"openinference__span__kind": "CHAIN"}


def build_layers(d: Path) -> None:
    def at(trace: int) -> float:
        return (trace - 1) * MIN

    roots = [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{TASK: f"t{t}"}) for t in range(1, 8)]
    frameworks: dict[str, list[Span]] = {
        FW_OI: [
            span(1, 2, 1, at_ms=at(1) + 10, ms=500, name="RunnableSequence", **CHAIN),
            span(1, 3, 2, at_ms=at(1) + 20, ms=400, name="ChatOpenAI", **call("acme-1", 700, 70)),
            span(3, 2, 1, at_ms=at(3) + 10, ms=100, name="ChatOpenAI", **call("acme-1", 300, 30)),
            span(4, 2, 1, at_ms=at(4) + 10, ms=500, name="ChatOpenAI", **call("acme-2", 50, 5)),
            span(6, 4, 1, at_ms=at(6) + 600, ms=300, name="ChatOpenAI", **call("acme-1", 80, 8)),
            span(6, 5, 4, at_ms=at(6) + 610, ms=280, name="ChatOpenAI", **call("acme-1", 80, 8)),
            span(7, 2, 1, at_ms=at(7) + 10, ms=50, name="ChatOpenAI", error=True, **call("acme-1", None, None)),
            span(7, 4, 1, at_ms=at(7) + 100, ms=200, name="ChatOpenAI", **call("acme-1", 500, 50)),
        ],
        FW_OL: [
            span(2, 2, 1, at_ms=at(2) + 10, ms=500, name="ChatAnthropic.chat", **call("acme-1", 1000, 100, "msg_2")),
            span(5, 2, 1, at_ms=at(5) + 10, ms=500, name="ChatOpenAI.chat", **call("acme-1", 400, 40, "msg_5a")),
        ],
    }
    inner: dict[str, list[Span]] = {
        OAI_OI: [
            span(1, 4, 1, at_ms=at(1) + 30, ms=380, name="ChatCompletion", **call("acme-1", 700, 71)),
            span(3, 3, 1, at_ms=at(3) + 200, ms=100, name="ChatCompletion", **call("acme-1", 200, 20)),
            span(4, 3, 1, at_ms=at(4) + 20, ms=300, name="ChatCompletion", **call("acme-1", 60, 6)),
            span(6, 3, 1, at_ms=at(6) + 20, ms=300, name="ChatCompletion", **call("acme-1", 500, 50)),
            span(7, 3, 1, at_ms=at(7) + 11, ms=48, name="ChatCompletion", error=True, **call("acme-1", None, None)),
            span(7, 5, 1, at_ms=at(7) + 101, ms=198, name="ChatCompletion", **call("acme-1", 500, 51)),
        ],
        OAI_OL: [span(5, 3, 1, at_ms=at(5) + 20, ms=300, name="openai.chat", **call("acme-1", 100, 10, "msg_5b"))],
        OL: [span(2, 3, 1, at_ms=at(2) + 12, ms=490, name="anthropic.chat", **call("acme-1", 1000, 101, "msg_2"))],
        CLIENT: [span(2, 4, 3, at_ms=at(2) + 13, ms=480, name="messages.create", **call("acme-1", 1000, 102, "msg_2"))],
        APP: [span(6, 2, 1, at_ms=at(6) + 10, ms=500, name="app.llm", **call("acme-1", 500, 50))],
    }
    write(d, roots)
    for scope, spans in (*frameworks.items(), *inner.items()):
        write(d, spans, scope=scope)
    one_layer = {
        "fw_only": [(FW_OI, span(11, 2, 1, at_ms=10, ms=100, name="ChatOpenAI", **call("acme-1", 300, 30)))],
        "inst_only": [(OAI_OI, span(12, 2, 1, at_ms=10, ms=100, name="ChatCompletion", **call("acme-1", 200, 20)))],
        "client_only": [(CLIENT, span(13, 2, 1, at_ms=10, ms=100, name="messages.create", **call("acme-1", 100, 10)))],
        "app_over_inst": [
            (APP, span(14, 2, 1, at_ms=10, ms=500, name="app.llm", **call("acme-1", 500, 50))),
            (OAI_OI, span(14, 3, 1, at_ms=20, ms=300, name="ChatCompletion", **call("acme-1", 500, 50))),
        ],
    }
    for project, scoped in one_layer.items():
        resource = {"service.name": "layers", "spanlake.project": project}
        trace = scoped[0][1].trace_id
        write(d, [span(int.from_bytes(trace, "big"), 1, at_ms=0, ms=1000, name="task")], resource)
        for scope, s in scoped:
            write(d, [s], resource, scope=scope)


LAYERED_COUNTED = {1: (1, 700, 71), 2: (1, 1000, 102), 3: (2, 500, 50), 4: (2, 110, 11), 5: (2, 500, 50),
                   6: (4, 1160, 116), 7: (2, 500, 51)}  # fmt: skip
# (trace, span) of each duplicate → the span it repeats (nearest the wire)
LAYERED_DUPLICATES = {(1, 3): 4, (2, 2): 4, (2, 3): 4, (7, 2): 3, (7, 4): 5}
ONE_LAYER = {"fw_only": (1, 300, 30), "inst_only": (1, 200, 20), "client_only": (1, 100, 10),
             "app_over_inst": (2, 1000, 100)}  # fmt: skip


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
