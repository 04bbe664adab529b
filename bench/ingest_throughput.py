"""End-to-end ingest benchmark: spans/s from first send until every span is queryable.

Starts `spanlake up` as a subprocess on free loopback ports with a fresh data directory,
sends realistic GenAI spans over OTLP/HTTP protobuf from several concurrent clients, and
waits until `spans` holds all of them. Prints throughput (acknowledged and visible),
request latency p50/p99, the collector's peak RSS and bytes on disk per span.

    python bench/ingest_throughput.py --spans 300000 --clients 4
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import SPANS_PER_TRACE, build_request, send_all  # noqa: E402

from spanlake.storage.reader import Lake  # noqa: E402


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children, KiB."""
    total = 0
    pids = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m = re.search(r"VmRSS:\s+(\d+)", status)
        if m:
            total += int(m.group(1))
    return total


def start_collector(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    exe = shutil.which("spanlake") or str(Path(sys.executable).with_name("spanlake"))
    proc = subprocess.Popen(
        [exe, "up", "--data-dir", str(data_dir), "--grpc-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.time() + 60
    while time.time() < deadline:
        line = proc.stdout.readline()
        if "OTLP/HTTP" in line:
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("collector did not start")


def lake_bytes(data_dir: Path) -> tuple[int, int]:
    """(all Parquet bytes, bytes excluding the content column) of the spans table."""
    total = content = 0
    for f in (data_dir / "lake" / "spans").rglob("*.parquet"):
        total += f.stat().st_size
        md = pq.ParquetFile(f).metadata
        idx = md.schema.to_arrow_schema().get_field_index("content")
        for rg in range(md.num_row_groups):
            content += md.row_group(rg).column(idx).total_compressed_size
    return total, total - content


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=300_000, help="total spans to send")
    ap.add_argument("--spans-per-request", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    traces_per_req = max(1, args.spans_per_request // SPANS_PER_TRACE)
    n_req = max(1, args.spans // (traces_per_req * SPANS_PER_TRACE))
    t0 = time.perf_counter()
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    spans_per_body = traces_per_req * SPANS_PER_TRACE
    total = n_req * spans_per_body
    avg = sum(map(len, bodies)) / total
    print(f"built {n_req} requests x {spans_per_body} spans ({avg:.0f} B/span protobuf) in {time.perf_counter() - t0:.1f}s")

    data_dir = Path(tempfile.mkdtemp(prefix="spanlake-bench-"))
    proc, url = start_collector(data_dir)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kib(proc.pid))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lake = Lake(data_dir)
    try:
        start = time.perf_counter()
        result = send_all(url, bodies, spans_per_body, args.clients)
        acked_at = time.perf_counter() - start
        visible = 0
        while visible < total:
            visible = lake.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"only {visible}/{total} spans visible after 600 s")
            if visible < total:
                time.sleep(0.2)
        visible_at = time.perf_counter() - start
    finally:
        stop.set()
        watcher.join()
        proc.terminate()
        proc.wait(timeout=60)
    total_b, no_content_b = lake_bytes(data_dir)
    lat = sorted(result.latencies_s)
    print(f"spans sent            {total}")
    print(f"acknowledged          {total / acked_at:,.0f} spans/s ({acked_at:.1f}s, {result.refused} refusals retried)")
    print(f"visible in `spans`    {total / visible_at:,.0f} spans/s end to end ({visible_at:.1f}s)")
    print(f"request latency       p50 {statistics.median(lat) * 1000:.0f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms")
    print(f"collector peak RSS    {peak / 1024:.0f} MiB")
    print(f"on disk per span      {total_b / total:.0f} B, {no_content_b / total:.0f} B excluding message content")
    print(f"machine               {os.cpu_count()} cores")
    print(f"reproduce             python bench/ingest_throughput.py --spans {args.spans} --clients {args.clients}")
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
