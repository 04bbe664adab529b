"""What one request of spans spread over thousands of hours costs the lake's readers (issue 14, item 3).

    python bench/file_flood.py [--days 7] [--spans-per-hour 500] [--flood 5000] [--work /tmp/spanlake-flood]

Builds a baseline lake: --days of hour partitions up to now, --spans-per-hour spans each,
one compacted file per partition (as compaction leaves them). Then, on copies of it:

  before   the flood as the writer stored it before the late-arrival area: one file per hour
  after    the flood POSTed (OTLP/HTTP protobuf, one request) to a real collector on loopback
  folded   `after`, then compacted until nothing is left to merge (late rows folded where
           they may be: into hours that have a partition; storage.late)

The flood: --flood spans, each its own trace, one per UTC hour going back from now (all in
the accepted window). For each lake it counts Parquet files and times, median of 3 (a fresh
connection each): counting the lake, a trace list over the flood's whole window (the
issue's "long window"), and one over the last hour; ratios are to the baseline, in this run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.collector.app import Collector
from spanlake.collector.config import CollectorConfig
from spanlake.collector.decode import decode_spans
from spanlake.storage.compact import compact
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter, columns_to_table, write_parquet

HOUR = timedelta(hours=1)
HOUR_NS = 3600 * 10**9


def request(starts_ns: list[int], service: str) -> ExportTraceServiceRequest:
    """One LLM span per start time, each its own trace."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    ss = rs.scope_spans.add()
    attrs = [
        KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
        KeyValue(key="gen_ai.request.model", value=AnyValue(string_value="m-1")),
        KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=120)),
    ]
    for start in starts_ns:
        ss.spans.append(
            Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name="chat m-1",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + 300_000_000,
                attributes=attrs,
            )
        )
    return req


def build_baseline(root: Path, top: datetime, days: int, per_hour: int) -> None:
    dd = DataDir(root).create()
    for h in range(days * 24):
        start = top - (h + 1) * HOUR
        base = int(start.timestamp()) * 10**9
        starts = [base + i * (HOUR_NS // per_hour) for i in range(per_hour)]
        ((key, cols),) = decode_spans(request(starts, "app"), time.time_ns()).items()
        dest = dd.lake / key.path(SPANS.name) / f"compacted-0-{h:05d}.parquet"
        write_parquet(columns_to_table(SPANS, cols), dest, dd.staging)


def post_to_collector(root: Path, body: bytes) -> None:
    """Start a collector on loopback (free ports), POST the body, wait until it is in the lake, stop."""
    config = CollectorConfig(
        data_dir=root, host="127.0.0.1", grpc_port=0, http_port=0, flush_workers=0, compaction=False
    )
    loop = asyncio.new_event_loop()
    started: Future[str] = Future()
    collector = Collector(config)

    def run() -> None:
        asyncio.set_event_loop(loop)
        started.set_result(loop.run_until_complete(collector.start()).http)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        url = started.result(timeout=60)
        r = httpx.post(f"{url}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=60)
        r.raise_for_status()
        assert collector.flush(), "the collector did not flush in time"
    finally:
        asyncio.run_coroutine_threadsafe(collector.stop(), loop).result(timeout=120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


def median_s(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(root: Path, top: datetime, flood: int) -> dict[str, float]:
    long = TraceFilters(since=top - (flood + 1) * HOUR, until=top)
    last = TraceFilters(since=top - HOUR, until=top)
    return {
        "files": float(sum(1 for _ in (root / "lake").rglob("*.parquet"))),
        "count": median_s(lambda: Lake(root).query("SELECT count(*) FROM spans")),
        "long window": median_s(lambda: list_traces(Analytics(root), long, Page())),
        "last hour": median_s(lambda: list_traces(Analytics(root), last, Page())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--spans-per-hour", type=int, default=500)
    ap.add_argument("--flood", type=int, default=5000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/spanlake-flood"))
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    base = args.work / "baseline"
    build_baseline(base, top, args.days, args.spans_per_hour)
    flood_starts = [int((top - (i + 1) * HOUR).timestamp()) * 10**9 + 600 * 10**9 for i in range(args.flood)]
    body = request(flood_starts, "flood").SerializeToString()

    lakes = {"baseline": base}
    for name in ("before", "after", "folded"):
        lakes[name] = args.work / name
        shutil.copytree(base, lakes[name])
    LakeWriter(DataDir(lakes["before"]), max_hour_files=None).write_batch(
        SPANS, decode_spans(body, time.time_ns()), "flood-0000"
    )
    post_to_collector(lakes["after"], body)
    post_to_collector(lakes["folded"], body)
    for run in range(3):  # the second run merges the folded files into their partitions' files
        compacted = compact(DataDir(lakes["folded"]), min_age_s=0)
        print(f"compaction {run + 1} of `folded`: {compacted}")
        if not compacted.files_in:
            break

    total = args.days * 24 * args.spans_per_hour + args.flood
    for name, root in lakes.items():
        (n,) = Lake(root).query("SELECT count(*) AS n FROM spans").column("n").to_pylist()
        assert n == (total if name != "baseline" else total - args.flood), (name, n)

    figures = {name: measure(root, top, args.flood) for name, root in lakes.items()}
    b = figures["baseline"]
    print(f"flood: {args.flood} spans in {args.flood} hours, {len(body) / 1024:.0f} KiB; baseline "
          f"{args.days} days x {args.spans_per_hour} spans/hour")  # fmt: skip
    print(f"{'lake':<10}{'files':>8}  {'count s':>9} {'ratio':>6}  {'long window s':>14} {'ratio':>6}  "
          f"{'last hour s':>12} {'ratio':>6}")  # fmt: skip
    for name, f in figures.items():
        print(
            f"{name:<10}{f['files']:>8.0f}  {f['count']:>9.3f} {f['count'] / b['count']:>6.2f}  "
            f"{f['long window']:>14.3f} {f['long window'] / b['long window']:>6.2f}  "
            f"{f['last hour']:>12.3f} {f['last hour'] / b['last hour']:>6.2f}"
        )
    print(
        f"\nreproduce: python bench/file_flood.py --days {args.days} --spans-per-hour {args.spans_per_hour} "
        f"--flood {args.flood} --work {args.work}"
    )


if __name__ == "__main__":
    main()
