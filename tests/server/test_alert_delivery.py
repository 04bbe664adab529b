"""Alerts delivered to real receivers on 127.0.0.1: a Standard Webhooks receiver verifying the
signature as docs/alerts.md tells a user, Slack-, Teams- and PagerDuty-format receivers and an
aiosmtpd SMTP server. Fire, escalate, re-notify, resolve; a receiver down then up; one that
answers 500 forever; one that hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from spanlake.analytics.budgets.definition import BudgetSet, Destination
from spanlake.server.alerts.deliver import DeliveryPolicy
from spanlake.server.alerts.destinations import dedup_key
from spanlake.server.alerts.engine import Alerts
from tests.server.alert_helpers import (
    SECRET,
    Mailbox,
    Receiver,
    budget,
    minutes,
    pagerduty_format,
    reading,
    slack_format,
    teams_format,
    verify_standard_webhook,
    wait_for,
)

OK, WARN, CRIT = 50.0, 150.0, 250.0
FAST = DeliveryPolicy(
    max_attempts=4, backoff_base_s=0.05, backoff_cap_s=0.2, connect_timeout_s=1.0, read_timeout_s=0.5,
    idle_poll_s=0.2,
)  # fmt: skip
DASH = "http://dash.example:8501"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"


class Worst:
    """The caller's worst-traces finder, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, b, since, until) -> list[str]:
        self.calls.append((b.key, since.isoformat(), until.isoformat()))
        return [f"trace{i}" for i in range(1, 8)]  # more than five: the message keeps five


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("TEST_PD_KEY", ROUTING_KEY)


@pytest.fixture
def stack() -> Iterator[list]:
    """Things to stop at the end of a test, last first."""
    started: list = []
    yield started
    for thing in reversed(started):
        thing.stop()


def engine(tmp_path, budgets: BudgetSet, stack: list, policy: DeliveryPolicy = FAST, worst=None) -> Alerts:
    alerts = Alerts(tmp_path / "data", lambda: budgets, DASH, worst or Worst(), policy)
    alerts.start()
    stack.append(alerts)
    return alerts


