"""Slow and greedy clients are cut off, and everyone else is still served (issue 14, item 5).

Raw sockets play the attacker: half-sent headers, a body dripped a byte at a time, a gRPC
stream whose message never completes, more connections than one address may hold. The
collector runs with short limits so each test takes seconds; every wait is bounded.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.collector.config import CollectorConfig
from spanlake.collector.connection_limits import DEFAULT_HEADER_TIMEOUT_S, grpc_server_options
from tests.collector.test_receivers import exporter_for
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span

HEADER_S = 1.0
BODY_S = 1.5
GRPC_IDLE_S = 1.0
GRPC_AGE_S = 1.0
GRPC_GRACE_S = 1.0
SLACK_S = 3.0  # scheduling on a loaded 2-core machine
PER_CLIENT = 40


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    running, stop = start_collector(
        tmp_path_factory.mktemp("slow") / "data",
        http_header_timeout_s=HEADER_S,
        http_body_timeout_s=BODY_S,
        max_connections_per_client=PER_CLIENT,
        grpc_max_connection_idle_s=GRPC_IDLE_S,
        grpc_max_connection_age_s=GRPC_AGE_S,
        grpc_max_connection_age_grace_s=GRPC_GRACE_S,
    )
    try:
        yield running
    finally:
        stop()


def address(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    return host, int(port)


def connect(endpoint: str) -> socket.socket:
    return socket.create_connection(address(endpoint), timeout=10)


def wait_closed(sock: socket.socket, within_s: float, drip: bytes = b"") -> tuple[float, bytes]:
    """Read (sending one byte of `drip` every 0.2 s meanwhile) until the server closes the
    connection; the seconds that took and everything the server sent. Fails after `within_s`."""
    start = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    i = 0
    while time.monotonic() - start < within_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if i < len(drip):
                try:
                    sock.sendall(drip[i : i + 1])
                except OSError:
                    return time.monotonic() - start, received
                i += 1
            continue
        except ConnectionResetError:
            return time.monotonic() - start, received
        if not chunk:
            return time.monotonic() - start, received
        received += chunk
    pytest.fail(f"the connection was still open after {within_s} s (received {received[:200]!r})")


def post_ok(c: RunningCollector) -> None:
    body = make_request([make_span("served")]).SerializeToString()
    r = httpx.post(f"{c.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200


def sdk_spans(name: str) -> tuple[ReadableSpan, ...]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test").start_as_current_span(name):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"


def test_half_sent_headers_get_408_and_are_closed(limited: RunningCollector) -> None:
    with connect(limited.http) as sock:
        sock.sendall(HEAD[:20])
        took, answer = wait_closed(sock, HEADER_S + SLACK_S, drip=HEAD[20:] + b"X-Slow: " + b"a" * 200)
    assert took >= HEADER_S * 0.9
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert answer.endswith(b"request headers not received within 1 s")


def test_a_silent_connection_is_closed(limited: RunningCollector) -> None:
    with connect(limited.http) as sock:
        took, answer = wait_closed(sock, HEADER_S + SLACK_S)
    assert took >= HEADER_S * 0.9 and answer.startswith(b"HTTP/1.1 408"), answer


def test_a_dripped_body_gets_408_and_is_closed(limited: RunningCollector) -> None:
    with connect(limited.http) as sock:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
        took, answer = wait_closed(sock, BODY_S + SLACK_S, drip=b"\x0a" * 1000)
    assert took >= BODY_S * 0.9
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert answer.endswith(b"request body not received within 1.5 s")


def test_keep_alive_idle_connection_is_closed(limited: RunningCollector) -> None:
    """After a complete request the connection may idle for the keep-alive time, no longer."""
    body = make_request([make_span("kept-alive")]).SerializeToString()
    with connect(limited.http) as sock:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        _, answer = wait_closed(sock, CollectorConfig().http_keep_alive_s + SLACK_S)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer


def test_fifty_slow_clients_are_cut_off_while_others_are_served(limited: RunningCollector) -> None:
    """The probe's 50 half-sent connections (25 partial headers, 25 partial bodies) all end
    within the limits, and real exporters are served while they hang on."""
    socks = [connect(limited.http) for _ in range(50)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(HEAD[:30] if i % 2 else HEAD + b"Content-Length: 5000\r\n\r\n\x0a")
        for transport in ("http", "grpc"):
            exporter = exporter_for(limited, transport)
            try:
                assert exporter.export(sdk_spans(f"during-{transport}")) == SpanExportResult.SUCCESS
            finally:
                exporter.shutdown()
        results: list[float] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(wait_closed(s, BODY_S + 2 * SLACK_S)[0])) for s in socks
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=BODY_S + 3 * SLACK_S)
        assert len(results) == 50, f"{50 - len(results)} connections still open"
    finally:
        for sock in socks:
            sock.close()
    post_ok(limited)


def test_one_address_may_hold_only_so_many_connections(limited: RunningCollector) -> None:
    """Past the cap, a connection is answered 503 at once; those within it are served (here:
    closed by the header timeout, since they send nothing)."""
    socks = [connect(limited.http) for _ in range(PER_CLIENT + 10)]
    try:
        answers = [wait_closed(sock, HEADER_S + SLACK_S) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    refused = [a for took, a in answers if a.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")]
    timed_out = [took for took, a in answers if a.startswith(b"HTTP/1.1 408")]
    assert len(refused) + len(timed_out) == len(socks)
    assert len(refused) >= 10 and len(timed_out) <= PER_CLIENT  # other connections of this process count too
    assert b"retry-after: 1" in refused[0] and b"too many connections from 127.0.0.1 (at most 40)" in refused[0]
    assert all(took < 1.0 for took, a in answers if a in refused)
    post_ok(limited)  # closed connections no longer count


# --- gRPC: raw HTTP/2 frames --------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name (lengths under 127)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


EXPORT_HEADERS = b"".join(
    literal(k, v)
    for k, v in (
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        (":authority", "collector"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    )
)
SETTINGS, SETTINGS_ACK = frame(4, 0, 0), frame(4, 1, 0)


def test_grpc_half_sent_preface_is_closed(limited: RunningCollector) -> None:
    with connect(limited.grpc) as sock:
        sock.sendall(PREFACE[:10])
        took, _ = wait_closed(sock, HEADER_S + SLACK_S, drip=PREFACE[10:])
    assert took >= HEADER_S * 0.9


def test_grpc_idle_connection_is_closed(limited: RunningCollector) -> None:
    with connect(limited.grpc) as sock:
        sock.sendall(PREFACE + SETTINGS + SETTINGS_ACK)
        took, _ = wait_closed(sock, GRPC_IDLE_S + SLACK_S)
    assert took >= min(GRPC_IDLE_S, GRPC_AGE_S) * 0.9


def test_grpc_message_that_never_completes_is_cut_off(limited: RunningCollector) -> None:
    """A call whose message stops half-way holds its connection for at most age + grace."""
    message_head = b"\x00" + struct.pack(">I", 10_000)  # uncompressed, 10,000 bytes announced
    with connect(limited.grpc) as sock:
        sock.sendall(PREFACE + SETTINGS + SETTINGS_ACK + frame(1, 4, 1, EXPORT_HEADERS) + frame(0, 0, 1, message_head))
        drip = b"".join(frame(0, 0, 1, b"\x0a") for _ in range(100))
        took, _ = wait_closed(sock, GRPC_AGE_S + GRPC_GRACE_S + SLACK_S, drip=drip)
    assert took >= GRPC_AGE_S * 0.9


def test_a_grpc_exporter_is_not_disturbed_by_the_age_limit(limited: RunningCollector) -> None:
    """Connections replaced every second (age 1 s, grace 1 s) cost a steady exporter nothing:
    every export of one long-lived exporter over several ages succeeds."""
    exporter = exporter_for(limited, "grpc")
    try:
        start = time.monotonic()
        results = []
        while time.monotonic() - start < 4 * GRPC_AGE_S:
            results.append(exporter.export(sdk_spans("steady")))
            time.sleep(0.2)
    finally:
        exporter.shutdown()
    assert len(results) >= 5 and set(results) == {SpanExportResult.SUCCESS}


def test_limits_are_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CollectorConfig().http_header_timeout_s == DEFAULT_HEADER_TIMEOUT_S
    monkeypatch.setenv("SPANLAKE_HTTP_HEADER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SPANLAKE_MAX_CONNECTIONS_PER_CLIENT", "7")
    monkeypatch.setenv("SPANLAKE_GRPC_MAX_CONNECTION_AGE_S", "90")
    cfg = CollectorConfig().validate()
    limits = cfg.connection_limits()
    assert (limits.header_timeout_s, limits.max_connections_per_client) == (2.5, 7)
    assert ("grpc.max_connection_age_ms", 90_000) in grpc_server_options(limits)
    assert ("grpc.server_handshake_timeout_ms", 2_500) in grpc_server_options(limits)
    with pytest.raises(ValueError, match="http_body_timeout_s must be a positive number of seconds"):
        CollectorConfig(http_body_timeout_s=0).validate()
    with pytest.raises(ValueError, match="max_connections_per_client must be 0"):
        CollectorConfig(max_connections_per_client=-1).validate()
    monkeypatch.setenv("SPANLAKE_HTTP_BODY_TIMEOUT_S", "soon")
    with pytest.raises(ValueError, match="SPANLAKE_HTTP_BODY_TIMEOUT_S must be a number, got 'soon'"):
        CollectorConfig()


def test_limits_reach_a_collector(tmp_path: Path) -> None:
    """Not only the test fixture: a collector built from environment settings applies them."""
    c, stop = start_collector(tmp_path / "data", http_header_timeout_s=0.5)
    try:
        with connect(c.http) as sock:
            _, answer = wait_closed(sock, 0.5 + SLACK_S)
        assert answer.startswith(b"HTTP/1.1 408")
        post_ok(c)
    finally:
        stop()
