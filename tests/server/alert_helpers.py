"""What the alert tests share: budgets and readings made by hand (classified by the real
analytics.budgets.measure.classify), and real receivers on 127.0.0.1 for every destination
kind: a Standard Webhooks receiver that verifies signatures as docs/alerts.md tells a user to,
Slack-, Teams- and PagerDuty-format receivers that reject what the real services reject, and
an SMTP server (aiosmtpd)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from spanlake.analytics.budgets.definition import Budget
from spanlake.analytics.budgets.measure import Figure, Reading, classify
from tests.net import free_port

T0 = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def budget(**kw: Any) -> Budget:
    """A p95 latency budget of project demo: warning above 100 ms, critical above 200 ms."""
    args: dict[str, Any] = dict(
        name="p95", project="demo", metric="p95_latency", window=timedelta(minutes=15), warning=100.0,
        critical=200.0, min_samples=5, for_=timedelta(0), renotify=timedelta(hours=1), task="answer",
    )  # fmt: skip
    args.update(kw)
    return Budget(**args)


def reading(b: Budget, at: datetime, value: float | None, samples: int = 50, base: float | None = None) -> Reading:
    """`b` read at `at` with `value` over `samples` (None or too few samples: no data)."""
    fig = Figure(value, samples, at - b.window, at)
    baseline = None
    if b.baseline is not None:
        shift = b.baseline.length
        baseline = Figure(base, samples, at - b.window - shift, at - shift)
    return classify(b, at, fig, baseline)


@dataclass
class Received:
    """One request a receiver accepted (or refused: `status`)."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST. `check(body, headers)` returns the
    status to answer (a real service's validation); `mode` "ok", "fail" (500 forever), "hang"
    (never answers until closed) or "once-hang" (the first request hangs until `release()`)."""

    def __init__(self, check: Callable[[bytes, dict[str, str]], int], port: int | None = None) -> None:
        self.check = check
        self.port = port or free_port()
        self.mode = "ok"
        self.requests: list[Received] = []
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if owner.mode == "hang" or (owner.mode == "once-hang" and not owner._released.is_set()):
                    with owner._lock:
                        owner.requests.append(Received(self.path, headers, body, 0))
                    owner._released.wait(30)
                    return
                status = 500 if owner.mode == "fail" else owner.check(body, headers)
                with owner._lock:
                    owner.requests.append(Received(self.path, headers, body, status))
                self.send_response(status)
                self.send_header("content-type", "application/json")
                answer = b'{"status":"success"}' if status < 300 else b'{"error":"refused"}'
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        """Close the port (a later `start()` opens it again: the receiver was down)."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._released = threading.Event()


def verify_standard_webhook(secret: str) -> Callable[[bytes, dict[str, str]], int]:
    """What docs/alerts.md tells a receiver to do: Webhook(secret).verify(body, headers)."""

    def check(body: bytes, headers: dict[str, str]) -> int:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return 401
        return 204

    return check


def slack_format(body: bytes, headers: dict[str, str]) -> int:
    """Slack's incoming webhooks: JSON with `text` and Block Kit `blocks` within its limits."""
    try:
        msg = orjson.loads(body)
        assert isinstance(msg["text"], str) and msg["text"]
        assert 0 < len(msg["blocks"]) <= 50
        for b in msg["blocks"]:
            assert b["type"] in ("header", "section", "actions", "context", "divider")
            if b["type"] == "header":
                assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= 150
            if b["type"] == "section":
                assert "text" in b or "fields" in b
                assert len(b.get("fields", [])) <= 10
                assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))
            if b["type"] == "actions":
                assert all(e["type"] == "button" and e["url"].startswith("http") for e in b["elements"])
    except (AssertionError, KeyError, TypeError, ValueError):
        return 400
    return 200


def teams_format(body: bytes, headers: dict[str, str]) -> int:
    """A Teams workflow webhook: a message whose attachment is an Adaptive Card."""
    try:
        msg = orjson.loads(body)
        assert msg["type"] == "message"
        (att,) = msg["attachments"]
        assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = att["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] and card["body"]
        assert all(e["type"] in ("TextBlock", "FactSet") for e in card["body"])
    except (AssertionError, KeyError, TypeError, ValueError):
        return 400
    return 202


def pagerduty_format(routing_key: str) -> Callable[[bytes, dict[str, str]], int]:
    """PagerDuty Events API v2: 202 for a valid event of `routing_key`, 400 otherwise."""

    def check(body: bytes, headers: dict[str, str]) -> int:
        try:
            ev = orjson.loads(body)
            assert ev["routing_key"] == routing_key
            assert ev["event_action"] in ("trigger", "acknowledge", "resolve")
            assert 0 < len(ev["dedup_key"]) <= 255
            if ev["event_action"] == "trigger":
                p = ev["payload"]
                assert 0 < len(p["summary"]) <= 1024 and p["source"]
                assert p["severity"] in ("critical", "error", "warning", "info")
                assert all(link["href"].startswith("http") for link in ev.get("links", []))
        except (AssertionError, KeyError, TypeError, ValueError):
            return 400
        return 202

    return check


class Mailbox:
    """An aiosmtpd SMTP server on 127.0.0.1 keeping every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
