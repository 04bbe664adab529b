"""`kill -9` of a process running the alerts engine while an alert fires: after a restart,
nothing delivered is sent again and nothing undelivered is lost; the notification in flight at
the kill is sent again with the same webhook-id (so the receiver de-duplicates it), and the
firing state survives (no second "firing")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.server.alert_helpers import SECRET, Receiver, verify_standard_webhook, wait_for

ROOT = Path(__file__).resolve().parents[2]
WARN, CRIT, OK = 150.0, 250.0, 50.0


class Child:
    """The engine in a child process, driven over its stdin."""

    def __init__(self, data_dir: Path, url: str, url2: str) -> None:
        env = os.environ | {"TEST_HOOK_SECRET": SECRET}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.server.alert_child", str(data_dir), url, url2],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def ask(self, **cmd):
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(cmd).decode() + "\n")
        self.proc.stdin.flush()
        return orjson.loads(self.proc.stdout.readline())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def receivers():
    hook = Receiver(verify_standard_webhook(SECRET)).start()
    hook2 = Receiver(verify_standard_webhook(SECRET))  # down until the restart
    yield hook, hook2
    hook.stop()
    hook2.stop()


def test_kill_9_while_firing_neither_resends_nor_loses(tmp_path, receivers):
    hook, hook2 = receivers
    data = tmp_path / "data"
    child = Child(data, hook.url, hook2.url)
    try:
        assert child.ask(op="record", t=0, value=WARN) == ["firing"]
        wait_for(lambda: len(hook.accepted()) == 1, what="the firing notification")
        fired = hook.accepted()[0].headers["webhook-id"]
        hook.mode = "once-hang"  # the next request is in flight when the process dies
        assert child.ask(op="record", t=1, value=CRIT) == ["escalated"]
        wait_for(lambda: len(hook.requests) == 2, what="the escalation in flight")
        in_flight = hook.requests[1].headers["webhook-id"]
        pending = child.ask(op="pending")
        assert in_flight in pending and len(pending) == 3  # hook's escalation, hook2's firing and escalation
    finally:
        child.kill()
    hook.release()
    hook.mode = "ok"
    hook2.start()

    child = Child(data, hook.url, hook2.url)
    try:
        wait_for(lambda: len(hook.accepted()) == 2 and len(hook2.accepted()) == 2, what="delivery after restart")
        assert child.ask(op="record", t=2, value=CRIT) == []  # still firing critical: not fired again
        assert child.ask(op="record", t=3, value=OK) == []
        assert child.ask(op="record", t=4, value=OK) == ["resolved"]
        wait_for(lambda: len(hook.accepted()) == 3 and len(hook2.accepted()) == 3, what="the resolve")
        assert child.ask(op="history") == ["firing", "escalated", "resolved"]  # each stored once
        wait_for(lambda: child.ask(op="pending") == [], what="the deliveries recorded")
    finally:
        child.close()

    ids = [r.headers["webhook-id"] for r in hook.requests]
    # the firing notification, delivered before the kill, was not sent again; the one in flight
    # was sent again with the same id
    assert ids.count(fired) == 1 and ids.count(in_flight) == 2 and len(ids) == 4
    assert [r.json["type"] for r in hook.accepted()] == ["budget.firing", "budget.escalated", "budget.resolved"]
    assert hook.accepted()[1].headers["webhook-id"] == in_flight
    # hook2 was down the whole first run: nothing lost, each once, in order
    assert [r.json["type"] for r in hook2.accepted()] == ["budget.firing", "budget.escalated", "budget.resolved"]
    assert len(hook2.requests) == 3 and len({r.headers["webhook-id"] for r in hook2.requests}) == 3
