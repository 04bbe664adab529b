"""Crash recovery: `kill -9` of a real `spanlake up` under load loses no acknowledged span and
stores none twice; a crash between publishing a segment's files and deleting the segment
replays without duplicates."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

import spanlake.collector.flusher as flushermod
import spanlake.storage.writer as writermod
from spanlake.collector.flusher import Flusher
from spanlake.collector.ingest import TRACES, parse_request
from spanlake.collector.validate import validate_traces
from spanlake.collector.wal import CLOSED_SUFFIX, FAILED_SUFFIX, KIND_TRACES, Record, WriteAheadLog
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.writer import LakeWriter
from tests.collector.wal_helpers import poll
from tests.factories import make_request, make_span

SPANS_PER_REQUEST = 5
PROJECTS = ("alpha", "beta")
HOUR_NS = 3600 * 10**9


def ids_for(run: int, thread: int, seq: int) -> tuple[bytes, list[bytes]]:
    key = f"{run}/{thread}/{seq}".encode()
    trace_id = hashlib.blake2b(key, digest_size=16).digest()
    span_ids = [hashlib.blake2b(key + bytes([i]), digest_size=8).digest() for i in range(SPANS_PER_REQUEST)]
    return trace_id, span_ids


def request_body(run: int, thread: int, seq: int, now_ns: int) -> tuple[bytes, str]:
    """One trace of SPANS_PER_REQUEST spans, spread over projects and hours so a WAL segment
    becomes several lake files."""
    trace_id, span_ids = ids_for(run, thread, seq)
    start = now_ns - (seq % 3) * HOUR_NS
    spans = [
        make_span(
            f"step-{i}",
            trace_id=trace_id,
            span_id=sid,
            parent_span_id=b"" if i == 0 else span_ids[0],
            start_ns=start + i * 1000,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10, "i": i},
        )
        for i, sid in enumerate(span_ids)
    ]
    project = PROJECTS[(thread + seq) % len(PROJECTS)]
    req = make_request(spans, resource={"service.name": "crash-test", "spanlake.project": project})
    return req.SerializeToString(), trace_id.hex()


def spanlake_command() -> str:
    exe = Path(sys.executable).with_name("spanlake")
    found = str(exe) if exe.exists() else shutil.which("spanlake")
    if found is None:
        pytest.fail("the spanlake command is not installed next to the test interpreter")
    return found


class SpanlakeProcess:
    """`spanlake up` on free loopback ports, in its own process."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.http = ""

    def start(self, timeout: float = 60.0) -> str:
        # No first-start demo: its traces, cut short by the kill, are rightly partial and not the test's.
        cmd = [spanlake_command(), "up", "--data-dir", str(self.data_dir), "--grpc-port", "0", "--http-port", "0",
               "--no-demo", "--no-dashboard"]  # fmt: skip
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.http:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"spanlake up did not start; log: {self.log_path.read_text()[-2000:]}") from None
            if m := re.search(r"OTLP/HTTP\s+(http://\S+)", line):
                self.http = m.group(1)
        return self.http

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def descendants(self) -> set[int]:
        """Pids of the processes under this one but the rollup job (a bounded run that ends by
        itself): the flush workers and their resource tracker."""
        assert self.proc is not None
        parents: dict[int, int] = {}
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
                parents[int(status.parent.name)] = int(ppid.split()[1])
        found, frontier = set(), {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return {pid for pid in found if b"spanlake.analytics.rollups" not in cmdline(pid)}

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM: clean shutdown; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class Load:
    """Threads posting OTLP/HTTP protobuf requests, recording which ones got a 200."""

    def __init__(self, url: str, run: int, threads: int = 6) -> None:
        self.url = f"{url}/v1/traces"
        self.run = run
        self.acked: dict[str, tuple[int, int]] = {}  # trace id hex -> (thread, seq) of requests answered 200
        self.attempted: set[str] = set()
        self.unexpected: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._worker, args=(t,), daemon=True) for t in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _worker(self, thread: int) -> None:
        with httpx.Client(timeout=10) as client:
            seq = 0
            while not self._stop.is_set():
                body, trace = request_body(self.run, thread, seq, time.time_ns())
                with self._lock:
                    self.attempted.add(trace)
                try:
                    r = client.post(self.url, content=body, headers={"Content-Type": "application/x-protobuf"})
                except httpx.HTTPError:
                    return  # the server is gone: this request's fate is unknown
                if r.status_code == 200:
                    with self._lock:
                        self.acked[trace] = (thread, seq)
                    seq += 1
                elif r.status_code == 503:
                    time.sleep(0.05)  # retryable: same request again
                else:
                    self.unexpected.append(f"{r.status_code} {r.text[:200]}")
                    return


def cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return False


