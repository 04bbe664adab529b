"""The composition (server/app.py) run for real by `spanlake up`: roles, a taken port, the
first-start demo's child, and one lifecycle that stops cleanly."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.collector.app import PortInUse
from spanlake.collector.config import CollectorConfig
from spanlake.server.app import Server, ServerOptions, _bind_socket
from spanlake.storage.reader import Lake
from tests.conftest import start_collector
from tests.server.up_helpers import Up, mapped_files, wait_for

# Runs `spanlake up ...` in this interpreter and, at exit, writes the modules it loaded.
MODULES_AT_EXIT = """
import atexit, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from spanlake.cli.main import cli
cli(sys.argv[2:], prog_name="spanlake")
"""


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def spans(names: list[str], project: str = "roles") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "spanlake.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in names:
        with provider.get_tracer("t").start_as_current_span(name):
            pass
    return list(memory.get_finished_spans())


def test_ingest_role_receives_without_duckdb_or_analytics(tmp_path: Path) -> None:
    data, loaded = tmp_path / "data", tmp_path / "modules.txt"
    node = Up(data, "--role", "ingest", argv=[sys.executable, "-c", MODULES_AT_EXIT, str(loaded)])
    try:
        banner = node.wait_started()
        assert "(role ingest)" in banner and "dashboard" not in banner, banner
        http = node.address("OTLP/HTTP")
        grpc = node.address("OTLP/gRPC")
        assert HttpSpanExporter(endpoint=f"{http}/v1/traces").export(spans(["a", "b"])) == SpanExportResult.SUCCESS
        assert GrpcSpanExporter(endpoint=grpc, insecure=True).export(spans(["c"])) == SpanExportResult.SUCCESS
        ready = httpx.get(f"{http}/ready", timeout=10)
        assert ready.json() == {"status": "ready", "checks": {"wal": "ok", "flusher": "ok", "lake": "ok"}}
        assert httpx.get(f"{http}/api/v1/projects", timeout=10).status_code == 404  # no API on an ingest node
        wait_for(lambda: list((data / "lake" / "spans").rglob("*.parquet")), 30, "the flusher to write the lake")
        for pid in {node.proc.pid, *node.descendants()}:  # the flush workers too
            assert "duckdb" not in mapped_files(pid), f"process {pid} loaded DuckDB"
    finally:
        assert node.stop() == 0, node.output()
    modules = loaded.read_text().split()
    assert "spanlake.collector.flusher" in modules and "uvicorn" in modules  # the dump is of the real run
    assert "duckdb" not in modules
    assert not [m for m in modules if m.startswith("spanlake.analytics")]
    got = Lake(data).query("SELECT name FROM spans ORDER BY name").to_pylist()
    assert got == [{"name": "a"}, {"name": "b"}, {"name": "c"}]


def test_api_and_compactor_roles(tmp_path: Path) -> None:
    """api: the REST API and its own WAL for label writes, no OTLP; compactor: /health and
    /ready only, compaction and retention in the background."""
    api = Up(tmp_path / "api", "--role", "api", SPANLAKE_ROLLUP_INTERVAL="0")
    compactor = Up(tmp_path / "compactor", SPANLAKE_ROLE="compactor")
    try:
        banner = api.wait_started()
        assert "OTLP" not in banner and "(role api)" in banner, banner
        url = api.address("API").removesuffix("/api/v1")
        assert httpx.post(f"{url}/v1/traces", content=b"", timeout=10).status_code == 404
        assert httpx.get(f"{url}/api/v1/projects", timeout=10).status_code == 200
        labelled = httpx.post(
            f"{url}/api/v1/labels", json={"trace_id": "a" * 32, "project": "p", "verdict": "pass"}, timeout=30
        )
        assert labelled.status_code == 200, labelled.text
        got = Lake(tmp_path / "api").query("SELECT project, verdict FROM labels").to_pylist()  # readable at once
        assert got == [{"project": "p", "verdict": "pass"}]

        banner = compactor.wait_started()
        assert "(role compactor)" in banner and "compaction and retention: on" in banner, banner
        health = compactor.address("health").removesuffix("/health")
        assert httpx.get(f"{health}/ready", timeout=10).json() == {"status": "ready", "checks": {"lake": "ok"}}
        assert httpx.get(f"{health}/api/v1/projects", timeout=10).status_code == 404
    finally:
        assert api.stop() == 0, api.output()
        assert compactor.stop() == 0, compactor.output()


@pytest.mark.parametrize("taken", ["--grpc-port", "--http-port"])
def test_a_taken_port_is_named_with_the_option_that_moves_it(tmp_path: Path, taken: str) -> None:
    first = Up(tmp_path / "first")
    try:
        first.wait_started()
        port = first.address("OTLP/gRPC" if taken == "--grpc-port" else "OTLP/HTTP").rsplit(":", 1)[1]
        second = Up(tmp_path / "second", taken, port)
        code = second.wait_exit()
        out = second.output()
        assert code != 0, out
        assert "Traceback" not in out and "RuntimeError" not in out and "Failed to add port" not in out, out
        assert f"127.0.0.1:{port}" in out and f"move this one with {taken}" in out, out
        assert first.proc.poll() is None  # the first one is untouched
    finally:
        assert first.stop() == 0, first.output()


def test_the_first_start_demo_leaves_no_zombie(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.instrumentation.openai_v2", reason="pip install '.[demo]'")
    data = tmp_path / "data"
    data.mkdir()
    # Evaluators declared already: the demo declares none, so its child serves no judge and ends
    # after its tickets (tests/demo/test_up.py covers the child that stays to serve the judge).
    (data / "evaluators.toml").write_text("# none\n")
    up = Up(data, SPANLAKE_NO_DEMO="", SPANLAKE_DEMO_TICKETS="4", SPANLAKE_DEMO_TIME_SCALE="0.1")
    try:
        up.wait_started()
        wait_for(lambda: "demo: the lake was empty" in up.output(), 10, "the demo to start")
        demo = [pid for pid in up.children() if b"spanlake.cli.demo" in cmdline(pid)]
        assert len(demo) == 1, up.children()
        log = data / "demo.log"
        wait_for(lambda: log.exists() and "What to look at next" in log.read_text(), 120, "the demo to finish")
        wait_for(lambda: demo[0] not in up.children(), 10, "the ended demo child to be reaped")
        assert up.proc.poll() is None
    finally:
        assert up.stop() == 0, up.output()


def test_a_failed_start_unwinds_before_touching_the_wal(tmp_path: Path) -> None:
    """A second server on the first one's data directory and HTTP port stops at the port: it
    replays none of the first one's WAL segments (ports are bound before the WAL is touched)."""
    first, stop = start_collector(tmp_path / "data", segment_max_age_s=30.0)  # keep the segment open
    try:
        assert HttpSpanExporter(endpoint=f"{first.http}/v1/traces").export(spans(["kept"])) == SpanExportResult.SUCCESS
        wal = sorted(p.name for p in (tmp_path / "data" / "wal").iterdir())
        port = int(first.http.rsplit(":", 1)[1])
        config = CollectorConfig(data_dir=tmp_path / "data", grpc_port=0, http_port=port, flush_workers=0)
        second = Server(ServerOptions(config, rollups=False))
        with pytest.raises(PortInUse) as refused:
            asyncio.run(second.start())
        assert refused.value.service == "http" and refused.value.address == f"127.0.0.1:{port}"
        assert sorted(p.name for p in (tmp_path / "data" / "wal").iterdir()) == wal  # nothing replayed
        first.flush()
        assert first.query("SELECT name FROM spans") == [{"name": "kept"}]
    finally:
        stop()


