"""Ingest under heavy reads: spans/s with four API clients asking for a 7-day raw latency
report, as a ratio of spans/s without them, measured in one run against one collector.

Starts `spanlake up` (bench/ingest_throughput.start_collector: no dashboard, demo or rollup
job) on free loopback ports with a fresh data directory, fills the lake with `--preload`
spans so the report has work to do, then alternates phases of `--spans` spans each: alone,
then under `--readers` clients each asking in a loop for
GET /api/v1/reports/latency?since=7d&source=raw (honouring 429 + Retry-After), `--rounds`
times. A phase's figure is spans/s from its first send until every span is queryable.
The reads must yield: the target is under-reads / alone >= 0.85.

    python bench/ingest_under_reads.py --preload 300000 --spans 300000 --readers 4 --rounds 2
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import cpu_model, start_collector, wait_quiet, wait_visible
from loadgen import SPANS_PER_TRACE, build_request, send_all

from spanlake.storage.reader import Lake

REPORT = "/api/v1/reports/latency?since=7d&source=raw"
TARGET = 0.85


@dataclass
class Reads:
    """What the report clients got during one phase."""

    answered: int = 0
    refused: int = 0  # 429 (queue full), retried after Retry-After
    failed: int = 0
    latencies_s: list[float] = field(default_factory=list)


def read_loop(url: str, stop: threading.Event, reads: Reads, lock: threading.Lock) -> None:
    """Ask for the report until `stop`, one request at a time."""
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn.request("GET", REPORT)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            with lock:
                reads.failed += 1
            conn.close()
            conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
            time.sleep(0.5)
            continue
        with lock:
            if resp.status == 200:
                reads.answered += 1
                reads.latencies_s.append(time.perf_counter() - t0)
            elif resp.status == 429:
                reads.refused += 1
            else:
                reads.failed += 1
        if resp.status == 429:
            stop.wait(float(resp.getheader("Retry-After") or 1))
    conn.close()


def ingest(url: str, lake: Lake, bodies: list[bytes], spans_per_body: int, clients: int, expect: int) -> float:
    """Send `bodies`, wait until the lake holds `expect` spans; spans/s end to end."""
    start = time.perf_counter()
    send_all(url, bodies, spans_per_body, clients)
    wait_visible(lake, expect, start, 900)
    return len(bodies) * spans_per_body / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preload", type=int, default=300_000, help="spans in the lake before the phases")
    ap.add_argument("--spans", type=int, default=300_000, help="spans sent in each phase")
    ap.add_argument("--spans-per-request", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4, help="concurrent OTLP senders")
    ap.add_argument("--readers", type=int, default=4, help="concurrent report clients in the read phases")
    ap.add_argument("--rounds", type=int, default=2, help="alone/under-reads phase pairs")
    args = ap.parse_args()

    traces_per_req = max(1, args.spans_per_request // SPANS_PER_TRACE)
    spans_per_body = traces_per_req * SPANS_PER_TRACE
    per_phase = max(1, args.spans // spans_per_body)
    preload = max(1, args.preload // spans_per_body)
    n_req = preload + per_phase * 2 * args.rounds
    t0 = time.perf_counter()
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    print(f"built {n_req} requests x {spans_per_body} spans in {time.perf_counter() - t0:.1f}s")

    data_dir = Path(tempfile.mkdtemp(prefix="spanlake-bench-reads-"))
    proc, url = start_collector(data_dir)
    lake = Lake(data_dir)
    alone: list[float] = []
    under: list[float] = []
    reads = Reads()
    try:
        wait_quiet(proc.pid)
        sent = preload
        ingest(url, lake, bodies[:preload], spans_per_body, args.clients, sent * spans_per_body)
        print(f"preloaded             {sent * spans_per_body} spans")
        for r in range(args.rounds):
            for with_reads in (False, True):
                chunk = bodies[sent : sent + per_phase]
                sent += per_phase
                stop, lock = threading.Event(), threading.Lock()
                readers = [
                    threading.Thread(target=read_loop, args=(url, stop, reads, lock), daemon=True)
                    for _ in range(args.readers if with_reads else 0)
                ]
                for t in readers:
                    t.start()
                if readers:
                    time.sleep(1.0)  # the reports are running when the load starts
                rate = ingest(url, lake, chunk, spans_per_body, args.clients, sent * spans_per_body)
                stop.set()
                for t in readers:
                    t.join()
                (under if with_reads else alone).append(rate)
                label = f"under {args.readers} readers" if with_reads else "alone"
                print(f"round {r + 1} {label:<17} {rate:,.0f} spans/s")
                wait_quiet(proc.pid, 10.0)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)
    a, u = statistics.median(alone), statistics.median(under)
    ratio = u / a
    lat = sorted(reads.latencies_s)
    p50 = f"{statistics.median(lat):.1f} s" if lat else "n/a"
    print(f"ingest alone          {a:,.0f} spans/s (median of {len(alone)})")
    print(f"ingest under reads    {u:,.0f} spans/s (median of {len(under)})")
    print(f"ratio                 {ratio:.2f} (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"reports               {reads.answered} answered (p50 {p50}), {reads.refused} x 429, {reads.failed} failed")
    print(f"machine               {os.cpu_count()} cores, {cpu_model()}, load {os.getloadavg()[0]:.1f} at the end")
    print(
        f"reproduce             python bench/ingest_under_reads.py --preload {args.preload} --spans {args.spans} "
        f"--readers {args.readers} --rounds {args.rounds}"
    )


if __name__ == "__main__":
    main()
