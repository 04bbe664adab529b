"""The whole loop on a real server: spans sent with the OpenTelemetry SDK's OTLP/HTTP exporter
break a budget declared in budgets.toml; the budget watch evaluates it, the alerts engine
fires, and a signed webhook reaches a receiver that verifies it as docs/alerts.md says, with
the figure, the threshold, a link to the Traces page that opens exactly the failed tasks,
and the failed traces' ids. Raising the thresholds resolves it (after two ok evaluations).

Project shop: four tasks `answer`, three of them errors: error rate 3/4 = 0.75, above the
critical threshold 0.5."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.analytics.traces.links import parse_link
from spanlake.server.budget_watch import INTERVAL_ENV
from tests.conftest import RunningCollector, start_collector
from tests.server.alert_helpers import Receiver, verify_standard_webhook, wait_for

SECRET = "whsec_" + base64.b64encode(b"spanlake-test-secret-0123456789").decode()
DASHBOARD = "http://dash.example:8501"
ERRORS = {"name": "errors", "project": "shop", "metric": "error_rate", "task": "answer", "window": "15m",
          "warning": 0.2, "critical": 0.5, "min_samples": 1, "destinations": ["hook"]}  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(verify_standard_webhook(SECRET)).start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Iterator[RunningCollector]:
    monkeypatch.setenv(INTERVAL_ENV, "0.3")
    monkeypatch.setenv("SPANLAKE_DASHBOARD_URL", DASHBOARD)
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    data = tmp_path / "data"
    store = BudgetsFile(data)
    store.put_destination({"name": "hook", "type": "webhook", "url": receiver.url, "secret_env": "SHOP_HOOK_SECRET"})
    running, stop = start_collector(data)
    try:
        yield running
    finally:
        stop()


def send_tasks(endpoint: str) -> list[str]:
    """Four `answer` tasks through the real exporter; returns the failed ones' trace ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "spanlake.project": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    tracer = provider.get_tracer("test")
    failed = []
    for i in range(4):
        with tracer.start_as_current_span("answer", attributes={"spanlake.task.name": "answer"}) as span:
            if i > 0:
                span.set_status(Status(StatusCode.ERROR, "boom"))
                failed.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()
    return failed


def test_a_breached_budget_alerts_a_signed_webhook_with_links_and_resolves(
    server: RunningCollector, receiver: Receiver
) -> None:
    failed = send_tasks(server.http)
    server.flush()
    BudgetsFile(server.data_dir).put_budget(ERRORS)

    first = wait_for(lambda: receiver.accepted(), 60, "a firing notification")[0]  # signature verified (else 401)
    msg = first.json
    data = msg["data"]
    assert msg["type"] == "budget.firing" and first.headers["webhook-id"].startswith("msg_")
    assert (data["severity"], data["figure"], data["samples"]) == ("critical", 0.75, 4)
    assert data["threshold"] == {"crossed": "critical", "value": 0.5, "warning": 0.2, "critical": 0.5}
    assert data["budget"]["scope"] == {"task": "answer"} and data["budget"]["window"] == "15m"
    # the Traces page link opens the failed `answer` tasks of the window, as the page reads it
    link = urlsplit(data["links"]["traces"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{DASHBOARD}/traces"
    opened = parse_link(parse_qs(link.query))
    assert opened is not None and not opened.problems
    f = opened.filters
    assert (f.project, f.task_name, f.outcome) == ("shop", "answer", "failure")
    assert f.until is not None and f.since is not None and (f.until - f.since).total_seconds() == 15 * 60
    assert sorted(t["trace_id"] for t in data["worst_traces"]) == sorted(failed)
    assert all(t["url"].startswith(f"{DASHBOARD}/trace?project=shop&trace=") for t in data["worst_traces"])

    states = server.server.alerts.states()
    assert states["shop/errors"].status == "firing"
    page = httpx.get(f"{server.http}/api/v1/budgets/status", params={"project": "shop"}, timeout=30).json()
    assert [(r["name"], r["level"]) for r in page["readings"]] == [("errors", "critical")]

    # thresholds above the figure: ok; after two ok evaluations (flap suppression) it resolves, once
    BudgetsFile(server.data_dir).put_budget({**ERRORS, "warning": 0.8, "critical": 0.9})
    resolved = wait_for(lambda: [r for r in receiver.accepted() if r.json["type"] == "budget.resolved"], 60, "resolve")
    assert resolved[0].json["data"]["alert_id"] == data["alert_id"]
    time.sleep(1.5)  # several more evaluations: nothing more is sent
    assert [r.json["type"] for r in receiver.accepted()] == ["budget.firing", "budget.resolved"]
