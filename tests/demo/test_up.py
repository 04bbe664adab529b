"""`spanlake up` on a first start with an empty lake runs the demo once, in the background,
into project `demo`; not again on the next start, and not with SPANLAKE_NO_DEMO. It declares the
demo's evaluators, whose judge (the demo's fake server) answers at the file's base_url while
that `spanlake up` runs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from spanlake.storage.reader import Lake
from tests.examples.helpers import ROOT, clean_env

BANNER_END = "Press Ctrl+C to stop."
DEMO_LINE = "demo: the lake was empty"


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Up:
    """`spanlake up` on free ports, without the dashboard, its output in a file."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.log = data_dir.parent / f"{data_dir.name}-up-{time.monotonic_ns()}.out"
        self._out = open(self.log, "w")  # noqa: SIM115
        cmd = [sys.executable, "-m", "spanlake.cli.main", "up", "--data-dir", str(data_dir), "--grpc-port", "0",
               "--http-port", "0", "--no-dashboard"]  # fmt: skip
        env = clean_env(SPANLAKE_DEMO_TICKETS="8", SPANLAKE_DEMO_TIME_SCALE="0.2", **env)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def wait_started(self) -> str:
        wait_for(lambda: BANNER_END in self.output() or self.proc.poll() is not None, 60, "spanlake up")
        assert self.proc.poll() is None, f"spanlake up exited {self.proc.returncode}:\n{self.output()}"
        return self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def test_first_start_runs_the_demo_once(tmp_path: Path) -> None:
    fresh, opted_out = tmp_path / "fresh", tmp_path / "opted-out"
    first, off = Up(fresh), Up(opted_out, SPANLAKE_NO_DEMO="1")
    try:
        assert DEMO_LINE not in off.wait_started(), off.output()
        off.stop()
        assert DEMO_LINE in first.wait_started(), first.output()
        demo_log = fresh / "demo.log"
        wait_for(lambda: demo_log.exists() and "What to look at next" in demo_log.read_text(), 120, "the demo")
        found = re.search(r'^base_url = "(http://127\.0\.0\.1:\d+/v1)"$', (fresh / "evaluators.toml").read_text(), re.M)
        assert found is not None, (fresh / "evaluators.toml").read_text()
        judge_url = found.group(1)
        ask = {"model": "judge-grounded", "messages": [{"role": "user", "content": "Documents:\na b\nAnswer:\na b"}]}
        answer = httpx.post(f"{judge_url}/chat/completions", json=ask, timeout=10)  # after the tickets: still served
        assert answer.status_code == 200, answer.text
    finally:
        first.stop()
        off.stop()
    assert not (opted_out / "demo.log").exists() and not (opted_out / "evaluators.toml").exists()
    try:
        httpx.post(f"{judge_url}/chat/completions", json=ask, timeout=5)
        raise AssertionError("the demo's judge still answers after `spanlake up` stopped")
    except httpx.TransportError:
        pass
    why = f"up:\n{first.output()}\ndemo.log:\n{demo_log.read_text()}"
    assert "spanlake demo: 8 support tickets answered" in demo_log.read_text(), why
    assert "dashboard      not running (spanlake up --no-dashboard)" in demo_log.read_text(), why
    assert "127.0.0.1:8501" not in demo_log.read_text(), "no link to a dashboard that is not running"
    lake = Lake(fresh)
    projects = {r["project"] for r in lake.query("SELECT DISTINCT project FROM spans").to_pylist()}
    assert "demo" in projects and projects <= {"demo", "demo-evaluators"}, why  # the judge's own calls
    assert lake.query("SELECT count(*) AS n FROM spans WHERE category = 'task'").to_pylist() == [{"n": 8}], why
    assert lake.query("SELECT count(*) AS n FROM labels WHERE project = 'demo'").to_pylist()[0]["n"] > 0

    again = Up(fresh)  # the lake is not empty any more, and the demo ran once: nothing new
    try:
        assert DEMO_LINE not in again.wait_started(), again.output()
    finally:
        again.stop()
    assert lake.query("SELECT count(*) AS n FROM spans WHERE category = 'task'").to_pylist() == [{"n": 8}]
