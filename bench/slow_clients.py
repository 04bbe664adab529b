"""The attacker's slow-client probe (issue 14), against `spanlake up` with its default limits.

Starts `spanlake up --no-dashboard --no-demo` on free loopback ports with a fresh data
directory, opens 50 half-sent HTTP connections (25 with partial headers, 25 with complete
headers and a partial body) and 10 gRPC calls whose message never completes (raw HTTP/2
frames), then reports how many are still open at each checkpoint, and whether `/health`
answers meanwhile.

    python bench/slow_clients.py [--checkpoints 5,15,40]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import httpx

HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EXPORT_PATH = b"/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name: bytes, value: bytes) -> bytes:
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def half_sent_grpc_call() -> bytes:
    headers = b"".join(
        literal(k, v)
        for k, v in (
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", EXPORT_PATH),
            (b":authority", b"collector"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        )
    )
    message_head = b"\x00" + struct.pack(">I", 10_000)  # 10,000 bytes announced, none sent
    return PREFACE + frame(4, 0, 0) + frame(4, 1, 0) + frame(1, 4, 1, headers) + frame(0, 0, 1, message_head)


def still_open(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has not closed (what it sent is read and dropped)."""
    n = 0
    for s in socks:
        s.settimeout(0.01)
        try:
            while s.recv(65536):
                pass
        except TimeoutError:
            n += 1
        except OSError:
            pass
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="5,15,40", help="seconds after opening, comma-separated")
    args = parser.parse_args()
    checkpoints = [float(x) for x in args.checkpoints.split(",")]
    http_port, grpc_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "spanlake.cli.main", "up", "--data-dir", tempfile.mkdtemp(), "--http-port",
           str(http_port), "--grpc-port", str(grpc_port), "--no-dashboard", "--no-demo"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("spanlake up did not start within 60 s") from None
                time.sleep(0.2)
        http = [socket.create_connection(("127.0.0.1", http_port)) for _ in range(50)]
        for i, s in enumerate(http):
            s.sendall(HEAD[:30] if i % 2 else HEAD + b"Content-Length: 5000\r\n\r\n\x0a")
        grpc = [socket.create_connection(("127.0.0.1", grpc_port)) for _ in range(10)]
        for s in grpc:
            s.sendall(half_sent_grpc_call())
        start = time.monotonic()
        for t in checkpoints:
            time.sleep(max(0.0, t - (time.monotonic() - start)))
            health = httpx.get(f"http://127.0.0.1:{http_port}/health", timeout=5).status_code
            counts = f"HTTP {still_open(http)}/50 open, gRPC {still_open(grpc)}/10 open"
            print(f"after {t:>4g} s: {counts}, /health {health}")
        print(f"reproduce: python bench/slow_clients.py --checkpoints {args.checkpoints}")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