def expected_span_ids(run: int, acked: dict[str, tuple[int, int]]) -> set[tuple[str, str]]:
    """(trace_id, span_id) of every span of every acknowledged request."""
    return {(trace, sid.hex()) for trace, (t, seq) in acked.items() for sid in ids_for(run, t, seq)[1]}


def lake_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "lake").glob("*/project=*/date=*/hour=*/*.parquet"))


@pytest.fixture
def processes() -> Iterator[list[SpanlakeProcess]]:
    started: list[SpanlakeProcess] = []
    yield started
    for p in started:
        p.kill()


def test_kill_9_under_load_keeps_every_acknowledged_span_exactly_once(
    tmp_path: Path, processes: list[SpanlakeProcess]
) -> None:
    data = tmp_path / "data"
    log = tmp_path / "spanlake.log"
    acked: dict[int, dict[str, tuple[int, int]]] = {}
    attempted: set[str] = set()

    # Run 1: load from 6 threads, SIGKILL once requests were acknowledged and some
    # segments already went to the lake (so the kill lands amid flushing and writing).
    for run, min_acks, need_files in ((1, 150, True), (2, 60, False)):
        proc = SpanlakeProcess(data, log)
        processes.append(proc)
        url = proc.start()
        with Load(url, run) as load:
            poll(
                lambda load=load, need_files=need_files, min_acks=min_acks: (
                    len(load.acked) >= min_acks and (not need_files or lake_files(data))
                ),
                timeout=40,
                what=f"run {run}: {min_acks} acknowledged requests",
                every=0.05,
            )
            workers = proc.descendants()
            proc.kill()  # run 2 is killed while it may still be replaying run 1's segments
        assert not load.unexpected, load.unexpected
        assert workers, "spanlake up flushes in worker processes by default"
        poll(
            lambda ws=workers: not any(alive(w) for w in ws),
            timeout=15,
            what=f"run {run}: the workers to end",
            every=0.05,
        )
        assert any((data / "wal").iterdir()), "the kill should leave WAL segments to replay"
        acked[run] = dict(load.acked)
        attempted |= load.attempted

    # Run 3: restart on the same data directory; recovery replays the WAL into the lake.
    proc = SpanlakeProcess(data, log)
    processes.append(proc)
    proc.start()
    wal = data / "wal"
    poll(lambda: not any(wal.glob(f"*{CLOSED_SUFFIX}")), timeout=40, what="the WAL to be replayed", every=0.05)

    lake = Lake(data)
    rows = lake.query("SELECT trace_id, span_id, count(*) AS n FROM spans_raw GROUP BY ALL").to_pylist()
    stored = {(r["trace_id"], r["span_id"]): r["n"] for r in rows}
    for run in (1, 2):
        missing = expected_span_ids(run, acked[run]) - set(stored)
        assert not missing, f"run {run}: {len(missing)} acknowledged spans lost, e.g. {sorted(missing)[:3]}"
    duplicated = {k: n for k, n in stored.items() if n != 1}
    assert not duplicated, f"{len(duplicated)} spans stored more than once in spans_raw"

    # Nothing partial: every stored trace is a whole request, and every one was sent by us.
    per_trace = lake.query("SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id").to_pylist()
    assert {r["n"] for r in per_trace} == {SPANS_PER_REQUEST}
    assert {r["trace_id"] for r in per_trace} <= attempted
    counts = lake.query("SELECT count(*) AS n, count(DISTINCT (project, trace_id, span_id)) AS d FROM spans")
    assert counts.to_pylist() == [{"n": len(stored), "d": len(stored)}]
    for f in lake_files(data):
        pq.read_table(f)  # every published file is whole

    assert proc.stop() == 0
    assert not any(wal.iterdir()), "a clean stop leaves an empty WAL"


# --- crash inside the flusher -----------------------------------------------------------


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing handles it."""


def write_segment(data_dir: DataDir, n_requests: int = 30, run: int = 9) -> Path:
    """A closed WAL segment whose spans spread over 2 projects x 3 hours."""
    closed: list[Path] = []
    wal = WriteAheadLog(data_dir.wal, segment_max_age_s=60, on_segment_closed=closed.append)
    wal.recover()
    wal.start()
    try:
        now = time.time_ns()
        for seq in range(n_requests):
            body, _ = request_body(run=run, thread=0, seq=seq, now_ns=now)
            req = parse_request(body, "protobuf", TRACES)
            assert validate_traces(req).accepted == SPANS_PER_REQUEST
            wal.append(Record(KIND_TRACES, now + seq, None, body)).result(timeout=10)
        assert wal.rotate()
    finally:
        wal.close()
    (segment,) = closed
    return segment


def new_flusher(data_dir: DataDir) -> Flusher:
    """A flusher as a freshly started collector has it (a new WAL instance)."""
    wal = WriteAheadLog(data_dir.wal)
    wal.recover()
    return Flusher(wal, LakeWriter(data_dir))


def raw_counts(data_dir: DataDir) -> dict[tuple[str, str], int]:
    rows = Lake(data_dir).query("SELECT trace_id, span_id, count(*) AS n FROM spans_raw GROUP BY ALL").to_pylist()
    return {(r["trace_id"], r["span_id"]): r["n"] for r in rows}


def relative_files(data_dir: DataDir, segment: Path) -> set[str]:
    """Lake files, relative, with the segment's name replaced by `SEG`."""
    return {str(p.relative_to(data_dir.lake)).replace(segment.stem, "SEG") for p in lake_files(data_dir.root)}


