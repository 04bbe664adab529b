"""A process running the alerts engine, driven over stdin by tests/server/test_alert_durability.py
(which kills it with SIGKILL): `python -m tests.server.alert_child <data-dir> <url> <url2>`.

Commands, one JSON line each: {"op": "record", "t": minutes, "value": ms} answers the kinds of
the notifying events; {"op": "pending"} the ids of the pending notifications; {"op": "history"}
the kinds of every event stored.
"""

from __future__ import annotations

import sys

import orjson

from spanlake.analytics.budgets.definition import BudgetSet, Destination
from spanlake.server.alerts.deliver import DeliveryPolicy
from spanlake.server.alerts.engine import Alerts
from tests.server.alert_helpers import budget, minutes, reading

POLICY = DeliveryPolicy(max_attempts=10_000, backoff_base_s=0.05, backoff_cap_s=0.2, read_timeout_s=30.0)


def main() -> None:
    data_dir, url, url2 = sys.argv[1:4]
    dests = (
        Destination("hook", "webhook", url, secret_env="TEST_HOOK_SECRET"),
        Destination("hook2", "webhook", url2, secret_env="TEST_HOOK_SECRET"),
    )
    b = budget(destinations=("hook", "hook2"))
    alerts = Alerts(data_dir, lambda: BudgetSet((b,), dests), "http://dash:8501", lambda *_: ["t1"], POLICY)
    alerts.start()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = orjson.loads(line)
        if cmd["op"] == "record":
            t = minutes(cmd["t"])
            answer = [e.kind for e in alerts.record([reading(b, t, cmd["value"])], t) if e.notify]
        elif cmd["op"] == "pending":
            answer = [d.id for d in alerts.deliveries(status="pending")]
        elif cmd["op"] == "history":
            answer = [e["kind"] for e in alerts.history(b.key)][::-1]
        else:
            answer = {"error": f"unknown op {cmd['op']!r}"}
        print(orjson.dumps(answer).decode(), flush=True)
    alerts.stop()


if __name__ == "__main__":
    main()
