"""Three real `spanlake up` processes, each with its own data directory (WAL), writing one
lake (a shared local folder, or S3 on a real moto server), with traffic to all three at
once. One of them is the designated compactor and applies retention while the others
write; another is killed with SIGKILL mid-traffic and restarted (its WAL replays into the
lake the compactor is merging). Afterwards every acknowledged span is stored exactly once."""

from __future__ import annotations

import hashlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spanlake.storage.compact import COMPACTED_PREFIX
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from tests.collector.test_recovery import Load, expected_span_ids, poll, spanlake_command
from tests.factories import make_request, make_span
from tests.storage.conftest import S3Server

DAY_NS = 86400 * 10**9
HOUR_NS = 3600 * 10**9


class Collector:
    """`spanlake up --no-dashboard` on free loopback ports with its own data directory."""

    def __init__(self, data_dir: Path, lake: str, log: Path, env: dict[str, str]) -> None:
        self.data_dir, self.lake, self.log, self.env = data_dir, lake, log, env
        self.proc: subprocess.Popen[str] | None = None
        self.http = ""

    def start(self, timeout: float = 60.0) -> str:
        cmd = [
            spanlake_command(),
            "up",
            "--no-dashboard",
            "--no-demo",
            "--data-dir",
            str(self.data_dir),
            "--lake",
            self.lake,
        ]
        cmd += ["--grpc-port", "0", "--http-port", "0"]
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, **self.env}
            )
        lines: queue.Queue[str] = queue.Queue()
        proc = self.proc

        def drain() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        self.http = ""
        while not self.http:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"spanlake up did not start: {self.log.read_text()[-2000:]}") from None
            if m := re.search(r"OTLP/HTTP\s+(http://\S+)", line):
                self.http = m.group(1)
        return self.http

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=90)


class OldTraffic:
    """Spans of project `old`, three days in the past, which retention deletes as they come."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.acked = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OldTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.wait(0.05):
                trace = hashlib.blake2b(f"old/{n}".encode(), digest_size=16).digest()
                span = make_span("old", trace_id=trace, start_ns=time.time_ns() - 3 * DAY_NS)
                body = make_request([span], resource={"spanlake.project": "old"}).SerializeToString()
                try:
                    r = client.post(
                        f"{self.urls[n % len(self.urls)]}/v1/traces",
                        content=body,
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    pass  # a collector being killed
                else:
                    self.acked += r.status_code == 200
                n += 1


class FloodTraffic(OldTraffic):
    """Requests of project `flood` with 30 spans in 30 different hours, 2 to 40 days back: more
    hours than one written part may open, so they also exercise the late-arrival area."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls)
        self.acked_ids: set[tuple[str, str]] = set()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.wait(0.3):
                now = time.time_ns()
                spans = []
                for i in range(30):
                    digest = hashlib.blake2b(f"flood/{n}/{i}".encode(), digest_size=24).digest()
                    start = now - (2 * 24 + (n * 30 + i) % (38 * 24)) * HOUR_NS
                    spans.append(make_span("flood", trace_id=digest[:16], span_id=digest[16:], start_ns=start))
                body = make_request(spans, resource={"spanlake.project": "flood"}).SerializeToString()
                try:
                    r = client.post(
                        f"{self.urls[n % len(self.urls)]}/v1/traces",
                        content=body,
                        headers={"Content-Type": "application/x-protobuf"},
                    )
                except httpx.HTTPError:
                    pass  # a collector being killed
                else:
                    if r.status_code == 200:
                        self.acked_ids |= {(s.trace_id.hex(), s.span_id.hex()) for s in spans}
                n += 1


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    started: list[Collector] = []
    try:
        yield started
    finally:
        for c in started:
            c.kill()


