"""Run the demo: the support assistant (app.py) answering planned tickets (tickets.py) against
the shipped fake OpenAI server, traced by spanlake-sdk and openai-v2 into project `demo`.

`run_demo()` sets environment variables and instruments the openai module globally: call it in
a process of its own (`spanlake demo` does). Given a seed, the tickets, the injected faults and
therefore every outcome, validation, fallback and feedback are the same on every run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import spanlake.sdk as sl
from spanlake.demo import chaos
from spanlake.demo.app import Result, SupportAssistant
from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.demo.tickets import THUMBS_DOWN_COMMENTS, Ticket, plan

PROJECT = "demo"
SERVICE = "support-assistant"
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
CLIENT_TIMEOUT_S = 2.0  # the openai client's; an injected hang lasts HANG_S
HANG_S = 2.5
# openai-v2: GenAI semantic conventions of the latest experimental version, content on the spans.
INSTRUMENTATION_ENV = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only",
}


@dataclass
class Feedback:
    """What a user said about one answer (sent with sl.feedback)."""

    ticket: int  # the ticket's index
    trace_id: str
    user_id: str
    value: str | None = None
    score: float | None = None
    comment: str | None = None
    stored: bool = False


@dataclass
class Summary:
    """What the demo did, from the app's point of view."""

    endpoint: str
    seed: int
    results: list[Result] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    flushed: bool = False
    seconds: float = 0.0

    def outcomes(self) -> Counter[str]:
        return Counter(r.outcome for r in self.results)

    def reasons(self) -> Counter[str]:
        return Counter(r.reason for r in self.results if r.reason)

    def failed_validations(self) -> Counter[str]:
        return Counter(v for r in self.results for v in r.failed_validations)

    def success_rate(self, version: str) -> float | None:
        rs = [r for r in self.results if r.ticket.prompt_version == version]
        return sum(r.outcome == "success" for r in rs) / len(rs) if rs else None


def user_feedback(ticket: Ticket, result: Result) -> list[Feedback]:
    """The feedback this ticket's user gives (deterministic from the ticket's seed)."""
    if not result.trace_id:
        return []
    rng = random.Random(ticket.seed + 1)
    ok = result.outcome == "success"
    out = []
    if ticket.gives_feedback:
        up = rng.random() < (0.85 if ok else 0.1)
        comment = None if up else rng.choice(THUMBS_DOWN_COMMENTS)
        value = "up" if up else "down"
        out.append(Feedback(ticket.index, result.trace_id, ticket.user_id, value=value, comment=comment))
    if ticket.gives_rating:
        score = float(rng.choice((4, 5, 5) if ok else (1, 2, 3)))
        comment = f"session rating {score:.0f}/5"
        out.append(Feedback(ticket.index, result.trace_id, ticket.user_id, score=score, comment=comment))
    return out


def sessions_of(tickets: list[Ticket]) -> list[list[Ticket]]:
    """Tickets grouped by session, in order (a user's turns are answered one after another)."""
    by: dict[str, list[Ticket]] = {}
    for t in tickets:
        by.setdefault(t.session_id, []).append(t)
    return list(by.values())


def run_demo(
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    seed: int = 42,
    tickets: int = 60,
    concurrency: int = 8,
    time_scale: float = 1.0,
    on_result: Callable[[Result], None] | None = None,
) -> Summary:
    """Answer `tickets` planned tickets, send their traces and feedback to `endpoint`, flush."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:  # the app's own settings do not apply
        del os.environ[name]
    os.environ.update(INSTRUMENTATION_ENV)
    started = time.monotonic()
    summary = Summary(endpoint, seed)
    handle = sl.setup(endpoint=endpoint, service_name=SERVICE, project=PROJECT, capture_content=True)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=handle.provider)
    lock = threading.Lock()
    try:
        with FakeOpenAI() as server:
            http_client = httpx.Client(transport=chaos.ChaosTransport(hang_s=HANG_S))
            client = openai.OpenAI(
                base_url=server.base_url,
                api_key="sk-demo",
                max_retries=0,
                timeout=CLIENT_TIMEOUT_S,
                http_client=http_client,
            )
            app = SupportAssistant(client, server.base_url, time_scale)

            def session(turns: list[Ticket]) -> None:
                for ticket in turns:
                    with chaos.faults_for(random.Random(ticket.seed ^ 0x5EED), time_scale):
                        result = app.answer(ticket)
                    given = user_feedback(ticket, result)
                    for f in given:
                        f.stored = sl.feedback(
                            f.trace_id, value=f.value, score=f.score, comment=f.comment, user_id=f.user_id
                        )
                    with lock:
                        summary.results.append(result)
                        summary.feedback.extend(given)
                        if on_result is not None:
                            on_result(result)

            with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="demo-user") as pool:
                for f in [pool.submit(session, s) for s in sessions_of(plan(seed, tickets))]:
                    f.result()
            http_client.close()
    finally:
        summary.flushed = handle.flush(10)
        instrumentor.uninstrument()
        handle.shutdown()
    summary.results.sort(key=lambda r: r.ticket.index)
    summary.feedback.sort(key=lambda f: f.ticket)
    summary.seconds = time.monotonic() - started
    return summary
