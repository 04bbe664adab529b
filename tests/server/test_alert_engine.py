"""The engine (server.alerts.engine.Alerts): one per data directory, states that survive a
restart, a budget removed while firing, and a worst-traces finder or budgets file that fails."""

from __future__ import annotations

from datetime import timedelta

import pytest

from spanlake.analytics.budgets.definition import BudgetError, BudgetSet, Destination
from spanlake.server.alerts.deliver import DeliveryPolicy
from spanlake.server.alerts.engine import Alerts, AlertsBusy
from tests.server.alert_helpers import Receiver, budget, minutes, reading, wait_for

OK, CRIT = 50.0, 250.0
FAST = DeliveryPolicy(max_attempts=3, backoff_base_s=0.05, backoff_cap_s=0.1, read_timeout_s=1.0)


def no_worst(b, since, until):
    raise AssertionError("not asked when no notification is made")


@pytest.fixture
def hook():
    r = Receiver(lambda body, headers: 200).start()
    yield r
    r.stop()


def test_one_engine_per_data_directory(tmp_path):
    first = Alerts(tmp_path, lambda: BudgetSet(), None, no_worst)
    with pytest.raises(AlertsBusy, match="another process runs the alerts"):
        Alerts(tmp_path, lambda: BudgetSet(), None, no_worst)
    first.stop()
    Alerts(tmp_path, lambda: BudgetSet(), None, no_worst).stop()


def test_states_survive_a_restart_and_no_destinations_means_no_worst_lookup(tmp_path):
    b = budget(for_=timedelta(minutes=2))
    alerts = Alerts(tmp_path, lambda: BudgetSet((b,)), None, no_worst)
    for t in range(3):
        alerts.record([reading(b, minutes(t), CRIT)], minutes(t))
    assert alerts.states()["demo/p95"].status == "firing"
    assert alerts.deliveries() == []
    alerts.stop()
    again = Alerts(tmp_path, lambda: BudgetSet((b,)), None, no_worst)
    assert again.states() == alerts.states()
    assert [e["kind"] for e in again.history("demo/p95")] == ["firing", "pending"]
    assert again.record([reading(b, minutes(3), CRIT)], minutes(3)) == []  # not fired twice
    again.stop()


def test_a_budget_removed_while_firing_is_resolved_at_its_destinations(tmp_path, hook):
    dest = Destination("hook", "webhook", hook.url)
    b = budget(destinations=("hook",))
    declared = [BudgetSet((b,), (dest,))]
    alerts = Alerts(tmp_path, lambda: declared[0], "http://dash:8501", lambda *_: ["t1"], FAST)
    alerts.start()
    try:
        alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
        declared[0] = BudgetSet((), (dest,))
        events = alerts.record([], minutes(1))
        assert [(e.kind, e.notify) for e in events] == [("removed", True)]
        assert "demo/p95" not in alerts.states()
        wait_for(lambda: len(hook.accepted()) == 2, what="the firing and the resolve")
        gone = hook.accepted()[1].json
        assert gone["type"] == "budget.removed" and gone["data"]["summary"] == (
            "[RESOLVED] demo/p95: the budget is no longer declared"
        )
        assert gone["data"]["alert_id"] == hook.accepted()[0].json["data"]["alert_id"]
    finally:
        alerts.stop()


def test_an_unreadable_budgets_file_removes_nothing(tmp_path):
    b = budget()
    broken = [False]

    def budgets() -> BudgetSet:
        if broken[0]:
            raise BudgetError("budgets.toml: line 3: not valid TOML")
        return BudgetSet((b,))

    alerts = Alerts(tmp_path, budgets, None, no_worst)
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
    broken[0] = True
    assert alerts.record([], minutes(1)) == []
    assert alerts.states()["demo/p95"].status == "firing"
    alerts.stop()


def test_a_failing_worst_traces_finder_does_not_stop_the_notification(tmp_path, hook):
    def worst(b, since, until):
        raise RuntimeError("the lake is being compacted")

    dest = Destination("hook", "webhook", hook.url)
    b = budget(destinations=("hook",))
    alerts = Alerts(tmp_path, lambda: BudgetSet((b,), (dest,)), "http://dash:8501", worst, FAST)
    alerts.start()
    try:
        alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
        (got,) = wait_for(hook.accepted, what="the notification")
        assert got.json["data"]["worst_traces"] == [] and got.json["data"]["links"]["traces"].startswith("http://dash")
    finally:
        alerts.stop()


def test_no_dashboard_means_no_links(tmp_path, hook):
    dest = Destination("hook", "webhook", hook.url)
    b = budget(destinations=("hook",))
    alerts = Alerts(tmp_path, lambda: BudgetSet((b,), (dest,)), "off (--no-dashboard)", lambda *_: ["t9"], FAST)
    alerts.start()
    try:
        alerts.record([reading(b, minutes(0), CRIT)], minutes(0))
        (got,) = wait_for(hook.accepted, what="the notification")
        data = got.json["data"]
        assert data["links"] == {"traces": None} and data["worst_traces"] == [{"trace_id": "t9", "url": None}]
    finally:
        alerts.stop()


def test_a_destination_no_longer_declared_is_recorded_failed(tmp_path, hook):
    dest = Destination("hook", "webhook", hook.url)
    b = budget(destinations=("hook",))
    declared = [BudgetSet((b,), (dest,))]
    alerts = Alerts(tmp_path, lambda: declared[0], None, lambda *_: [], FAST)
    alerts.record([reading(b, minutes(0), CRIT)], minutes(0))  # before start: it waits in the outbox
    declared[0] = BudgetSet((budget(),), ())
    alerts.start()
    try:
        (d,) = wait_for(lambda: alerts.deliveries(status="failed"), what="the failed delivery")
        assert d.last_error == "destination 'hook' is no longer declared" and d.attempts == 0
        assert hook.requests == []
    finally:
        alerts.stop()
