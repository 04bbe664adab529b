"""Bearer-key authentication for the receivers and the HTTP API.

Clients send `Authorization: Bearer <token>` (HTTP header, or gRPC metadata `authorization`),
which is what `OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20<token>"` makes the
standard exporters do. With authentication on:

- no key, an unknown key or a revoked key → 401 / UNAUTHENTICATED;
- a read key where writing is needed → 403 / PERMISSION_DENIED;
- a key of project A naming project B anywhere (label body, query) → 403;
- what a write key sends is stored under the key's project, whatever the resource says.

Repeated failures from one client address lock it out for a while (429 /
RESOURCE_EXHAUSTED with Retry-After) for every request that does not carry a valid key, so
guessing is slow and a misconfigured exporter cannot flood the log. A valid, active key is
always let through: any local process sending bad keys must not block the local exporters
that send good ones (the failing tokens are blocked, not the address's valid ones). Checking
a key is one SHA-256 and a dictionary lookup, so a locked address cannot make it expensive.
The counts live in the collector process that owns them (no client can clear them); a
restart forgets them, which gives nothing to someone guessing 256-bit keys.

With authentication off (loopback only, see CollectorConfig.validate) every request is let
through with no project.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import grpc

from spanlake.collector.errors import ExportError
from spanlake.storage.keys import KeyRing, Scope, hash_token

log = logging.getLogger(__name__)

MAX_FAILURES = 20  # failed attempts per client address within FAILURE_WINDOW_S before a lock-out
FAILURE_WINDOW_S = 60.0
LOCKOUT_S = 60.0


class Unauthenticated(ExportError):
    """No key, an unknown key or a revoked key (HTTP 401, gRPC UNAUTHENTICATED)."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ExportError):
    """A valid key that may not do this (HTTP 403, gRPC PERMISSION_DENIED)."""

    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class LockedOut(ExportError):
    """Too many failed attempts from this address: wait (HTTP 429, gRPC RESOURCE_EXHAUSTED)."""

    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a key of one project."""

    key_id: str
    project: str
    scope: Scope


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class FailureLimiter:
    """Counts failed attempts per client address; locks an address out after too many."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S, lockout_s: float = LOCKOUT_S
    ) -> None:
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def check(self, peer: str) -> None:
        """Raise LockedOut while `peer` is locked out."""
        until = self._locked_until.get(peer)
        if until is None:
            return
        left = until - time.monotonic()
        if left > 0:
            raise LockedOut("too many failed authentication attempts from this address; retry later", left)
        with self._lock:
            self._locked_until.pop(peer, None)

    def failed(self, peer: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:  # bounded memory: forget old addresses
                self._failures = {p: q for p, q in self._failures.items() if q and q[-1] > now - self.window_s}
            q = self._failures.setdefault(peer, deque())
            q.append(now)
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.max_failures:
                self._locked_until[peer] = now + self.lockout_s
                q.clear()
                log.warning("locking out %s for %.0fs after repeated failed authentication", peer, self.lockout_s)


class Authenticator:
    """Checks bearer keys against the keys file; `enabled=False` lets everything through."""

    def __init__(
        self, keys_file: Path | None, limiter: FailureLimiter | None = None, internal_token: str | None = None
    ) -> None:
        self.keys_file = keys_file
        self.ring = KeyRing(keys_file) if keys_file is not None else None
        self.limiter = limiter or FailureLimiter()
        self._internal_sha = hash_token(internal_token) if internal_token else None

    @property
    def enabled(self) -> bool:
        return self.ring is not None

    def authenticate(self, authorization: str | None, need: Scope, peer: str = "") -> Principal | None:
        """The request's principal (None when authentication is off); raises when refused."""
        if self.ring is None:
            return None
        token = bearer_token(authorization)
        if token and self._internal_sha and hmac.compare_digest(hash_token(token), self._internal_sha):
            return None  # spanlake up's own dashboard: the server itself, no project pinning
        key = self.ring.lookup(token) if token else None
        if key is None or not key.active:
            self.limiter.check(peer)  # only failing tokens wait: valid keys from the address still work
            self.limiter.failed(peer)
            if token is None:
                raise Unauthenticated("authentication required: send 'Authorization: Bearer <key>'")
            raise Unauthenticated("invalid or revoked API key")
        if not key.allows(need):
            raise PermissionDenied(
                f"this key is {key.scope}-only for project {key.project!r}; {need} needs a {need} key"
            )
        return Principal(key.id, key.project, key.scope)


def check_project(principal: Principal | None, project: str | None) -> str | None:
    """The project a request acts on: the key's; 403 when the request names another one."""
    if principal is None:
        return project
    if project is not None and project != principal.project:
        raise PermissionDenied(f"this key belongs to project {principal.project!r}, not {project!r}")
    return principal.project


DISABLED = Authenticator(None)
