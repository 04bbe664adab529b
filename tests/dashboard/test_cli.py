"""`spanlake dashboard` and the dashboard of `spanlake up`, as real processes on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SPANLAKE = str(Path(sys.executable).parent / "spanlake")
WAIT_S = 60


def _line(proc: subprocess.Popen[str], marker: str) -> str:
    deadline = time.monotonic() + WAIT_S
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"no {marker!r} in {seen}")


def _closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


def test_dashboard_command_serves_and_stops(seeded_dir: Path) -> None:
    proc = subprocess.Popen(
        [SPANLAKE, "dashboard", "--data-dir", str(seeded_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _line(proc, "spanlake dashboard:").split()[2]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{url}/trace?trace=abc", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert _closed(url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dashboard_command_refuses_a_busy_port(seeded_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [SPANLAKE, "dashboard", "--data-dir", str(seeded_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode != 0 and "in use" in out.stderr


@pytest.mark.parametrize("mode", ["no-dashboard", "busy-port"])
def test_up_runs_without_its_dashboard(tmp_path: Path, mode: str) -> None:
    """The collector serves whatever happens to the dashboard; the line says why it is off."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        argv = [SPANLAKE, "up", "--data-dir", str(tmp_path), "--grpc-port", "0", "--http-port", "0", "--no-demo"]
        argv += ["--no-dashboard"] if mode == "no-dashboard" else ["--dashboard-port", str(busy.getsockname()[1])]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            line = _line(proc, "dashboard ")
            assert "off" in line and ("--no-dashboard" in line if mode == "no-dashboard" else "in use" in line)
            http = _line(proc, "Send traces:").split("=")[1].strip()
            req = urllib.request.Request(f"{http}/v1/traces", data=b"{}", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:  # an empty export is accepted
                assert r.status == 200
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(30) == 0
