"""Scale-out benchmark: N `spanlake up` processes writing one lake, traffic spread over them.

Starts N collectors (own data directories, one shared lake: a local folder, or S3 served
by a local moto server), sends realistic GenAI spans round-robin over them as a load
balancer would (OTLP/HTTP protobuf, several clients each), and waits until the `spans`
view holds every span. Prints spans/s (acknowledged and visible), the lake's bytes per
span, and the machine.

    python bench/scale_out.py --collectors 1 2 3 --lake local --spans 150000
    python bench/scale_out.py --collectors 1 --lake s3 --spans 60000

moto is a single-process Python S3 emulator: S3 figures measured against it bound what
spanlake's write path costs, not what a real object store does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import cpu_model, free_port, wait_visible
from loadgen import SPANS_PER_TRACE, build_request, send_all

from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def start(data_dir: Path, lake: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    exe = shutil.which("spanlake") or str(Path(sys.executable).with_name("spanlake"))
    cmd = [exe, "up", "--no-dashboard", "--no-demo", "--no-compaction", "--data-dir", str(data_dir), "--lake", lake]
    cmd += ["--grpc-port", "0", "--http-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.time() + 60
    seen = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "OTLP/HTTP" in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, line.split()[1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("collector did not start: " + "".join(seen)[-2000:])


def moto(env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = free_port()
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    env.update(S3_ENV, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    os.environ.update(env)
    import pyarrow.fs as pafs

    deadline = time.time() + 30
    while True:
        try:
            fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", allow_bucket_creation=True)
            fs.create_dir("bench")
            return proc
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def run(n: int, lake_kind: str, bodies: list[bytes], spans_per_body: int, clients: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="spanlake-scale-"))
    env = dict(os.environ)
    server = None
    if lake_kind == "s3":
        server = moto(env)
        lake = f"s3://bench/run-{n}-{int(time.time())}"
    else:
        lake = str(root / "lake")
    procs = []
    try:
        urls = []
        for i in range(n):
            proc, url = start(root / f"node{i}", lake, env)
            procs.append(proc)
            urls.append(url)
        total = len(bodies) * spans_per_body
        shares = [bodies[i::n] for i in range(n)]  # round-robin, as a load balancer spreads requests
        results = []
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=lambda u=u, b=b: results.append(send_all(u, b, spans_per_body, clients)))
            for u, b in zip(urls, shares, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked_at = time.perf_counter() - t0
        reader = Lake(DataDir(root / "reader", lake))
        wait_visible(reader, total, t0, 900)
        visible_at = time.perf_counter() - t0
        size = sum(e.size for e in DataDir(root / "reader", lake).store.list_files("spans", ".parquet"))
        refused = sum(r.refused for r in results)
        print(
            f"{n} collector(s), {lake_kind} lake: {total / acked_at:,.0f} spans/s acknowledged, "
            f"{total / visible_at:,.0f} spans/s visible ({visible_at:.1f}s, {refused} refusals retried), "
            f"{size / total:.0f} B/span in the lake",
            flush=True,
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=120)
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collectors", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--lake", choices=["local", "s3"], default="local")
    ap.add_argument("--spans", type=int, default=150_000)
    ap.add_argument("--spans-per-request", type=int, default=500)
    ap.add_argument("--clients", type=int, default=2, help="concurrent clients per collector")
    args = ap.parse_args()
    traces_per_req = max(1, args.spans_per_request // SPANS_PER_TRACE)
    n_req = max(1, args.spans // (traces_per_req * SPANS_PER_TRACE))
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; load before: {os.getloadavg()[0]:.1f}", flush=True)
    for n in args.collectors:
        run(n, args.lake, bodies, traces_per_req * SPANS_PER_TRACE, args.clients)


if __name__ == "__main__":
    main()
