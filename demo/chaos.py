"""Realistic provider behaviour for the demo: latency, rate limits, outages and timeouts.

`ChaosTransport` is an httpx transport for the openai client. Before a request leaves, it
draws a latency and maybe a fault for the request's model from the current ticket's random
generator (`faults_for(rng)`), and asks the fake server for it with the server's own
switches: model `slow-<ms>` (answer after that many ms) or `fail-<code>` (answer that HTTP
status). The answer's `model` is put back to the dated snapshot a real provider answers with
(`ANSWERING`), so spans and reports show `gpt-4o-mini` with its latency, errors and price, not
the switch names.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx

from spanlake.demo.fake_openai import MODEL_SUFFIX


@dataclass(frozen=True)
class Profile:
    """How a model behaves: median latency (ms), HTTP failure odds, odds of hanging past the timeout."""

    median_ms: float
    failures: dict[int, float] = field(default_factory=dict)
    p_hang: float = 0.0


PROFILES: dict[str, Profile] = {
    "gpt-4o-mini": Profile(320, {429: 0.06}, p_hang=0.03),
    "gpt-4o": Profile(750, {500: 0.05}),
    "text-embedding-3-small": Profile(45),
}
DEFAULT_PROFILE = Profile(300)
ANSWERING = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
MAX_MS = 1500.0  # ordinary latencies stay below the client timeout

_current: ContextVar[tuple[random.Random, float] | None] = ContextVar("spanlake_demo_chaos", default=None)


@contextlib.contextmanager
def faults_for(rng: random.Random, time_scale: float = 1.0) -> Iterator[None]:
    """Draw faults for requests made inside from `rng`; latencies are scaled by `time_scale`."""
    token = _current.set((rng, time_scale))
    try:
        yield
    finally:
        _current.reset(token)


def draw(model: str, rng: random.Random, time_scale: float, hang_s: float) -> str:
    """The fake server model name that makes this request behave like `model` would today."""
    profile = PROFILES.get(model, DEFAULT_PROFILE)
    roll = rng.random()
    latency = rng.lognormvariate(0, 0.45)  # drawn always, so one fault does not shift later draws
    for status, p in sorted(profile.failures.items()):
        if roll < p:
            return f"fail-{status}"
        roll -= p
    if roll < profile.p_hang:
        return f"slow-{int(hang_s * 1000)}"
    return f"slow-{max(1, int(min(MAX_MS, profile.median_ms * latency) * time_scale))}"


class ChaosTransport(httpx.BaseTransport):
    """Wraps httpx's transport; rewrites chat and embedding requests as described above."""

    def __init__(self, hang_s: float = 2.5) -> None:
        self._inner = httpx.HTTPTransport()
        self._hang_s = hang_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        state = _current.get()
        path = request.url.path
        if state is None or request.method != "POST" or not path.endswith(("/chat/completions", "/embeddings")):
            return self._inner.handle_request(request)
        body = json.loads(request.read())
        model = str(body.get("model", ""))
        body["model"] = draw(model, state[0], state[1], self._hang_s)
        content = json.dumps(body).encode()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
        sent = httpx.Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )
        response = self._inner.handle_request(sent)
        if response.status_code != 200 or body.get("stream"):
            return response
        answer = json.loads(response.read())
        answer["model"] = ANSWERING.get(model, model + MODEL_SUFFIX)
        dropped = ("content-length", "content-encoding")
        keep = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(200, headers=keep, content=json.dumps(answer).encode(), request=request)

    def close(self) -> None:
        self._inner.close()