def test_fire_escalate_renotify_resolve_reach_every_kind_of_destination(tmp_path, env, stack):
    hook = Receiver(verify_standard_webhook(SECRET)).start()
    slack = Receiver(slack_format).start()
    teams = Receiver(teams_format).start()
    pd = Receiver(pagerduty_format(ROUTING_KEY)).start()
    mail = Mailbox().start()
    stack += [hook, slack, teams, pd, mail]
    dests = (
        Destination("hook", "webhook", hook.url, secret_env="TEST_HOOK_SECRET"),
        Destination("chat", "slack", slack.url),
        Destination("teams", "teams", teams.url),
        Destination("pager", "pagerduty", pd.url, routing_key_env="TEST_PD_KEY"),
        Destination("mail", "email", to=("oncall@example.com",), sender="alerts@example.com",
                    smtp=f"127.0.0.1:{mail.port}"),
    )  # fmt: skip
    b = budget(destinations=tuple(d.name for d in dests), renotify=timedelta(minutes=30))
    worst = Worst()
    alerts = engine(tmp_path, BudgetSet((b,), dests), stack, worst=worst)

    script = [(0, WARN), (1, CRIT), (2, CRIT), (10, CRIT), (31, CRIT), (32, OK), (33, OK)]
    kinds = []
    for t, v in script:
        kinds += [e.kind for e in alerts.record([reading(b, minutes(t), v)], minutes(t)) if e.notify]
    assert kinds == ["firing", "escalated", "renotify", "resolved"]
    # the worst traces are looked up once per notification made, not per destination or evaluation
    assert [c[2] for c in worst.calls] == [minutes(t).isoformat() for t in (0, 1, 31, 33)]

    wait_for(lambda: len(hook.accepted()) == 4 and len(slack.accepted()) == 4, what="webhook and slack")
    wait_for(lambda: len(teams.accepted()) == 4 and len(pd.accepted()) == 3 and len(mail.messages) == 4)
    assert all(r.status == 204 for r in hook.requests)  # every signature verified
    assert len(hook.requests) == 4 and len(slack.requests) == 4 and len(pd.requests) == 3

    bodies = [r.json for r in hook.accepted()]
    assert [m["type"] for m in bodies] == ["budget.firing", "budget.escalated", "budget.renotify", "budget.resolved"]
    ids = [r.headers["webhook-id"] for r in hook.accepted()]
    assert len(set(ids)) == 4 and all(i.startswith("msg_") for i in ids)
    first = bodies[0]["data"]
    assert first["figure"] == 150.0 and first["samples"] == 50 and first["severity"] == "warning"
    assert first["threshold"] == {"crossed": "warning", "value": 100.0, "warning": 100.0, "critical": 200.0}
    assert first["window"] == {"since": "2026-12-05T09:45:00Z", "until": "2026-12-05T10:00:00Z"}
    assert first["alert_id"] == "demo/p95@20261205T100000Z" and first["budget"]["key"] == "demo/p95"
    assert first["summary"] == (
        "[FIRING warning] demo/p95: p95_latency 150 ms over 15m, above the warning threshold 100 ms"
    )
    link = urlsplit(first["links"]["traces"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{DASH}/traces"
    assert parse_qsl(link.query) == [
        ("project", "demo"), ("since", "2026-12-05T09:45:00Z"), ("until", "2026-12-05T10:00:00Z"),
        ("task", "answer"), ("sort", "duration"),
    ]  # fmt: skip
    assert first["worst_traces"] == [
        {"trace_id": f"trace{i}", "url": f"{DASH}/trace?project=demo&trace=trace{i}"} for i in range(1, 6)
    ]
    esc = bodies[1]["data"]
    assert (esc["severity"], esc["previous_severity"], esc["figure"]) == ("critical", "warning", 250.0)
    assert esc["threshold"]["value"] == 200.0
    resolved = bodies[3]["data"]
    assert resolved["state"] == "ok" and resolved["severity"] == "critical" and resolved["figure"] == 50.0
    assert resolved["alert_id"] == first["alert_id"]

    assert [r.json["text"] for r in slack.accepted()] == [m["data"]["summary"] for m in bodies]
    cards = [r.json["attachments"][0]["content"] for r in teams.accepted()]
    assert cards[0]["body"][0]["text"] == "FIRING warning: demo/p95"
    assert cards[0]["actions"][0]["url"] == first["links"]["traces"]

    events = [r.json for r in pd.accepted()]
    assert [e["event_action"] for e in events] == ["trigger", "trigger", "resolve"]
    assert {e["dedup_key"] for e in events} == {dedup_key("demo/p95@20261205T100000Z")}
    assert [e["payload"]["severity"] for e in events[:2]] == ["warning", "critical"]
    assert events[0]["links"][0]["href"] == first["links"]["traces"]
    assert len(events[0]["links"]) == 6

    subjects = [m["Subject"] for m in mail.messages]
    assert subjects[0] == first["summary"] and subjects[3].startswith("[RESOLVED] demo/p95")
    assert mail.messages[0]["To"] == "oncall@example.com" and mail.messages[0]["From"] == "alerts@example.com"
    text = mail.messages[0].get_content()
    assert f"{DASH}/trace?project=demo&trace=trace5" in text and "Threshold" in text
    # a receiver has a message before its answer reaches the sender: wait for the records
    wait_for(lambda: not alerts.deliveries(status="pending"), what="every delivery recorded")
    mail_ids = [d.id for d in alerts.deliveries(status="delivered", destination="mail")][::-1]
    assert [m["Message-ID"] for m in mail.messages] == [f"<{i}@spanlake>" for i in mail_ids]
    done = alerts.deliveries(status="delivered")
    assert len(done) == 4 + 4 + 4 + 3 + 4
    assert not alerts.deliveries(status="pending") and not alerts.deliveries(status="failed")


def webhook_budget(*receivers: tuple[str, Receiver]) -> tuple[BudgetSet, object]:
    dests = tuple(Destination(name, "webhook", r.url, secret_env="TEST_HOOK_SECRET") for name, r in receivers)
    b = budget(destinations=tuple(d.name for d in dests))
    return BudgetSet((b,), dests), b


def fire_escalate_resolve(alerts: Alerts, b) -> None:
    for t, v in [(0, WARN), (1, CRIT), (2, OK), (3, OK)]:
        alerts.record([reading(b, minutes(t), v)], minutes(t))


def test_a_receiver_down_for_a_while_gets_each_notification_once_in_order(tmp_path, env, stack):
    hook = Receiver(verify_standard_webhook(SECRET))  # not listening yet: connections are refused
    stack.append(hook)
    budgets, b = webhook_budget(("hook", hook))
    policy = DeliveryPolicy(max_attempts=1000, backoff_base_s=0.05, backoff_cap_s=0.2, read_timeout_s=1.0)
    alerts = engine(tmp_path, budgets, stack, policy)
    fire_escalate_resolve(alerts, b)

    head = wait_for(lambda: [d for d in alerts.deliveries(status="pending") if d.attempts >= 3], what="3 attempts")[0]
    assert head.kind == "firing" and "ConnectError" in head.last_error and head.next_attempt_at is not None
    waiting = alerts.deliveries(status="pending")
    assert [d.kind for d in waiting] == ["firing", "escalated", "resolved"]
    assert [d.attempts for d in waiting[1:]] == [0, 0]  # in order: the later ones wait their turn

    hook.start()
    wait_for(lambda: len(alerts.deliveries(status="delivered")) == 3, what="delivery once the receiver is up")
    got = hook.accepted()
    assert [r.json["type"] for r in got] == ["budget.firing", "budget.escalated", "budget.resolved"]
    assert len(hook.requests) == 3 and len({r.headers["webhook-id"] for r in got}) == 3
    first = alerts.deliveries(status="delivered", destination="hook")[-1]
    assert first.kind == "firing" and first.attempts >= 4 and first.id == got[0].headers["webhook-id"]


def test_a_receiver_answering_500_forever_is_recorded_failed_and_the_others_still_get_theirs(tmp_path, env, stack):
    bad = Receiver(verify_standard_webhook(SECRET)).start()
    bad.mode = "fail"
    good = Receiver(verify_standard_webhook(SECRET)).start()
    stack += [bad, good]
    budgets, b = webhook_budget(("bad", bad), ("good", good))
    alerts = engine(tmp_path, budgets, stack)
    fire_escalate_resolve(alerts, b)

    wait_for(lambda: len(good.accepted()) == 3, what="the good receiver")
    failed = wait_for(lambda: len(alerts.deliveries(status="failed")) == 3 and alerts.deliveries(status="failed"))
    assert {d.destination for d in failed} == {"bad"}
    assert [d.kind for d in failed] == ["resolved", "escalated", "firing"]  # newest first
    for d in failed:
        assert d.attempts == FAST.max_attempts
        assert (
            d.last_error
            == f'HTTP 500 from http://127.0.0.1:{bad.port}: {{"error":"refused"}} (gave up after 4 attempts)'
        )
    # every attempt of one notification carried the same webhook-id
    ids = [r.headers["webhook-id"] for r in bad.requests]
    assert len(ids) == 12 and len(set(ids)) == 3 and all(ids.count(i) == 4 for i in set(ids))
    assert ids[:4] == [failed[2].id] * 4  # in order: the firing one's four attempts first
    wait_for(lambda: not alerts.deliveries(status="pending"), what="the good receiver's records")


def test_a_4xx_is_not_retried(tmp_path, env, stack, monkeypatch):
    hook = Receiver(verify_standard_webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")).start()  # another secret
    stack.append(hook)
    budgets, b = webhook_budget(("hook", hook))
    alerts = engine(tmp_path, budgets, stack)
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
    (d,) = wait_for(lambda: alerts.deliveries(status="failed"), what="the refused notification")
    assert d.attempts == 1 and d.last_error.startswith("HTTP 401 from") and len(hook.requests) == 1


def test_a_missing_secret_fails_at_once_with_a_clear_error(tmp_path, env, stack, monkeypatch):
    monkeypatch.delenv("TEST_HOOK_SECRET")
    hook = Receiver(verify_standard_webhook(SECRET)).start()
    stack.append(hook)
    budgets, b = webhook_budget(("hook", hook))
    alerts = engine(tmp_path, budgets, stack)
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
    (d,) = wait_for(lambda: alerts.deliveries(status="failed"), what="the failed notification")
    assert "secret_env names TEST_HOOK_SECRET, which is not set" in d.last_error and hook.requests == []


def test_an_unsigned_webhook_carries_the_id_and_timestamp_but_no_signature(tmp_path, stack):
    hook = Receiver(lambda body, headers: 200).start()
    stack.append(hook)
    dest = Destination("hook", "webhook", hook.url)
    b = budget(destinations=("hook",))
    alerts = engine(tmp_path, BudgetSet((b,), (dest,)), stack)
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
    (r,) = wait_for(hook.accepted, what="the notification")
    assert r.headers["webhook-id"].startswith("msg_") and abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
    assert "webhook-signature" not in r.headers and r.json["type"] == "budget.firing"


def test_a_receiver_that_hangs_times_out_and_holds_up_no_one_else(tmp_path, env, stack):
    slow = Receiver(verify_standard_webhook(SECRET)).start()
    slow.mode = "hang"
    good = Receiver(verify_standard_webhook(SECRET)).start()
    stack += [slow, good]
    budgets, b = webhook_budget(("slow", slow), ("good", good))
    policy = DeliveryPolicy(max_attempts=2, backoff_base_s=0.05, backoff_cap_s=0.1, read_timeout_s=0.8)
    alerts = engine(tmp_path, budgets, stack, policy)

    began = time.monotonic()
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
    assert time.monotonic() - began < 0.8  # recording never waits for a receiver
    wait_for(lambda: slow.requests, what="the hanging request")
    wait_for(good.accepted, what="the good receiver")
    assert alerts.deliveries(status="pending", destination="slow")  # still trying while the other got it
    (failed,) = wait_for(lambda: alerts.deliveries(status="failed"), what="the timed-out notification")
    assert failed.destination == "slow" and failed.attempts == 2
    assert failed.last_error == (
        f"timed out awaiting the answer (0.8 s) at http://127.0.0.1:{slow.port} (gave up after 2 attempts)"
    )
    assert len(good.accepted()) == 1 and len(slow.requests) == 2