def test_crash_mid_flush_then_replay_stores_each_span_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flushermod, "PART_ROWS", 40)  # several parts per segment
    reference = DataDir(tmp_path / "reference").create()
    ref_segment = write_segment(reference)
    new_flusher(reference).flush_segment(ref_segment)
    expected_files = relative_files(reference, ref_segment)
    assert len(expected_files) >= 6

    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir)
    saved = segment.read_bytes()

    # Crash after 3 files were published.
    real_write = writermod.write_parquet
    written = []

    def dying_write(*args: Any, **kw: Any) -> None:
        if len(written) == 3:
            raise Crash
        real_write(*args, **kw)
        written.append(args[1])

    monkeypatch.setattr(writermod, "write_parquet", dying_write)
    with pytest.raises(Crash):
        new_flusher(data_dir).flush_segment(segment)
    monkeypatch.setattr(writermod, "write_parquet", real_write)
    assert segment.exists() and len(lake_files(data_dir.root)) == 3
    assert set(raw_counts(data_dir).values()) == {1}  # readers see whole files only

    # Restart: the segment is replayed; the 3 files are replaced, not added to.
    flusher = new_flusher(data_dir)
    assert flusher.wal.closed_segments() == [segment]
    flusher.flush_segment(segment)
    assert not segment.exists()
    counts = raw_counts(data_dir)
    assert len(counts) == 30 * SPANS_PER_REQUEST and set(counts.values()) == {1}
    assert relative_files(data_dir, segment) == expected_files

    # Crash after every file was published but before the segment was deleted.
    segment.write_bytes(saved)
    new_flusher(data_dir).flush_segment(segment)
    assert raw_counts(data_dir) == counts
    assert relative_files(data_dir, segment) == expected_files


def test_replay_removes_parts_an_earlier_version_wrote_differently(tmp_path: Path) -> None:
    """If decoding changed between crash and restart, files of the old attempt that the new
    one does not rewrite would duplicate rows; the replay removes them."""
    data_dir = DataDir(tmp_path / "data").create()
    segment = write_segment(data_dir)
    saved = segment.read_bytes()
    new_flusher(data_dir).flush_segment(segment)
    counts = raw_counts(data_dir)
    first = lake_files(data_dir.root)[0]
    stray = first.with_name(f"{segment.stem}-0042.parquet")  # as if an old version had split here
    shutil.copy(first, stray)
    assert max(raw_counts(data_dir).values()) == 2

    segment.write_bytes(saved)
    (data_dir.lake / "_flushed" / segment.stem).unlink()  # the first attempt crashed before finishing
    new_flusher(data_dir).flush_segment(segment)
    assert not stray.exists()
    assert raw_counts(data_dir) == counts


def test_flusher_retries_disk_errors_and_sets_aside_undecodable_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flushermod, "RETRY_DELAY_S", 0.05)
    data_dir = DataDir(tmp_path / "data").create()
    bad = write_segment(data_dir, n_requests=2, run=1)
    flaky = write_segment(data_dir, n_requests=3, run=2)
    good = write_segment(data_dir, n_requests=4, run=3)
    flusher = new_flusher(data_dir)  # in-process (no worker pool), so patching the class reaches it
    real = writermod.LakeWriter.write_batch
    failures = {"flaky": 2}

    def write_batch(self: Any, table: Any, batch: Any, stem: str) -> list[Path]:
        if stem.startswith(bad.stem):
            raise ValueError("a bug in decoding")
        if stem.startswith(flaky.stem) and failures["flaky"]:
            failures["flaky"] -= 1
            raise OSError(28, "No space left on device")
        return real(self, table, batch, stem)

    monkeypatch.setattr(writermod.LakeWriter, "write_batch", write_batch)
    flusher.start()
    try:
        for seg in (bad, flaky, good):
            flusher.submit(seg)
        assert flusher.wait_idle(timeout=30)
    finally:
        flusher.close()
    assert bad.with_suffix(FAILED_SUFFIX).exists(), "an undecodable segment is kept aside, not deleted"
    assert not flaky.exists() and not good.exists()
    assert failures["flaky"] == 0
    assert len(raw_counts(data_dir)) == (3 + 4) * SPANS_PER_REQUEST
    assert flusher.wal.backlog_bytes == 0
    assert os.listdir(data_dir.wal) == [bad.with_suffix(FAILED_SUFFIX).name]