def test_label_writes_are_readable_when_answered_and_share_rotations(tmp_path: Path) -> None:
    c, stop = start_collector(tmp_path / "data", segment_max_age_s=30.0)  # no flush by age meanwhile
    try:

        async def write_all(n: int) -> list[int]:
            async with httpx.AsyncClient(base_url=c.http, timeout=30) as client:
                bodies = [{"trace_id": f"{i:032x}", "project": "p", "score": i} for i in range(n)]
                answers = await asyncio.gather(*(client.post("/api/v1/labels", json=b) for b in bodies))
                return [r.status_code for r in answers]

        assert asyncio.run(write_all(40)) == [200] * 40
        assert c.query("SELECT count(*) AS n, sum(score) AS total FROM labels") == [{"n": 40, "total": sum(range(40))}]
        files = list((tmp_path / "data" / "lake" / "labels").rglob("*.parquet"))
        assert 1 <= len(files) < 40, "concurrent writes share WAL rotations"
    finally:
        stop()


def test_the_http_socket_sends_at_once() -> None:
    """TCP_NODELAY on the listening socket (inherited by every connection): without it each API
    answer written as headers then body waited for the client's delayed ACK, 40 ms."""
    sock = _bind_socket("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock.setblocking(True)
        client = socket.create_connection(sock.getsockname()[:2])
        conn, _ = sock.accept()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.close()
        client.close()
    finally:
        sock.close()
