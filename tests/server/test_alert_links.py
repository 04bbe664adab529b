"""Links into the dashboard (server.alerts.links) and what each destination's rendering holds
(server.alerts.message, destinations), written out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from spanlake.analytics.budgets.definition import Baseline, Destination
from spanlake.analytics.traces.links import parse_link
from spanlake.server.alerts import message
from spanlake.server.alerts.destinations import dedup_key, pagerduty_body, slack_body, teams_body
from spanlake.server.alerts.links import trace_link, traces_link
from spanlake.server.alerts.state import step
from tests.server.alert_helpers import budget, minutes, reading

SINCE = datetime(2026, 12, 5, 9, 45, tzinfo=UTC)
UNTIL = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def test_traces_link_carries_every_scope_parameter_that_is_set():
    b = budget(
        service="api", model="gpt-4o", provider="openai", prompt_name="answer", prompt_version="v3",
        attributes={"tenant": "acme", "tier": "gold & co"},
    )  # fmt: skip
    assert traces_link("http://dash:8501/", b, SINCE, UNTIL) == (
        "http://dash:8501/traces?project=demo&since=2026-12-05T09%3A45%3A00Z&until=2026-12-05T10%3A00%3A00Z"
        "&task=answer&service=api&model=gpt-4o&provider=openai&prompt_name=answer&prompt_version=v3"
        "&attr=tenant%3Dacme&attr=tier%3Dgold+%26+co&sort=duration"
    )


def test_traces_link_leaves_out_what_is_not_set():
    b = budget(task=None)
    naive_since = datetime(2026, 12, 5, 9, 45)  # naive times are UTC
    assert traces_link("https://x", b, naive_since, UNTIL) == (
        "https://x/traces?project=demo&since=2026-12-05T09%3A45%3A00Z&until=2026-12-05T10%3A00%3A00Z&sort=duration"
    )


def test_trace_link():
    assert trace_link("http://dash:8501", "my proj", "0af7651916cd43dd") == (
        "http://dash:8501/trace?project=my+proj&trace=0af7651916cd43dd"
    )


def test_the_link_orders_by_what_broke_the_budget_and_the_traces_page_reads_it_back():
    for metric, sort, outcome in (
        ("p95_latency", "duration_ms", None),
        ("cost_per_successful_task", "cost_usd", None),
        ("success_rate", "start_time", "failure"),
        ("timeout_rate", "start_time", "failure"),
        ("traffic", "start_time", None),
    ):
        url = traces_link("http://dash", budget(metric=metric, warning=1.0 if metric != "success_rate" else 0.9,
                                                critical=None), SINCE, UNTIL)  # fmt: skip
        query = parse_qs(urlsplit(url).query)
        link = parse_link(query)
        assert link is not None and not link.problems, url
        assert (link.sort, link.filters.outcome) == (sort, outcome), metric
        assert (link.filters.since, link.filters.until, link.filters.task_name) == (SINCE, UNTIL, "answer")


def test_a_relative_budget_s_message_holds_the_baseline_and_the_thresholds_it_implies():
    b = budget(metric="cost_per_successful_task", warning=20.0, critical=50.0, baseline=Baseline.parse("7d ago"),
               destinations=("pd",), task=None)  # fmt: skip
    r = reading(b, minutes(0), 0.0013, base=0.001)  # +30 %: warning (above 0.0012), not critical (0.0015)
    _, (event,) = step(None, r, minutes(0))
    m = message.build(event, b, r, "http://dash", ["a", "b"])
    data = m["data"]
    assert data["severity"] == "warning" and data["figure"] == 0.0013
    assert data["threshold"]["value"] == 0.001 * 1.2 and data["threshold"]["critical"] == 0.001 * 1.5
    assert data["baseline"] == {
        "text": "7d ago", "since": "2026-11-28T09:45:00Z", "until": "2026-11-28T10:00:00Z", "figure": 0.001,
    }  # fmt: skip
    assert data["summary"] == (
        "[FIRING warning] demo/p95: cost_per_successful_task $0.0013 over 15m, above the warning threshold"
        " $0.0012 (baseline 7d ago: $0.0010)"
    )
    assert data["links"]["traces"].endswith("&sort=cost")


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(monkeypatch):
    monkeypatch.setenv("PD_KEY", "k" * 32)
    dest = Destination("pd", "pagerduty", routing_key_env="PD_KEY")
    b = budget(destinations=("pd",))
    s, (fired,) = step(None, reading(b, minutes(0), 250.0), minutes(0))
    s, _ = step(s, reading(b, minutes(1), 50.0), minutes(1))
    s, (resolved,) = step(s, reading(b, minutes(2), 50.0), minutes(2))
    trigger = pagerduty_body(dest, message.build(fired, b, None, None, []))
    resolve = pagerduty_body(dest, message.build(resolved, b, None, None, []))
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "spanlake/demo" and trigger["routing_key"] == "k" * 32
    assert resolve == {"routing_key": "k" * 32, "dedup_key": trigger["dedup_key"], "event_action": "resolve"}
    assert trigger["dedup_key"] == "spanlake/demo/p95@20261205T100000Z"
    long = dedup_key("p" * 300)
    assert len(long) == 9 + 64 and long == dedup_key("p" * 300)


def test_slack_escapes_its_control_characters_and_teams_gets_one_adaptive_card():
    b = budget(name="a<b>&c", renotify=timedelta(0))
    _, (event,) = step(None, reading(b, minutes(0), 250.0), minutes(0))
    m = message.build(event, b, None, "http://dash", ["t<1>"])
    blocks = slack_body(m)["blocks"]
    assert blocks[1]["text"]["text"].startswith("[FIRING critical] demo/a&lt;b&gt;&amp;c:")
    assert blocks[3]["text"]["text"] == "*Worst traces*\n<http://dash/trace?project=demo&trace=t%3C1%3E|t&lt;1&gt;>"
    card = teams_body(m)["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["color"] == "Attention"
    assert {"title": "Threshold", "value": "critical 200 ms"} in card["body"][2]["facts"]
