"""Readers while the collector ingests and compaction rewrites partitions: only whole files,
counts that never go down, no duplicates in `spans`, no errors."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

import spanlake.storage.reader as readermod
from spanlake.collector.decode import decode_spans
from spanlake.storage.compact import compact
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.conftest import start_collector
from tests.factories import make_request, make_span

LOAD_S = 8.0
SPANS_PER_REQUEST = 4


def request(thread: int, seq: int) -> tuple[bytes, set[str]]:
    trace_id = os.urandom(16)
    spans = [
        make_span(f"s{i}", trace_id=trace_id, start_ns=time.time_ns() - (seq % 2) * 3600 * 10**9)
        for i in range(SPANS_PER_REQUEST)
    ]
    project = ("alpha", "beta")[thread % 2]
    body = make_request(spans, resource={"spanlake.project": project}).SerializeToString()
    return body, {s.span_id.hex() for s in spans}


def test_reader_sees_whole_files_and_monotonic_counts_during_ingest_and_compaction(tmp_path: Path) -> None:
    running, stop_collector = start_collector(tmp_path / "data")
    stop = threading.Event()
    errors: list[str] = []
    acked: set[str] = set()
    lock = threading.Lock()
    stats = {"queries": 0, "merged": 0, "max": 0}

    def sender(thread: int) -> None:
        with httpx.Client(base_url=running.http, timeout=10) as client:
            seq = 0
            while not stop.is_set():
                body, span_ids = request(thread, seq)
                for _ in range(2 if seq % 5 == 0 else 1):  # some requests delivered twice, as retries are
                    r = client.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                    if r.status_code != 200:
                        errors.append(f"export: {r.status_code} {r.text[:200]}")
                        return
                with lock:
                    acked.update(span_ids)
                seq += 1

    def compactor() -> None:
        data_dir = DataDir(running.data_dir)
        while not stop.is_set():
            try:
                stats["merged"] += compact(data_dir, min_age_s=0).files_in
            except Exception as e:
                errors.append(f"compaction: {e!r}")
                return
            stop.wait(0.1)

    def reader() -> None:
        lake = Lake(running.data_dir)
        last = 0
        while not stop.is_set():
            try:
                (row,) = lake.query(
                    "SELECT count(*) AS n, count(DISTINCT (project, trace_id, span_id)) AS d, "
                    "(SELECT count(*) FROM spans_raw) AS raw FROM spans"
                ).to_pylist()
            except Exception as e:
                errors.append(f"query: {e!r}")
                return
            if row["n"] != row["d"]:
                errors.append(f"duplicates in spans: {row}")
            if row["n"] < last:
                errors.append(f"span count went down from {last} to {row['n']}")
            if row["raw"] < row["n"]:
                errors.append(f"fewer raw rows than spans: {row}")
            last = row["n"]
            stats["queries"] += 1
            stats["max"] = last

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(2)]
    threads += [threading.Thread(target=compactor), threading.Thread(target=reader)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + LOAD_S
        last_call = deadline + 4 * LOAD_S  # a loaded machine reads and merges less per second: run on

        def raced() -> bool:
            return stats["queries"] >= 5 and stats["merged"] >= 10

        while (time.monotonic() < deadline or not raced()) and time.monotonic() < last_call and not errors:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors[:5]
        assert stats["queries"] >= 5 and stats["merged"] >= 10, stats  # the race really happened

        running.flush()
        compact(DataDir(running.data_dir), min_age_s=0)
        rows = running.query("SELECT span_id FROM spans")
        stored = [r["span_id"] for r in rows]
        assert len(stored) == len(set(stored))
        assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged spans missing"
        assert running.query("SELECT count(*) AS n FROM spans_raw") == [{"n": len(stored)}]
    finally:
        stop.set()
        stop_collector()


# --- retry mechanics, deterministically -------------------------------------------------

VANISHED = 'IO Error: Cannot open file "/lake/spans/x.parquet": No such file or directory'


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    DataDir(tmp_path / "data").create()
    return Lake(tmp_path / "data")


def failing(times: int, error: Exception, real: Any) -> Any:
    calls = {"n": 0}

    def f(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return real(*args, **kw)

    f.calls = calls  # type: ignore[attr-defined]
    return f


def test_query_retries_when_a_file_vanishes_while_reading(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = failing(3, duckdb.IOException(VANISHED), readermod.fetch_arrow)
    monkeypatch.setattr(readermod, "fetch_arrow", fetch)
    assert lake.query("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 0}]
    assert fetch.calls["n"] == 4


def test_query_retries_when_a_file_vanishes_while_defining_the_views(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect = failing(2, duckdb.IOException(VANISHED), Lake.connect)
    monkeypatch.setattr(Lake, "connect", connect)
    assert lake.query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    assert connect.calls["n"] == 3


def test_other_errors_are_not_retried(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = failing(1, duckdb.IOException("IO Error: Permission denied"), readermod.fetch_arrow)
    monkeypatch.setattr(readermod, "fetch_arrow", fetch)
    with pytest.raises(duckdb.IOException):
        lake.query("SELECT 1")
    assert fetch.calls["n"] == 1
    with pytest.raises(duckdb.Error):
        lake.query("SELECT * FROM no_such_view")


def test_retries_give_up_after_a_deadline(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readermod, "RETRY_FOR_S", 0.3)
    monkeypatch.setattr(readermod, "fetch_arrow", failing(10**6, duckdb.IOException(VANISHED), readermod.fetch_arrow))
    t0 = time.monotonic()
    with pytest.raises(duckdb.IOException):
        lake.query("SELECT 1")
    assert time.monotonic() - t0 < 2


def test_a_quote_in_the_data_dir_path(tmp_path: Path) -> None:
    data_dir = DataDir(tmp_path / "o'brien").create()
    LakeWriter(data_dir).write_batch(SPANS, decode_spans(make_request([make_span("x")]), time.time_ns()), "f-0000")
    assert Lake(data_dir).query("SELECT name FROM spans").to_pylist() == [{"name": "x"}]