@pytest.fixture(params=["local", "s3"])
def shared_lake(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A lake URL and the environment a collector needs to reach it."""
    if request.param == "local":
        return str(tmp_path / "shared-lake"), {}
    server: S3Server = request.getfixturevalue("s3_server")
    for k, v in server.env.items():
        request.getfixturevalue("monkeypatch").setenv(k, v)
    return f"s3://{server.create_bucket()}/lake", server.env


def test_three_collectors_one_lake_every_span_exactly_once(
    tmp_path: Path, shared_lake: tuple[str, dict[str, str]], collectors: list[Collector]
) -> None:
    lake_url, env = shared_lake
    # A short segment age and flush in-process keep 3 collectors light on 2 cores.
    base = {**env, "SPANLAKE_FLUSH_WORKERS": "0"}
    compactor_env = {
        **base,
        "SPANLAKE_COMPACT_INTERVAL_S": "0.5",
        "SPANLAKE_COMPACT_MIN_AGE_S": "0",
        "SPANLAKE_RETENTION": "old=1",
        "SPANLAKE_RETENTION_INTERVAL_S": "1",
    }
    for i in range(3):
        env_i = compactor_env if i == 0 else {**base, "SPANLAKE_COMPACTION": "false"}
        collectors.append(Collector(tmp_path / f"node{i}", lake_url, tmp_path / f"node{i}.log", env_i))
    urls = [c.start() for c in collectors]
    dd = DataDir(tmp_path / "reader", lake_url)

    acked: dict[int, dict[str, tuple[int, int]]] = {}
    with OldTraffic(urls) as old, FloodTraffic(urls) as flood:
        loads = [Load(url, run=run, threads=2) for run, url in enumerate(urls)]
        for load in loads:
            load.__enter__()
        try:
            poll(lambda: all(len(ld.acked) >= 40 for ld in loads), timeout=60, what="traffic on all three")
            victim = collectors[1]
            victim.kill()  # its WAL holds acknowledged segments; the compactor keeps merging
            assert any((victim.data_dir / "wal").iterdir()), "the kill leaves segments to replay"
            loads[1].__exit__()
            acked[1] = dict(loads[1].acked)
            loads[3:] = [Load(victim.start(), run=3, threads=2)]
            loads[3].__enter__()
            poll(
                lambda: len(loads[3].acked) >= 40 and compacted_files(dd) > 0,
                timeout=60,
                what="traffic after the restart, and compaction",
            )
        finally:
            for i, load in enumerate(loads):
                if i != 1:
                    load.__exit__()
                    acked[i] = dict(load.acked)
    for load in loads:
        assert not load.unexpected, load.unexpected
    assert old.acked > 0 and flood.acked_ids

    for c in collectors:  # a clean stop flushes every segment into the lake
        assert c.stop() == 0, c.log.read_text()[-2000:]
        assert not any((c.data_dir / "wal").iterdir())

    lake = Lake(dd)
    rows = lake.query(
        "SELECT trace_id, span_id, count(*) AS n FROM spans_raw WHERE project <> 'old' GROUP BY ALL"
    ).to_pylist()
    stored = {(r["trace_id"], r["span_id"]): r["n"] for r in rows}
    expected = set().union(*(expected_span_ids(run, a) for run, a in acked.items()))
    assert len(expected) >= 4 * 40 * 5
    missing = expected - set(stored)
    assert not missing, f"{len(missing)} acknowledged spans lost"
    duplicated = {k: n for k, n in stored.items() if n != 1}
    assert not duplicated, f"{len(duplicated)} spans stored more than once"
    assert compacted_files(dd) > 0, "the designated compactor merged files while the others wrote"

    # Spans over many hours (partly in the late-arrival area, partly folded): each once, in its hour.
    rows = lake.query(
        "SELECT trace_id, span_id, count(*) AS n, bool_and(hour = hour(start_time)) AS in_hour "
        "FROM spans_raw WHERE project = 'flood' GROUP BY ALL"
    ).to_pylist()
    assert not flood.acked_ids - {(r["trace_id"], r["span_id"]) for r in rows}, "acknowledged flood spans lost"
    assert all(r["n"] == 1 and r["in_hour"] for r in rows)

    # Retention ran while they wrote; what arrived after its last run goes with the next.
    from spanlake.storage.retention import apply_retention

    apply_retention(dd, {"old": 1})
    assert lake.query("SELECT count(*) AS n FROM spans_raw WHERE project = 'old'").to_pylist() == [{"n": 0}]
    log = collectors[0].log.read_text()
    assert "Traceback" not in log, log[-3000:]


def compacted_files(dd: DataDir) -> int:
    return sum(e.name.startswith(COMPACTED_PREFIX) for e in dd.store.list_files("spans", ".parquet"))
