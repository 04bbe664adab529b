"""The alerts' files (server.alerts.store) at each crash window a `kill -9` can hit: before the
commit point, between it and the events log, between delivered/ and pending/; a torn last
line; rotation; what readers in another process see."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import orjson
import pytest

from spanlake.server.alerts import store as store_module
from spanlake.server.alerts.state import step
from spanlake.server.alerts.store import AlertStore, Delivery
from tests.server.alert_helpers import budget, minutes, reading

CRIT = 250.0


def batch_of(s: AlertStore, t: float, dest: str = "hook", n: int = 1):
    """The states, events and deliveries of one evaluation at minute `t` (the budget fires at its first)."""
    b = budget(name=f"b{int(t)}")
    state, events = step(None, reading(b, minutes(t), CRIT), minutes(t))
    batch = s.next_batch()
    made = datetime.now(UTC)
    ds = [Delivery(f"msg_{int(t)}_{i}", dest, b.key, "firing", batch, i, made, {"n": i}) for i in range(n)]
    return {b.key: state}, events, ds


def committed(s: AlertStore, t: float, **kw) -> list[Delivery]:
    states, events, ds = batch_of(s, t, **kw)
    s.commit(states, events, ds)
    return ds


def test_commit_writes_states_events_and_pending_notifications(tmp_path):
    s = AlertStore(tmp_path)
    s.recover()
    ds = committed(s, 0, n=2)
    assert s.committed_batch() == 1
    assert s.states()["demo/b0"].status == "firing"
    assert [e["kind"] for e in s.history()] == ["firing"] and s.history()[0]["batch"] == 1
    assert [d.id for d in s.deliveries(status="pending")] == [d.id for d in ds]
    assert s.next_pending("hook") == ds[0]
    # another process reading the same folder (the CLI) sees the same
    other = AlertStore(tmp_path)
    assert other.committed_batch() == 1 and other.states() == s.states()
    assert [d.id for d in other.deliveries()] == [d.id for d in ds]


def test_notifications_of_a_batch_that_never_committed_are_never_sent(tmp_path, monkeypatch):
    s = AlertStore(tmp_path)
    s.recover()
    first = committed(s, 0)
    states, events, ds = batch_of(s, 1)

    def crash(doc):
        raise OSError("killed before the commit point")

    monkeypatch.setattr(s._state, "write", crash)
    with pytest.raises(OSError):
        s.commit(states, events, ds)
    assert (tmp_path / "outbox" / "pending" / "hook" / ds[0].file_name).exists()  # written, not committed
    assert s.committed_batch() == 1
    assert s.next_pending("hook") == first[0]
    s.delivered(first[0], datetime.now(UTC))
    assert s.next_pending("hook") is None  # the uncommitted one is not taken
    assert [d.id for d in s.deliveries()] == [first[0].id]

    restarted = AlertStore(tmp_path)
    restarted.recover()
    assert not (tmp_path / "outbox" / "pending" / "hook" / ds[0].file_name).exists()
    assert "demo/b1" not in restarted.states() and [e["kind"] for e in restarted.history()] == ["firing"]
    again = committed(restarted, 2)
    assert again[0].batch == 2 and restarted.next_pending("hook") == again[0]


def test_events_lost_after_the_commit_point_are_appended_once_on_recovery(tmp_path, monkeypatch):
    s = AlertStore(tmp_path)
    s.recover()
    committed(s, 0)
    states, events, ds = batch_of(s, 1)

    def crash(logged):
        raise OSError("killed after the commit point")

    monkeypatch.setattr(s, "_append_events", crash)
    with pytest.raises(OSError):
        s.commit(states, events, ds)
    assert [e["key"] for e in AlertStore(tmp_path).history()] == ["demo/b0"]
    for _ in range(2):  # recovery is idempotent
        restarted = AlertStore(tmp_path)
        restarted.recover()
        assert [(e["key"], e["batch"]) for e in restarted.history()] == [("demo/b1", 2), ("demo/b0", 1)]
    # the commit stands: its notification is sent after the first batch's
    assert [d.id for d in restarted.deliveries(status="pending")] == ["msg_0_0", ds[0].id]


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    s = AlertStore(tmp_path)
    s.recover()
    committed(s, 0)
    with open(s.events_path, "ab") as f:
        f.write(b'{"kind": "firing", "key": "dem')  # a write cut short
    assert [e["key"] for e in s.history()] == ["demo/b0"]
    restarted = AlertStore(tmp_path)
    restarted.recover()
    committed(restarted, 1)
    assert [e["key"] for e in restarted.history()] == ["demo/b1", "demo/b0"]
    lines = s.events_path.read_bytes().splitlines()
    assert len(lines) == 3 and orjson.loads(lines[2])["key"] == "demo/b1"


def test_a_delivered_notification_left_in_pending_by_a_crash_is_not_sent_again(tmp_path):
    s = AlertStore(tmp_path)
    s.recover()
    (d,) = committed(s, 0)
    done = s.delivered(d, datetime.now(UTC))
    assert done.status == "delivered" and done.attempts == 1
    pending = tmp_path / "outbox" / "pending" / "hook" / d.file_name
    shutil.copy(tmp_path / "outbox" / "delivered" / "hook" / d.file_name, pending)  # the crash window
    restarted = AlertStore(tmp_path)
    restarted.recover()
    assert not pending.exists() and restarted.next_pending("hook") is None
    assert [(x.id, x.status) for x in restarted.deliveries()] == [(d.id, "delivered")]


def test_attempts_failures_and_the_kept_history_of_deliveries(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "KEEP_DONE", 2)
    s = AlertStore(tmp_path)
    s.recover()
    ds = committed(s, 0, n=4)
    at = datetime(2026, 12, 5, 11, tzinfo=UTC)
    tried = s.attempted(ds[0], at, "HTTP 503 from http://x", at.replace(minute=1))
    assert s.next_pending("hook") == tried and tried.attempts == 1 and tried.last_error == "HTTP 503 from http://x"
    s.failed(tried, at.replace(minute=2), "HTTP 503 from http://x (gave up after 2 attempts)")
    for d in ds[1:]:
        s.delivered(d, at)
    (failed,) = s.deliveries(status="failed")
    assert failed.attempts == 2 and failed.last_error.endswith("(gave up after 2 attempts)")
    assert failed.done_at == at.replace(minute=2)
    assert [d.n for d in s.deliveries(status="delivered")] == [3, 2]  # newest first, the last KEEP_DONE kept
    assert s.deliveries(status="pending") == []


def test_rotation_keeps_one_old_file_and_recovery_reads_it(tmp_path, monkeypatch):
    s = AlertStore(tmp_path)
    s.recover()
    committed(s, 0)
    line = s.events_path.stat().st_size
    monkeypatch.setattr(store_module, "ROTATE_BYTES", line + line // 2)  # every second append rotates
    committed(s, 1)
    assert not s.events_path.exists() and s.old_events_path.exists()
    committed(s, 2)
    assert [e["key"] for e in s.history()] == ["demo/b2", "demo/b1", "demo/b0"]  # across both files
    restarted = AlertStore(tmp_path)
    restarted.recover()  # the last batch is logged: nothing appended again
    assert [e["key"] for e in restarted.history()] == ["demo/b2", "demo/b1", "demo/b0"]
    committed(restarted, 3)  # rotates again: the file of b0 and b1 is gone
    assert [e["key"] for e in restarted.history()] == ["demo/b3", "demo/b2"]
    monkeypatch.setattr(store_module, "ROTATE_BYTES", 10**9)
    restarted = AlertStore(tmp_path)
    restarted.recover()  # the last batch is in the old file (the current one is absent): nothing appended
    assert not restarted.events_path.exists()
    assert [e["batch"] for e in restarted.history()] == [4, 3]
