"""The alert state machine (server.alerts.state.step) on hand-made reading sequences: pending
→ firing after `for`, escalation at once, de-escalation and resolve only after the lower level
held for max(for, 2 evaluations), re-notify timing, no data, and invariants over random
sequences."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from spanlake.analytics.budgets.definition import Baseline
from spanlake.server.alerts.state import AlertState, Event, removed, step
from tests.server.alert_helpers import budget, minutes, reading

OK, WARN, CRIT = 50.0, 150.0, 250.0  # the helper budget: warning above 100 ms, critical above 200


def run(b, values, every=1.0, start=0.0, state=None):
    """Step through `values` (None: no data), one reading every `every` minutes; returns the
    final state and [(minute, kind, notify, severity)] of every event."""
    log = []
    for i, v in enumerate(values):
        t = start + i * every
        samples = 0 if v is None else 50
        state, events = step(state, reading(b, minutes(t), v, samples), minutes(t))
        log += [(t, e.kind, e.notify, e.severity) for e in events]
    return state, log


def notified(log):
    return [(t, kind, sev) for t, kind, notify, sev in log if notify]


def test_ok_readings_cause_no_events_and_keep_the_last_figure():
    s, log = run(budget(), [OK, OK, 60.0])
    assert log == []
    assert s.status == "ok" and not s.alerting
    assert s.last.figure == 60.0 and s.last.level == "ok" and s.last.at == minutes(2)
    assert s.last.warning_at == 100.0 and s.last.critical_at == 200.0


def test_pending_then_firing_after_for():
    b = budget(for_=timedelta(minutes=5))
    s, log = run(b, [OK, WARN, WARN, WARN, WARN, WARN, WARN])
    # breach first seen at minute 1; it has lasted 5 minutes at minute 6
    assert log == [(1, "pending", False, "warning"), (6, "firing", True, "warning")]
    assert s.status == "firing" and s.severity == "warning"
    assert s.episode == "demo/p95@20261205T100600Z" and s.episode_since == minutes(6)


def test_pending_fires_at_the_level_of_the_reading_that_fires_it():
    b = budget(for_=timedelta(minutes=2))
    _, log = run(b, [CRIT, WARN, CRIT])
    assert log == [(0, "pending", False, "critical"), (2, "firing", True, "critical")]
    _, log = run(b, [CRIT, CRIT, WARN])
    assert log[-1] == (2, "firing", True, "warning")


def test_a_breach_that_ends_before_for_never_fires_and_restarts_the_clock():
    b = budget(for_=timedelta(minutes=3))
    _, log = run(b, [WARN, WARN, OK, WARN, WARN, WARN, WARN])
    assert log == [
        (0, "pending", False, "warning"),
        (2, "ok", False, None),
        (3, "pending", False, "warning"),
        (6, "firing", True, "warning"),  # 3 minutes after minute 3, not after minute 0
    ]


def test_for_zero_fires_at_the_first_breach():
    _, log = run(budget(), [OK, CRIT])
    assert log == [(1, "firing", True, "critical")]


def test_escalation_is_notified_at_once_and_de_escalation_after_the_hold():
    b = budget(for_=timedelta(minutes=3))
    #         0     1     2     3     4     5     6     7     8     9
    values = [WARN, WARN, WARN, WARN, CRIT, WARN, WARN, CRIT, WARN, WARN, WARN, WARN]
    s, log = run(b, values)
    assert notified(log) == [
        (3, "firing", "warning"),
        (4, "escalated", "critical"),
        # warning from 5 (critical again at 7 restarts the hold), then from 8: 3 minutes later is 11
        (11, "deescalated", "warning"),
    ]
    assert s.severity == "warning" and s.status == "firing"


def test_de_escalation_needs_two_evaluations_when_for_is_zero():
    _, log = run(budget(), [CRIT, WARN, WARN])
    assert notified(log) == [(0, "firing", "critical"), (2, "deescalated", "warning")]


def test_escalated_and_deescalated_events_name_the_previous_severity():
    b = budget()
    s, _ = run(b, [WARN])
    s, events = step(s, reading(b, minutes(1), CRIT), minutes(1))
    assert [(e.kind, e.previous, e.severity) for e in events] == [("escalated", "warning", "critical")]
    s, _ = step(s, reading(b, minutes(2), WARN), minutes(2))
    s, events = step(s, reading(b, minutes(3), WARN), minutes(3))
    assert [(e.kind, e.previous, e.severity) for e in events] == [("deescalated", "critical", "warning")]


def test_resolve_waits_for_two_ok_evaluations_when_for_is_zero():
    b = budget()
    s, log = run(b, [WARN, OK, WARN, OK, OK])
    assert notified(log) == [(0, "firing", "warning"), (4, "resolved", "warning")]
    assert s.status == "ok" and s.episode is None and s.severity is None


def test_resolve_waits_for_max_of_for_and_two_evaluations():
    b = budget(for_=timedelta(minutes=5))
    _, log = run(b, [WARN] * 6 + [OK] * 7)
    # fired at 5; ok from 6; 5 minutes of ok at minute 11
    assert notified(log) == [(5, "firing", "warning"), (11, "resolved", "warning")]
    # with readings 10 minutes apart, two ok readings are needed even though 5 minutes pass at once
    _, log = run(b, [WARN, WARN, OK, OK], every=10)
    assert notified(log) == [(10, "firing", "warning"), (30, "resolved", "warning")]


def test_a_flapping_figure_fires_once_and_never_resolves_until_it_settles():
    b = budget()
    _, log = run(b, [WARN, OK] * 20 + [OK])
    assert notified(log) == [(0, "firing", "warning"), (40, "resolved", "warning")]
    # around the critical threshold: escalated once, no de-escalation while it keeps coming back
    _, log = run(b, [WARN] + [CRIT, WARN] * 10)
    assert notified(log) == [(0, "firing", "warning"), (1, "escalated", "critical")]


def test_ok_readings_while_critical_de_escalate_before_resolving_when_warning_came_first():
    b = budget(for_=timedelta(minutes=2))
    _, log = run(b, [CRIT, CRIT, CRIT, WARN, OK, OK, OK])
    # fired at 2; below critical from 3: held 2 minutes at 5; ok from 4: held at 6
    assert notified(log) == [(2, "firing", "critical"), (5, "deescalated", "warning"), (6, "resolved", "warning")]


def test_renotify_every_interval_while_breached():
    b = budget(renotify=timedelta(hours=1))
    _, log = run(b, [WARN] * 14, every=10)  # minutes 0..130
    assert notified(log) == [(0, "firing", "warning"), (60, "renotify", "warning"), (120, "renotify", "warning")]


def test_escalation_resets_the_renotify_clock():
    b = budget(renotify=timedelta(hours=1))
    _, log = run(b, [WARN, WARN, WARN, CRIT, CRIT, CRIT, CRIT, CRIT, CRIT, CRIT, CRIT], every=10)
    assert notified(log) == [(0, "firing", "warning"), (30, "escalated", "critical"), (90, "renotify", "critical")]


def test_renotify_zero_never_reminds():
    _, log = run(budget(renotify=timedelta(0)), [WARN] * 30, every=10)
    assert notified(log) == [(0, "firing", "warning")]


def test_no_renotify_while_the_figure_is_back_within_the_thresholds():
    b = budget(renotify=timedelta(minutes=10), for_=timedelta(minutes=30))
    s, log = run(b, [WARN] * 4 + [OK] * 3, every=10)  # fires at 30; ok from 40 (the hold lasts to 70)
    assert notified(log) == [(30, "firing", "warning")]
    assert s.status == "firing" and s.ok_count == 3


def test_no_data_from_ok_and_pending_is_recorded_not_notified():
    b = budget(for_=timedelta(minutes=5))
    s, log = run(b, [OK, None, None, OK, WARN, None, WARN])
    assert log == [
        (1, "no_data", False, None),
        (3, "ok", False, None),
        (4, "pending", False, "warning"),
        (5, "no_data", False, None),  # the pending breach is dropped
        (6, "pending", False, "warning"),  # and starts over
    ]
    assert s.status == "pending" and s.breach_since == minutes(6)


def test_too_few_samples_is_no_data():
    b = budget(min_samples=5)
    s, events = step(None, reading(b, minutes(0), 900.0, samples=4), minutes(0))
    assert s.status == "no_data" and [e.kind for e in events] == ["no_data"]


def test_firing_into_no_data_notifies_once_and_keeps_the_episode_open():
    b = budget(renotify=timedelta(minutes=30))
    s, log = run(b, [CRIT, None, None, None, None, None, None], every=10)
    assert notified(log) == [(0, "firing", "critical"), (10, "no_data", "critical")]
    assert s.status == "no_data" and s.alerting and s.severity == "critical"
    assert s.episode == "demo/p95@20261205T100000Z"


def test_data_back_breached_continues_the_episode_without_a_new_firing():
    b = budget(renotify=timedelta(minutes=30))
    s, log = run(b, [CRIT, None, CRIT, CRIT, CRIT, CRIT], every=10)
    assert [(t, k) for t, k, *_ in log] == [(0, "firing"), (10, "no_data"), (20, "data_back"), (40, "renotify")]
    assert s.episode == "demo/p95@20261205T100000Z"  # the same episode throughout


def test_data_back_ok_resolves_after_the_hold_with_the_same_episode():
    b = budget()
    s = None
    kinds = []
    for t, v in enumerate([CRIT, None, OK, OK]):
        s, events = step(s, reading(b, minutes(t), v, 0 if v is None else 50), minutes(t))
        kinds += [(e.kind, e.notify, e.episode) for e in events]
    ep = "demo/p95@20261205T100000Z"
    assert kinds == [
        ("firing", True, ep),
        ("no_data", True, ep),
        ("data_back", False, ep),
        ("resolved", True, ep),
    ]
    assert s.status == "ok" and not s.alerting


def test_traffic_with_zero_tasks_is_a_breach_not_no_data():
    b = budget(metric="traffic", warning=10.0, critical=1.0, min_samples=5, task=None)
    s, events = step(None, reading(b, minutes(0), 0.0, samples=0), minutes(0))
    assert [(e.kind, e.severity) for e in events] == [("firing", "critical")]
    assert s.last.figure == 0.0


def test_relative_budget_keeps_the_baseline_figure():
    b = budget(warning=20.0, critical=50.0, baseline=Baseline.parse("7d ago"))
    # baseline 100 ms: warning above 120, critical above 150
    s, events = step(None, reading(b, minutes(0), 130.0, base=100.0), minutes(0))
    assert [(e.kind, e.severity) for e in events] == [("firing", "warning")]
    assert s.last.baseline == 100.0 and s.last.warning_at == 120.0 and s.last.critical_at == 150.0


def test_state_round_trips_through_its_dict():
    b = budget(for_=timedelta(minutes=5))
    s, _ = run(b, [CRIT] * 6 + [WARN, OK])
    assert s.status == "firing" and s.ok_count == 1 and s.lower_count == 2
    assert AlertState.from_dict(s.to_dict()) == s
    assert s.to_dict()["alerting"] is True


def test_removed_notifies_only_an_open_episode():
    b = budget()
    firing, _ = run(b, [CRIT])
    quiet, _ = run(b, [OK])
    assert removed(firing, minutes(5)).notify and removed(firing, minutes(5)).severity == "critical"
    assert not removed(quiet, minutes(5)).notify


LEVELS = st.sampled_from([OK, WARN, CRIT, None])


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(LEVELS, min_size=1, max_size=60),
    for_min=st.sampled_from([0, 1, 3]),
    renotify_min=st.sampled_from([0, 5]),
)
def test_invariants_over_random_sequences(values, for_min, renotify_min):
    b = budget(for_=timedelta(minutes=for_min), renotify=timedelta(minutes=renotify_min))
    s = None
    open_episode = None
    for t, v in enumerate(values):
        prev = s
        s, events = step(s, reading(b, minutes(t), v, 0 if v is None else 50), minutes(t))
        assert sum(e.notify for e in events) <= 1
        for e in events:
            assert isinstance(e, Event)
            if e.kind == "firing":
                assert open_episode is None
                open_episode = e.episode
            elif e.kind in ("escalated", "deescalated", "renotify", "no_data", "data_back", "resolved"):
                if e.kind == "no_data" and not e.notify:
                    assert open_episode is None
                else:
                    assert e.episode == open_episode and open_episode is not None
            if e.kind == "resolved":
                open_episode = None
            if e.kind == "escalated":
                assert v == CRIT
            if e.kind == "resolved":
                assert v == OK
        assert s.episode == open_episode
        assert s.alerting == (s.status in ("firing", "no_data") and s.episode is not None)
        if s.status == "pending":
            assert s.breach_since is not None and minutes(t) - s.breach_since < b.for_
        if prev is not None and prev.alerting and v is None:
            assert s.alerting  # missing data never resolves
