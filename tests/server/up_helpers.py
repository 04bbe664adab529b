"""`spanlake up` as a real process on free loopback ports, for the tests of the composition."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.collector.test_recovery import spanlake_command
from tests.examples.helpers import clean_env

BANNER_END = "Press Ctrl+C to stop."


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Up:
    """`spanlake up ARGS` (free ports, no dashboard, no demo unless told), output in a file."""

    def __init__(self, data_dir: Path, *args: str, argv: list[str] | None = None, **env: str) -> None:
        self.log = data_dir.parent / f"{data_dir.name}-up-{time.monotonic_ns()}.out"
        self._out = open(self.log, "w")  # noqa: SIM115
        base = argv or [spanlake_command()]
        cmd = [*base, "up", "--data-dir", str(data_dir), *args]
        for flag, value in (("--grpc-port", "0"), ("--http-port", "0"), ("--no-dashboard", None)):
            if flag not in args:
                cmd += [flag] if value is None else [flag, value]
        env.setdefault("SPANLAKE_NO_DEMO", "1")
        self.proc = subprocess.Popen(cmd, env=clean_env(**env), stdout=self._out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text()

    def wait_started(self) -> str:
        wait_for(lambda: BANNER_END in self.output() or self.proc.poll() is not None, 60, "spanlake up")
        assert self.proc.poll() is None, f"spanlake up exited {self.proc.returncode}:\n{self.output()}"
        return self.output()

    def wait_exit(self, timeout_s: float = 60) -> int:
        return self.proc.wait(timeout_s)

    def address(self, name: str) -> str:
        m = re.search(rf"{name}\s+(\S+)", self.output())
        assert m, f"no {name} line in:\n{self.output()}"
        return m.group(1)

    def children(self) -> dict[int, str]:
        """{pid: state letter} of this process's direct children (Z: a zombie)."""
        out = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    out[int(stat.parent.name)] = fields[0]
        return out

    def descendants(self) -> set[int]:
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        found, frontier = set(), {self.proc.pid}
        while frontier:
            frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
            found |= frontier
        return found

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def mapped_files(pid: int) -> str:
    """The shared objects mapped into a process (what native code it has loaded)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/maps").read_text()
    return ""
