"""End-to-end ingest benchmark: spans/s from first send until every span is queryable.

Starts `spanlake up` as a subprocess on free loopback ports with a fresh data directory,
sends realistic GenAI spans over OTLP/HTTP protobuf from several concurrent clients, and
waits until `spans` holds all of them. Prints throughput (acknowledged and visible),
request latency p50/p99, the collector's peak RSS and bytes on disk per span.

With --phoenix, the same requests (a share of them: Phoenix persists far more slowly) are
then sent to Arize Phoenix's OTLP/HTTP endpoint, timed until its database holds them, and
the ratio is printed. Phoenix runs from its own virtualenv (created on first use).

    python bench/ingest_throughput.py --spans 300000 --clients 4 --phoenix
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import SPANS_PER_TRACE, build_request, send_all

from spanlake.storage.reader import Lake


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def tree_rss_kib(pid: int, per_process: dict[int, int] | None = None) -> int:
    """Resident memory of a process and its children, KiB (each one's peak kept in `per_process`)."""
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
            if per_process is not None:
                per_process[p] = max(per_process.get(p, 0), int(m.group(1)))
    return total


def tree_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by a process and each of its children."""
    hz = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    out = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / hz
    return out


def wait_quiet(pid: int, timeout_s: float = 20.0) -> None:
    """Wait until the collector's processes have finished starting (imports, flush workers)."""
    deadline = time.time() + timeout_s
    last = sum(tree_cpu_s(pid).values())
    while time.time() < deadline:
        time.sleep(0.5)
        now = sum(tree_cpu_s(pid).values())
        if now - last < 0.02:
            return
        last = now


def start_collector(
    data_dir: Path, rollups: bool = False, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`spanlake up` without dashboard and demo; without the analytics rollup job unless `rollups`
    (its first run starts 5 s after start-up, in the middle of the load, and bills its DuckDB
    queries to the collector process)."""
    exe = shutil.which("spanlake") or str(Path(sys.executable).with_name("spanlake"))
    env = dict(os.environ)
    if not rollups:
        env["SPANLAKE_ROLLUP_INTERVAL"] = "0"
    env.update(extra_env or {})
    proc = subprocess.Popen(
        # The collector alone: its RSS is what the target is about, not the dashboard's.
        [exe, "up", "--data-dir", str(data_dir), "--grpc-port", "0", "--http-port", "0", "--no-dashboard", "--no-demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def phoenix_python(venv: Path) -> Path:
    """A Python with arize-phoenix installed, creating the virtualenv on first use."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing arize-phoenix into {venv} (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "arize-phoenix"], check=True)
    return python


def run_phoenix(python: Path, bodies: list[bytes], spans_per_body: int, clients: int) -> tuple[float, float]:
    """Send `bodies` to a fresh Phoenix; return (acknowledged spans/s, visible spans/s)."""
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    proc = subprocess.Popen(
        [str(python), "-m", "phoenix.server.main", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("Phoenix did not start") from None
                time.sleep(0.5)
        total = len(bodies) * spans_per_body
        start = time.perf_counter()
        send_all(f"http://127.0.0.1:{port}", bodies, spans_per_body, clients)
        acked = time.perf_counter() - start
        db = work / "phoenix.db"
        visible = 0
        while visible < total:
            time.sleep(0.5)
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
                visible = con.execute("SELECT count(*) FROM spans").fetchone()[0]
            if time.perf_counter() - start > 1800:
                raise RuntimeError(f"Phoenix stored only {visible}/{total} spans in 30 min")
        return total / acked, total / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def published_rows(lake: Lake, footers: dict[Path, int]) -> int:
    """Rows in the span files published in a local lake now (each file's footer read once,
    kept in `footers`); a file compaction replaced counts until it is removed, so the sum can
    run ahead of the `spans` view but never behind it."""
    rows = 0
    for f in (lake.data_dir.lake / "spans").rglob("*.parquet"):
        if f not in footers:
            try:
                footers[f] = pq.read_metadata(f).num_rows
            except FileNotFoundError:  # removed by compaction since the listing
                continue
        rows += footers[f]
    return rows


def wait_visible(lake: Lake, total: int, start: float, timeout_s: float) -> int:
    """Wait until the `spans` view holds `total` spans; returns the count it holds.

    Polls the published files' footers and asks the view only once they hold enough. A view
    query defines every view over every file: a few tenths of a CPU second on 2 cores, which at
    every poll would take that CPU from the flush workers being measured (and more from the code
    whose views cost more to define, skewing old-against-new comparisons)."""
    footers: dict[Path, int] = {}
    while True:
        if lake.data_dir.is_remote or published_rows(lake, footers) >= total:
            visible = lake.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
            if visible >= total:
                return visible
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"only {published_rows(lake, footers)}/{total} spans published after {timeout_s:.0f} s")
        time.sleep(0.05 if not lake.data_dir.is_remote else 0.2)


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


@dataclass
class Ingest:
    """One end-to-end run: seconds to acknowledge and to see every span, request latencies,
    peak RSS (whole tree and per process, KiB) and CPU seconds of the collector and its children."""

    data_dir: Path
    total: int
    acked_at: float
    visible_at: float
    latencies_s: list[float]
    refused: int
    peak: int
    peaks: dict[int, int]
    main_cpu: float
    kid_cpus: list[float]  # each child process's CPU seconds during the run, largest first
    collector_pid: int

    @property
    def kids_cpu(self) -> float:
        return sum(self.kid_cpus)


def ingest_once(
    bodies: list[bytes], spans_per_body: int, clients: int, rollups: bool = False,
    env: dict[str, str] | None = None, prepare: Callable[[Path], None] | None = None,
) -> Ingest:  # fmt: skip
    """Start a collector on a fresh data directory (`prepare` writes into it first; `env` adds
    to its environment), send `bodies` and wait until every span is visible."""
    total = len(bodies) * spans_per_body
    data_dir = Path(tempfile.mkdtemp(prefix="spanlake-bench-"))
    if prepare is not None:
        prepare(data_dir)
    proc, url = start_collector(data_dir, rollups, env)
    peak = 0
    stop = threading.Event()

    wait_quiet(proc.pid)
    cpu_at_start = tree_cpu_s(proc.pid)
    cpu_seen: dict[int, float] = dict(cpu_at_start)
    peaks: dict[int, int] = {}  # pid -> its own peak RSS, KiB

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_kib(proc.pid, peaks))
            for p, sec in tree_cpu_s(proc.pid).items():
                cpu_seen[p] = max(cpu_seen.get(p, 0.0), sec)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lake = Lake(data_dir)
    try:
        start = time.perf_counter()
        result = send_all(url, bodies, spans_per_body, clients)
        acked_at = time.perf_counter() - start
        wait_visible(lake, total, start, 600)
        visible_at = time.perf_counter() - start
    finally:
        stop.set()
        watcher.join()
        for p, sec in tree_cpu_s(proc.pid).items():
            cpu_seen[p] = max(cpu_seen.get(p, 0.0), sec)
        proc.terminate()
        proc.wait(timeout=60)
    main_cpu = cpu_seen.get(proc.pid, 0.0) - cpu_at_start.get(proc.pid, 0.0)
    kid_cpus = sorted((sec - cpu_at_start.get(p, 0.0) for p, sec in cpu_seen.items() if p != proc.pid), reverse=True)
    return Ingest(data_dir, total, acked_at, visible_at, result.latencies_s, result.refused, peak, peaks,
                  main_cpu, kid_cpus, proc.pid)  # fmt: skip


def request_bodies(spans: int, cache: bool = True) -> tuple[list[bytes], int]:
    """OTLP request bodies of about `spans` spans (loadgen's traces, 500 spans a request) and the
    spans per body. Building millions of spans takes minutes: with `cache`, the bodies are kept in
    $TMPDIR/spanlake-bench-bodies-<n>.bin (length-prefixed) and read back on the next run."""
    traces_per_req = max(1, 500 // SPANS_PER_TRACE)
    n_req = max(1, spans // (traces_per_req * SPANS_PER_TRACE))
    per_body = traces_per_req * SPANS_PER_TRACE
    path = Path(tempfile.gettempdir()) / f"spanlake-bench-bodies-{n_req * per_body}.bin"
    if cache and path.exists():
        bodies = []
        with open(path, "rb") as f:  # one body at a time: the file may be larger than half the memory
            while head := f.read(4):
                bodies.append(f.read(int.from_bytes(head, "little")))
        if len(bodies) == n_req:
            return bodies, per_body
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    if cache:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for b in bodies:
                f.write(len(b).to_bytes(4, "little") + b)
        os.replace(tmp, path)
    return bodies, per_body


def paired_ratios(
    bodies: list[bytes],
    per_body: int,
    clients: int,
    pairs: int,
    without_env: dict[str, str],
    with_env: dict[str, str],
    prepare: Callable[[Path], None] | None = None,
    describe: Callable[[Ingest], str] = lambda run: "",
) -> list[float]:
    """Ingest `bodies` in `pairs` pairs of runs, without then with a background job (`with_env`,
    `prepare` writing its files into the data directory); prints each run and returns the
    visible-spans/s ratios with/without of each pair."""
    ratios = []
    for i in range(pairs):
        rates: dict[str, float] = {}
        for name in ("without", "with"):
            env, prep = (with_env, prepare) if name == "with" else (without_env, None)
            run = ingest_once(bodies, per_body, clients, env=env, prepare=prep)
            rates[name] = run.total / run.visible_at
            cpu = (run.main_cpu + run.kids_cpu) * 1e6 / run.total
            extra = describe(run) if name == "with" else ""
            print(f"pair {i + 1} {name:8} {rates[name]:9,.0f} spans/s visible ({run.visible_at:.1f} s), "
                  f"collector CPU {cpu:.1f} µs/span, {run.refused} requests refused (429/503){extra}",
                  flush=True)  # fmt: skip
            shutil.rmtree(run.data_dir, ignore_errors=True)
            time.sleep(2)
        ratios.append(rates["with"] / rates["without"])
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=300_000, help="total spans to send")
    ap.add_argument("--spans-per-request", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    ap.add_argument("--rollups", action="store_true", help="keep the analytics rollup job on in the collector")
    ap.add_argument("--phoenix", action="store_true", help="also run the workload against Arize Phoenix")
    ap.add_argument("--phoenix-share", type=float, default=0.05, help="share of the requests sent to Phoenix")
    ap.add_argument("--phoenix-venv", type=Path, default=Path(".bench-venvs/phoenix"))
    args = ap.parse_args()

    traces_per_req = max(1, args.spans_per_request // SPANS_PER_TRACE)
    n_req = max(1, args.spans // (traces_per_req * SPANS_PER_TRACE))
    t0 = time.perf_counter()
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    spans_per_body = traces_per_req * SPANS_PER_TRACE
    total = n_req * spans_per_body
    avg = sum(map(len, bodies)) / total
    print(
        f"built {n_req} requests x {spans_per_body} spans ({avg:.0f} B/span protobuf) "
        f"in {time.perf_counter() - t0:.1f}s"
    )

    run = ingest_once(bodies, spans_per_body, args.clients, args.rollups)
    data_dir, acked_at, visible_at, peak, peaks = run.data_dir, run.acked_at, run.visible_at, run.peak, run.peaks
    total_b, no_content_b = lake_bytes(data_dir)
    lat = sorted(run.latencies_s)
    print(f"spans sent            {total}")
    print(f"acknowledged          {total / acked_at:,.0f} spans/s ({acked_at:.1f}s, {run.refused} refusals retried)")
    print(f"visible in `spans`    {total / visible_at:,.0f} spans/s end to end ({visible_at:.1f}s)")
    print(
        f"request latency       p50 {statistics.median(lat) * 1000:.0f} ms, "
        f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.0f} ms"
    )
    others = ", ".join(f"{kib / 1024:.0f}" for p, kib in sorted(peaks.items()) if p != run.collector_pid)
    print(
        f"collector peak RSS    {peak / 1024:.0f} MiB (each process's own peak: receiver "
        f"{peaks.get(run.collector_pid, 0) / 1024:.0f} MiB; children {others} MiB)"
    )
    main_cpu, kids_cpu = run.main_cpu, run.kids_cpu
    per_span = (main_cpu + kids_cpu) * 1e6 / total
    print(
        f"collector CPU         {per_span:.1f} µs/span (receiver {main_cpu * 1e6 / total:.1f}, "
        f"children {kids_cpu * 1e6 / total:.1f}: "
        f"{' + '.join(f'{c * 1e6 / total:.1f}' for c in run.kid_cpus if c * 1e6 / total >= 0.05)}): "
        f"{os.cpu_count()} cores of its own would sustain about {(os.cpu_count() or 1) * 1e6 / per_span:,.0f} spans/s"
    )
    print(f"load average          {os.getloadavg()[0]:.1f} (1 min, at the end)")
    print(f"on disk per span      {total_b / total:.0f} B, {no_content_b / total:.0f} B excluding message content")
    print(f"machine               {os.cpu_count()} cores, {cpu_model()}")
    if args.phoenix:
        share = bodies[: max(1, int(len(bodies) * args.phoenix_share))]
        p_acked, p_visible = run_phoenix(phoenix_python(args.phoenix_venv), share, spans_per_body, args.clients)
        print(
            f"phoenix               {len(share) * spans_per_body} spans: acknowledged {p_acked:,.0f} spans/s, "
            f"visible {p_visible:,.0f} spans/s"
        )
        print(f"ratio                 spanlake / phoenix (visible, end to end): {total / visible_at / p_visible:.1f}x")
    print(f"rollup job            {'on' if args.rollups else 'off (SPANLAKE_ROLLUP_INTERVAL=0; --rollups keeps it)'}")
    flags = (" --phoenix" if args.phoenix else "") + (" --rollups" if args.rollups else "")
    print(
        f"reproduce             python bench/ingest_throughput.py --spans {args.spans} --clients {args.clients}{flags}"
    )
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        print(f"data kept in {data_dir}")


if __name__ == "__main__":
    main()
