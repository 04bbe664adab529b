"""Backpressure on a really full disk: the collector refuses with a retryable status, the
standard OTLP exporters retry, and once space returns everything is delivered exactly once.

The data directory is a small tmpfs mounted for the test (root only, as in CI).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import start_collector
from tests.factories import make_request, make_span

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs to fill needs root (CI runs as root)")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> Path:
    """Fill the filesystem at `path` to the last byte."""
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:  # unbuffered: closing has nothing left to write (ENOSPC)
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_full_disk_refuses_retryably_and_exporters_deliver_after(small_disk: Path, transport: str) -> None:
    running, stop = start_collector(
        small_disk / "data",
        max_body_bytes=256 * 1024,
        max_message_bytes=256 * 1024,
        max_pending_bytes=1024 * 1024,
    )
    try:
        filler = fill(small_disk)
        # A raw request sees the refusal itself: 503 with Retry-After (retryable per OTLP).
        raw = make_request([make_span("probe")]).SerializeToString()
        r = httpx.post(f"{running.http}/v1/traces", content=raw, headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 503
        assert int(r.headers["Retry-After"]) >= 1

        if transport == "grpc":
            exporter = GrpcSpanExporter(endpoint=running.grpc, insecure=True, timeout=60)
        else:
            exporter = HttpSpanExporter(endpoint=f"{running.http}/v1/traces", timeout=60)
        provider = TracerProvider(resource=Resource.create({"service.name": "full-disk"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")

        done = threading.Event()

        def emit() -> None:
            for i in range(5):
                with tracer.start_as_current_span(f"during-full-{i}"):
                    pass  # SimpleSpanProcessor exports on end, retrying while refused
            done.set()

        worker = threading.Thread(target=emit)
        worker.start()
        time.sleep(3)  # the exporter is being refused and backing off
        assert not done.is_set(), "spans were acknowledged while the disk was full"
        filler.unlink()  # space returns
        worker.join(timeout=90)
        assert done.is_set()
        provider.shutdown()
        running.flush()
        rows = running.query("SELECT name FROM spans WHERE name LIKE 'during-full-%' ORDER BY name")
        assert [r["name"] for r in rows] == [f"during-full-{i}" for i in range(5)]
        assert httpx.get(f"{running.http}/health").status_code == 200
    finally:
        stop()


def test_backlog_limit_when_the_lake_cannot_be_written(tmp_path: Path) -> None:
    """WAL disk fine, lake disk full: the unflushed backlog grows to its bound, then refusals."""
    data = tmp_path / "data"
    lake = data / "lake"
    lake.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(lake)], check=True)
    try:
        running, stop = start_collector(
            data, max_body_bytes=64 * 1024, max_message_bytes=64 * 1024, max_backlog_bytes=200 * 1024
        )
        try:
            filler = fill(lake)
            statuses = []
            for _ in range(200):
                body = make_request([make_span(f"b{i}", attributes={"pad": "p" * 2000}) for i in range(10)])
                r = httpx.post(
                    f"{running.http}/v1/traces",
                    content=body.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf"},
                )
                statuses.append(r.status_code)
                if r.status_code == 503:
                    assert "backlog" in status_pb2.Status.FromString(r.content).message
                    assert int(r.headers["Retry-After"]) >= 1
                    break
                time.sleep(0.02)  # let segments close
            assert statuses[-1] == 503, "backlog never hit its bound"
            accepted = statuses.count(200)
            assert accepted >= 1
            # The backlog is counted when a segment closes, so it can pass the bound by at most
            # what one segment collects (here: at most a 0.2 s segment's worth of requests).
            on_disk = sum(p.stat().st_size for p in (data / "wal").iterdir())
            per_request = len(body.SerializeToString()) + 64
            assert on_disk <= 200 * 1024 + 12 * per_request

            filler.unlink()
            running.flush()
            deadline = time.time() + 60  # the flusher backs off up to 30 s while the disk is full
            while time.time() < deadline:
                n = running.query("SELECT count(*) AS n FROM spans")[0]["n"]
                if n == accepted * 10:
                    break
                time.sleep(0.5)
            assert running.query("SELECT count(*) AS n FROM spans")[0]["n"] == accepted * 10
        finally:
            stop()
    finally:
        subprocess.run(["umount", "-l", str(lake)], check=False)
