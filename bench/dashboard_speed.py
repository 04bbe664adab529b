"""How fast the dashboard's queries are on a big lake (issue 6: 1M traces on 2 cores).

    python bench/dashboard_speed.py [--traces 1000000] [--days 7] [--data-dir /tmp/spanlake-bench]

Builds (once; reused when present) a lake of N traces spread over D days, one Parquet file
per hour partition as compaction leaves them, written with storage.writer.write_parquet.
Each trace: a task root, a retrieval with two scored documents, one or two LLM calls with
their messages in `content`, and a validation; ~5% failed calls, ~10% failed tasks.

Then times the functions the pages call (analytics.traces), cold (first call in a fresh
Analytics) and warm (median of 3), for the default window (last 24 h) and the whole lake:
  traces page   facets() + list_traces() first page          target < 1 s
  trace view    trace_detail() with the list's time hint, and from a bare ?trace= URL   < 300 ms
  overview      facets() + overview()                        target < 2 s
The hourly rollups (analytics.rollups: the overview and the trace-id index for bare links)
are brought up to date first, timed; the overview is also timed from raw spans.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from spanlake.analytics.rollups import materialize
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.overview import overview
from spanlake.analytics.traces.trace_list import facets, list_traces
from spanlake.storage.layout import DataDir, PartitionKey
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import write_parquet

PROJECT = "bench"
END = datetime(2025, 6, 30, tzinfo=UTC)  # the lake ends here; "now" for the windows
WORDS = ["refund", "parcel", "order", "invoice", "delay", "weather", "account", "password", "shipping", "address",
         "label", "return"]  # fmt: skip


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> list[str]:
    return [rng.bytes(nbytes).hex() for _ in range(n)]


def _partition(rng: np.random.Generator, hour_start: datetime, n: int) -> pa.Table:
    """n traces starting within one hour, as one Arrow table of spans."""
    base_ns = int(hour_start.timestamp()) * 10**9
    starts = np.sort(rng.integers(0, 3600 * 10**9 - 60 * 10**9, n)) + base_ns
    trace_ids = _hex(rng, n, 16)
    two_calls = rng.random(n) < 0.5
    fail_call = rng.random(n) < 0.05
    fail_check = rng.random(n) < 0.06
    app_fail = rng.random(n) < 0.04
    tokens_in = rng.integers(50, 2000, n)
    tokens_out = rng.integers(10, 500, n)
    sessions = rng.integers(0, max(1, n // 3), n)
    cols: dict[str, list[Any]] = {c.name: [] for c in SPANS.columns}

    def add(i: int, span_id: str, parent: str | None, name: str, category: str, off_ms: float, ms: float,
            **kw: Any) -> None:  # fmt: skip
        start = int(starts[i] + off_ms * 1e6)
        dur = int(ms * 1e6)
        row = {
            "trace_id": trace_ids[i], "span_id": span_id, "parent_span_id": parent, "name": name,
            "kind": "INTERNAL", "start_time": start // 1000, "end_time": (start + dur) // 1000,
            "start_time_unix_nano": start, "duration_ns": dur, "status_code": kw.pop("status", "UNSET"),
            "service_name": "support-bot", "scope_name": "bench", "category": category,
            "session_id": f"s-{hour_start:%m%d%H}-{sessions[i]}", "user_id": f"u-{sessions[i] % 97}",
            "resource_attributes": '{"service.name":"support-bot","spanlake.project":"bench"}',
            "ingested_at": start // 1000, **kw,
        }  # fmt: skip
        for c in cols:
            cols[c].append(row.get(c))

    for i in range(n):
        root = f"{i:016x}"
        q = " ".join(rng.choice(WORDS, 6))
        total = 400.0 + float(tokens_out[i]) * 4
        outcome = "failure" if app_fail[i] else "success"
        add(i, root, None, "answer_ticket", "task", 0, total, task_name="answer_ticket", task_outcome=outcome,
            attributes=json.dumps({"spanlake.task.name": "answer_ticket", "session.id": "s"}),
            status="ERROR" if fail_call[i] else "UNSET")  # fmt: skip
        docs = json.dumps([{"id": f"kb-{j}", "score": round(0.9 - j * 0.2, 2), "content": q} for j in range(2)])
        add(i, f"{i:015x}a", root, "retrieval kb", "retrieval", 5, 30, attributes='{"gen_ai.data_source.id":"kb"}',
            content=json.dumps({"gen_ai.retrieval.query.text": q, "gen_ai.retrieval.documents": docs}))  # fmt: skip
        calls = 2 if two_calls[i] else 1
        for k in range(calls):
            msgs_in = json.dumps([{"role": "system", "parts": [{"type": "text", "content": "You are a support bot."}]},
                                  {"role": "user", "parts": [{"type": "text", "content": q}]}])  # fmt: skip
            msgs_out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": f"About {q}: ok."}]}])
            error = bool(fail_call[i]) and k == calls - 1
            add(i, f"{i:015x}{k + 1}", root, "chat gpt-4o-mini", "llm", 40 + k * 200, 150 + float(tokens_out[i]),
                operation="chat", provider="openai", request_model="gpt-4o-mini",
                response_model="gpt-4o-mini-2024-07-18", input_tokens=int(tokens_in[i]),
                output_tokens=int(tokens_out[i]), total_tokens=int(tokens_in[i] + tokens_out[i]),
                status="ERROR" if error else "UNSET", error_type="InternalServerError" if error else None,
                attributes='{"gen_ai.operation.name":"chat","gen_ai.request.model":"gpt-4o-mini"}',
                content=json.dumps({"gen_ai.input.messages": msgs_in, "gen_ai.output.messages": msgs_out}))  # fmt: skip
        add(i, f"{i:015x}f", root, "validation json", "guardrail", total - 5, 2, validation_name="json",
            validation_passed=not bool(fail_check[i]), attributes='{"spanlake.validation.name":"json"}')  # fmt: skip
    arrays = []
    for f in SPANS.arrow_schema:
        values = cols[f.name]
        if f.name == "attributes":
            values = [v or "{}" for v in values]
        arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=SPANS.arrow_schema).sort_by([("start_time", "ascending")])


def build(data_dir: Path, traces: int, days: int, seed: int = 7) -> None:
    dd = DataDir(data_dir).create()
    rng = np.random.default_rng(seed)
    hours = days * 24
    per_hour = traces // hours
    extra = traces - per_hour * hours
    t0 = time.perf_counter()
    for h in range(hours):
        hour_start = END - timedelta(hours=hours - h)
        n = per_hour + (1 if h < extra else 0)
        key = PartitionKey(PROJECT, hour_start.date(), hour_start.hour)
        dest = dd.lake / key.path("spans") / "bench.parquet"
        write_parquet(_partition(rng, hour_start, n), dest, dd.staging)
        if h % 24 == 23:
            print(f"  built {h + 1}/{hours} hours ({time.perf_counter() - t0:.0f} s)", flush=True)
    (dd.root / "prices.toml").write_text('[[price]]\nmodel = "gpt-4o-mini*"\ninput_mtok = 0.15\noutput_mtok = 0.6\n')


def timed(fn: Callable[[], Any], runs: int = 3) -> tuple[float, float, Any]:
    """(cold seconds, warm median seconds, last result)."""
    t = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/spanlake-bench"))
    ap.add_argument("--full-rollups", action="store_true", help="rebuild every rollup hour (timed)")
    args = ap.parse_args()
    if not (DataDir(args.data_dir).lake / "spans").is_dir():
        print(f"building {args.traces:,} traces over {args.days} days in {args.data_dir} ...", flush=True)
        build(args.data_dir, args.traces, args.days)
    an = Analytics(args.data_dir)
    n = an.lake.query("SELECT count(DISTINCT trace_id) AS t, count(*) AS s FROM spans_raw").to_pylist()[0]
    print(f"lake: {n['t']:,} traces, {n['s']:,} spans\n")
    t0 = time.perf_counter()
    result = materialize.run(an, full=args.full_rollups)
    print(f"rollups: {sum(result.rebuilt.values())} table-hours built in {time.perf_counter() - t0:.1f} s\n")

    rows = []
    for label, span in (("last 24 h", timedelta(hours=24)), (f"all {args.days} days", timedelta(days=args.days))):
        tf = TraceFilters(since=END - span, until=END, project=PROJECT)
        f = Filters(since=END - span, until=END, project=PROJECT)
        cold, warm, page = timed(lambda tf=tf: (facets(an, tf), list_traces(an, tf, Page())))
        rows.append((f"traces page, {label}", cold, warm, f"{page[1].total:,} traces", 1.0))
        cold, warm, _ = timed(lambda tf=tf: list_traces(an, tf.with_(text="refund parcel"), Page()))
        rows.append((f"traces page + text search, {label}", cold, warm, "", None))
        cold, warm, _ = timed(lambda tf=tf: list_traces(an, tf.with_(outcome="failure", min_ms=1500), Page()))
        rows.append((f"traces page + outcome/latency filter, {label}", cold, warm, "", None))
        cold, warm, o = timed(lambda tf=tf, f=f: (facets(an, tf), overview(an, f)))
        rows.append((f"overview, {label}", cold, warm, f"{o[1].current['tasks']:,} tasks ({o[1].source})", 2.0))
        cold, warm, o = timed(lambda tf=tf, f=f: (facets(an, tf), overview(an, f, source="raw")))
        rows.append((f"overview from raw spans, {label}", cold, warm, f"{o[1].current['tasks']:,} tasks", None))
        if label == "last 24 h":
            first = page[1].rows.row(0, named=True)
            tid, at = first["trace_id"], first["start_time"]
            cold, warm, d = timed(lambda tid=tid, at=at: trace_detail(an, tid, PROJECT, at))
            rows.append(("trace view, from the list (time hint)", cold, warm, f"{len(d.spans)} spans", 0.3))
            cold, warm, d = timed(lambda tid=tid: trace_detail(an, tid))
            rows.append(("trace view, bare ?trace= URL (no hint)", cold, warm, f"{len(d.spans)} spans", 0.3))

    print("| query | cold (s) | warm median (s) | target | result |")
    print("|---|---:|---:|---:|---|")
    for name, cold, warm, result, target in rows:
        tgt = f"< {target:g} s" if target else ""
        ok = "" if target is None else (" ✓" if warm < target else " ✗")
        print(f"| {name} | {cold:.3f} | {warm:.3f}{ok} | {tgt} | {result} |")


if __name__ == "__main__":
    main()
