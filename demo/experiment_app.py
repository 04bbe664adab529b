"""The demo support assistant as an experiment app (docs/experiments.md):

    spanlake experiment run --dataset demo-failures@1 --dataset-project demo \\
        --app spanlake.demo.experiment_app:answer --meta prompt_version=v2

Each item of a dataset built from the demo's traces is a ticket the demo answered (the demo
records the ticket's text, redacted, as its task's input). `answer` reads the ticket back
(tickets.parse) and lets the demo's SupportAssistant answer it with the prompt version of the
run (`--meta prompt_version=v1|v2`, else $SPANLAKE_DEMO_PROMPT_VERSION, else v1), against a fake
OpenAI server this process starts once. Latencies and provider faults are drawn from the
ticket's text, so two runs over the same items meet the same faults and differ only by their
prompt version (and a dataset built from the same demo run gives the same verdicts and costs);
$SPANLAKE_DEMO_TIME_SCALE scales the latencies as for `spanlake demo`. The model calls are
traced by the openai-v2 instrumentation into the item's trace and priced like production.

It returns the assistant's reply and marks the item successful. A ticket the assistant could not
answer fails with a short failure mode (FAILURE_MODES: blocked, refund_review, ungrounded,
pii_leak, invalid_reply, for `[no_critical_regressions]` rules); an exception that escaped the
assistant is raised, so the item is recorded as an error.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import random
import threading
from typing import Any

import httpx
import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import spanlake.sdk as sl
from spanlake.demo import chaos
from spanlake.demo.app import SupportAssistant
from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.demo.runner import CLIENT_TIMEOUT_S, HANG_S, INSTRUMENTATION_ENV
from spanlake.demo.tickets import PROMPT_VERSIONS, Ticket, parse
from spanlake.experiments.items import DatasetItem
from spanlake.sdk import attributes as A

VERSION_ENV = "SPANLAKE_DEMO_PROMPT_VERSION"
TIME_SCALE_ENV = "SPANLAKE_DEMO_TIME_SCALE"
DEFAULT_VERSION = "v1"
# The assistant's reasons for failing a ticket (demo/app.py) → the item's failure mode.
FAILURE_MODES = (
    ("blocked by policy", "blocked"),
    ("refund over", "refund_review"),
    ("no grounded answer", "ungrounded"),
    ("leak personal data", "pii_leak"),
    ("no valid reply", "invalid_reply"),
)

for _name, _value in INSTRUMENTATION_ENV.items():
    os.environ.setdefault(_name, _value)
OpenAIInstrumentor().instrument()  # the runner sets up the SDK's provider; spans reach it through the global one

_lock = threading.Lock()
_assistant: SupportAssistant | None = None


class TicketError(Exception):
    """An exception escaped the assistant (the demo records it as the task's error)."""


def assistant() -> SupportAssistant:
    """The assistant, with a fake OpenAI server started on first use (stopped at exit)."""
    global _assistant
    with _lock:
        if _assistant is None:
            server = FakeOpenAI().start()
            atexit.register(server.stop)
            client = openai.OpenAI(
                base_url=server.base_url,
                api_key="sk-demo",
                max_retries=0,
                timeout=CLIENT_TIMEOUT_S,
                http_client=httpx.Client(transport=chaos.ChaosTransport(hang_s=HANG_S)),
            )
            scale = float(os.environ.get(TIME_SCALE_ENV) or 1.0)
            _assistant = SupportAssistant(client, server.base_url, scale)
        return _assistant


def prompt_version() -> str:
    """The run's prompt version: `--meta prompt_version=...` (on the item's task), else the
    environment's, else v1."""
    attrs: Any = getattr(sl.current_task().span, "attributes", None) or {}
    version = attrs.get(A.EXPERIMENT_META_PREFIX + "prompt_version") or os.environ.get(VERSION_ENV) or DEFAULT_VERSION
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"prompt version {version!r}: the demo has {', '.join(PROMPT_VERSIONS)}")
    return str(version)


def failure_mode(reason: str | None) -> str:
    for part, mode in FAILURE_MODES:
        if reason and part in reason:
            return mode
    return reason or "failure"


def ticket_for(item: DatasetItem, text: str, version: str) -> Ticket:
    """The ticket an item holds; its randomness seeded by its text."""
    parsed = parse(text)
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    return Ticket(
        index=0,
        seed=seed,
        session_id=f"experiment-{item.id}",
        user_id="experiment",
        turn=1,
        last_in_session=True,
        intent=parsed.intent,
        text=text,
        prompt_version=version,
        order_id=parsed.order_id,
        amount=parsed.amount,
        city=parsed.city,
        gives_feedback=False,
        gives_rating=False,
    )


def answer(input: str | None, item: DatasetItem) -> str | None:
    """Answer the item's ticket with the run's prompt version; the reply, or the task failed."""
    if not input:
        raise ValueError("the item has no input text: build the dataset from the demo's traces (project demo)")
    ticket = ticket_for(item, input, prompt_version())
    with chaos.faults_for(random.Random(ticket.seed ^ 0x5EED), assistant().time_scale):
        result = assistant().answer(ticket)
    if result.outcome == "error":
        raise TicketError(result.reason)
    if result.outcome == "failure":
        sl.current_task().fail(failure_mode(result.reason))
    else:
        sl.current_task().succeed()  # answered: no expected output to check it against
    return result.answer
