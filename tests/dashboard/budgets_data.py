"""A data directory for the Budgets page: a designed lake around the current time, budgets in
budgets.toml, and the alert files the real engine (server.alerts.engine.Alerts) writes from
three evaluations by the real measure (analytics.budgets.evaluate.measure_all), with a webhook
destination on a closed port, so its notifications end up failed.

Spans start relative to NOW (the trend on the page covers the last 24 hours). Every task of
project `shop` has one LLM call to `acme-1` (1000 tokens in, 500 out at $1 / $2 per Mtok:
$0.001 + $0.001 = $0.002):

    trace  minutes  project  task       ms    status
    1      -40      shop     answer     100   success (app)
    2      -30      shop     answer     200   error
    3      -20      shop     answer     400   error
    4      -8       shop     answer     800   error
    5      -35      shop     summarize  300   error    (another task)
    6      -100     shop     answer     900   error    (before every window below)
    7      -12      other    answer     50    error    (another project)

Evaluations at E1 = NOW-25m, E2 = NOW-15m, E3 = NOW-2m, each over the hour before:

    budget (shop/...)   metric                     E1              E2                E3
    answer-errors       error_rate (w .2, c .5)    1/2 = 0.5 w     2/3 c             3/4 = 0.75 c
    answer-p95          p95_latency (3 s, 5 s)     195 ms ok       380 ms ok         740 ms ok
    answer-cost         cost_per_successful_task   .004/1 ok       .006/1 ok         .008/1 = $0.008 ok
    lookup-success      success_rate (min 5)       no data (no `lookup` task at all)
    other/errors        error_rate (w .1)          no data         no data           1/1 = 1.0 w

p95 as DuckDB's quantile_cont: [100, 200] → 100 + .95·100 = 195; [100, 200, 400] → position
1.9 → 200 + .9·200 = 380; [100, 200, 400, 800] → position 2.85 → 400 + .85·400 = 740.
answer-errors fires at E1 (warning: 0.5 is not above 0.5) and escalates at E2: two
notifications to `ops-hook`, both failed; other/errors fires at E3 (one failed delivery, of
project `other`).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.analytics.budgets.evaluate import measure_all
from spanlake.analytics.budgets.measure import worst_traces
from spanlake.analytics.runner import Analytics
from spanlake.server.alerts.deliver import DeliveryPolicy
from spanlake.server.alerts.engine import Alerts
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from tests.analytics.helpers import sid, tid, write
from tests.factories import make_span

MS = 1_000_000
PRICES = '[[price]]\nmodel = "acme-1"\ninput_mtok = 1.0\noutput_mtok = 2.0\n'
LLM = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-1",
       "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 500}  # fmt: skip
# trace, minutes from NOW, project, task, ms, failed
TASKS = [
    (1, -40, "shop", "answer", 100, False),
    (2, -30, "shop", "answer", 200, True),
    (3, -20, "shop", "answer", 400, True),
    (4, -8, "shop", "answer", 800, True),
    (5, -35, "shop", "summarize", 300, True),
    (6, -100, "shop", "answer", 900, True),
    (7, -12, "other", "answer", 50, True),
]
FAILED_IN_SCOPE = [tid(n).hex() for n in (4, 3, 2)]  # shop's failed `answer` tasks of E3's window, newest first
EVALUATIONS = (25, 15, 2)  # minutes before NOW
BUDGETS_TOML = """\
[[budget]]
name = "answer-errors"
project = "shop"
metric = "error_rate"
task = "answer"
window = "1h"
warning = 0.2
critical = 0.5
min_samples = 1
destinations = ["ops-hook"]

[[budget]]
name = "answer-p95"
project = "shop"
metric = "p95_latency"
task = "answer"
window = "1h"
warning = 3000
critical = 5000
min_samples = 1

[[budget]]
name = "answer-cost"
project = "shop"
metric = "cost_per_successful_task"
task = "answer"
window = "1h"
warning = 0.01
critical = 0.02
min_samples = 1

[[budget]]
name = "lookup-success"
project = "shop"
metric = "success_rate"
task = "lookup"
window = "1h"
warning = 0.9
critical = 0.8
min_samples = 5

[[budget]]
name = "errors"
project = "other"
metric = "error_rate"
window = "1h"
warning = 0.1
min_samples = 1
destinations = ["ops-hook"]

[[destination]]
name = "ops-hook"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
"""


@dataclass(frozen=True)
class BudgetsDir:
    """The data directory and the instants it was built around."""

    root: Path
    now: datetime

    def at(self, minutes_before: int) -> datetime:
        return self.now - timedelta(minutes=minutes_before)

    @property
    def last(self) -> datetime:
        """The last evaluation (E3): the window the page's link opens ends here."""
        return self.at(EVALUATIONS[-1])


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_lake(root: Path, now: datetime) -> None:
    for n, minutes, project, task, ms, failed in TASKS:
        start = int((now + timedelta(minutes=minutes)).timestamp() * 1e9)
        attrs = {"spanlake.task.name": task} | ({} if failed else {"spanlake.task.outcome": "success"})
        spans = [
            make_span(task, tid(n), sid(n * 10), b"", start, ms * MS, attrs, status_code=2 if failed else 0),
            make_span("chat acme-1", tid(n), sid(n * 10 + 1), sid(n * 10), start + MS, (ms - 10) * MS, LLM),
        ]
        write(root, spans, {"service.name": "svc", "spanlake.project": project})
    (root / "prices.toml").write_text(PRICES)


def build(root: Path) -> BudgetsDir:
    """Write the lake and the budgets, run the three evaluations through the alerts engine and
    wait until its three notifications are recorded failed."""
    # on a whole minute: the server's evaluations are (windows end at the end of a minute)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    DataDir(root).create()
    write_lake(root, now)
    (root / "budgets.toml").write_text(BUDGETS_TOML.format(port=closed_port()))
    an = Analytics(Lake(DataDir(root)))
    budgets = BudgetsFile(root)
    declared = budgets.read().budgets
    policy = DeliveryPolicy(max_attempts=1, backoff_base_s=0.01, backoff_cap_s=0.01, connect_timeout_s=1.0,
                            read_timeout_s=1.0, idle_poll_s=0.1)  # fmt: skip
    alerts = Alerts(root, budgets.current, None, lambda b, s, u: worst_traces(an, b, s, u), policy)
    try:
        for minutes in EVALUATIONS:
            at = now - timedelta(minutes=minutes)
            evaluation = measure_all(an, declared, at)
            assert not evaluation.failures, evaluation.failures
            alerts.record(list(evaluation.readings), at)
        alerts.start()
        deadline = time.monotonic() + 30
        while len(alerts.deliveries("failed")) < 3:
            assert time.monotonic() < deadline, alerts.deliveries()
            time.sleep(0.05)
    finally:
        alerts.stop()
    return BudgetsDir(root, now)
