"""Request limits of the HTTP API (/api/v1): body size and request rate.

- Body size: a body over `max_body_bytes` is refused with 413 (from Content-Length when it
  says so, else while it streams in). Routes may have lower limits of their own.
- Rate: a token bucket per API key (per client address for requests without a valid key,
  e.g. with authentication off): `rate_per_s` sustained, bursts of `burst`. Over it: 429
  with Retry-After. Buckets are kept for at most MAX_BUCKETS clients (bounded memory).

Settings come from the environment (SPANLAKE_API_*), see ApiLimits.from_env and docs/api.md.
The OTLP endpoints, /health and /ready are not limited here (OTLP has its own backpressure).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spanlake.collector.auth import Authenticator, bearer_token
from spanlake.collector.errors import PayloadTooLarge
from spanlake.server.api.problems import problem

DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 100
DEFAULT_API_MAX_BODY_BYTES = 4 * 1024 * 1024 + 1024  # the datasets API's 4 MiB bodies, plus headers' slack
MAX_BUCKETS = 10_000
API_PREFIX = "/api/v1/"
ENV_RATE = "SPANLAKE_API_RATE_PER_S"
ENV_BURST = "SPANLAKE_API_BURST"
ENV_MAX_BODY = "SPANLAKE_API_MAX_BODY_BYTES"


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


@dataclass(frozen=True)
class ApiLimits:
    """Limits of /api/v1. `rate_per_s = 0` turns rate limiting off."""

    rate_per_s: float = DEFAULT_RATE_PER_S
    burst: int = DEFAULT_BURST
    max_body_bytes: int = DEFAULT_API_MAX_BODY_BYTES

    @classmethod
    def from_env(cls) -> ApiLimits:
        """Defaults overridden by SPANLAKE_API_RATE_PER_S, SPANLAKE_API_BURST, SPANLAKE_API_MAX_BODY_BYTES."""
        limits = cls(
            rate_per_s=_env_number(ENV_RATE, DEFAULT_RATE_PER_S),
            burst=int(_env_number(ENV_BURST, DEFAULT_BURST)),
            max_body_bytes=int(_env_number(ENV_MAX_BODY, DEFAULT_API_MAX_BODY_BYTES)),
        )
        return limits.validate()

    def validate(self) -> ApiLimits:
        if self.rate_per_s > 0 and self.burst < 1:
            raise ValueError("the API burst must be at least 1 when rate limiting is on")
        if self.max_body_bytes < 1024:
            raise ValueError("the API body limit must be at least 1024 bytes")
        return self


class RateLimiter:
    """Token buckets by client identity; thread-safe."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # who → (tokens, at)

    def take(self, who: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[who] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > MAX_BUCKETS:  # forget the clients whose buckets have refilled
                full = self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
            return wait


class ApiLimitsMiddleware:
    """Apply ApiLimits to /api/v1 requests."""

    def __init__(self, app: ASGIApp, limits: ApiLimits, auth: Authenticator) -> None:
        self.app = app
        self.limits = limits
        self.auth = auth
        self.rate = RateLimiter(limits.rate_per_s, limits.burst) if limits.rate_per_s > 0 else None

    def _who(self, headers: Headers, scope: Scope) -> str:
        token = bearer_token(headers.get("authorization"))
        ring = self.auth.ring
        if token and ring is not None:
            key = ring.lookup(token)
            if key is not None and key.active:
                return "key:" + key.id
        client = scope.get("client")
        return "addr:" + (client[0] if client else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.rate is not None:
            wait = self.rate.take(self._who(headers, scope))
            if wait > 0:
                detail = f"rate limit of {self.limits.rate_per_s:g} requests/s (bursts of {self.limits.burst}) reached"
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                await problem(429, detail, path, retry)(scope, receive, send)
                return
        limit = self.limits.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            detail = f"body of {declared} bytes is over the {limit} byte limit"
            await problem(413, detail, path, {"Connection": "close"})(scope, receive, send)
            return
        await self.app(scope, _capped(receive, limit), send)


def _capped(receive: Receive, limit: int) -> Receive:
    """`receive` raising PayloadTooLarge (413) once more than `limit` body bytes arrived."""
    size = 0

    async def capped() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(f"body is over the {limit} byte limit")
        return message

    return capped
