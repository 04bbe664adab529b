"""Password sign-in with back-off: repeated failures lock out a user name and a client address.

Each name and each client address has its own count of consecutive failures. The
`lock_after`-th failure locks that name (or address) for `base_s`; each further one for twice
as long as the one before, up to `max_s`. While locked, attempts are refused without checking
the password (so guessing gets no answers) and do not extend the lock. A success clears the
name's count (not the address's: signing in to one's own account must not reset it); `forget_s`
without failures clears either. The clock is injectable.

Per name (the 5th failure locks for 30 s, the 6th 60 s, … up to 15 min) slows guessing one
account from many addresses; per address (the 20th for 60 s, … up to 1 h) slows one client trying many names. State
lives in the dashboard process (lost on restart), bounded to MAX_TRACKED keys.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spanlake.storage.users import User, UserDirectory

MAX_TRACKED = 10_000
NO_USERS_HINT = "spanlake users add admin --role admin"
AUTH_MODES = ("auto", "password", "proxy", "off")
DEFAULT_PROXY_HEADER = "X-Forwarded-User"
HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")


def is_loopback(host: str | None) -> bool:
    """Whether `host` is a loopback address (None, Streamlit's every-interface default, is not)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_mode(mode: str, host: str | None, header: str = DEFAULT_PROXY_HEADER) -> str:
    """The dashboard's sign-in mode on `host`: auto is off on loopback and password elsewhere;
    off is refused off loopback. ValueError names the problem."""
    if mode not in AUTH_MODES:
        raise ValueError(f"dashboard auth must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    if mode == "proxy" and not HEADER_RE.match(header):
        raise ValueError(f"invalid header name {header!r}")
    if mode == "auto":
        return "off" if is_loopback(host) else "password"
    if mode == "off" and not is_loopback(host):
        raise ValueError(
            f"dashboard sign-in is off but {host or 'every interface'} is not a loopback address: anyone who can "
            "reach it could read every project. Use --dashboard-auth password (or proxy), or listen on 127.0.0.1"
        )
    return mode


@dataclass(frozen=True)
class BackoffPolicy:
    """Which failure locks first, and how long each one locks for from there."""

    lock_after: int
    base_s: float
    max_s: float
    forget_s: float


USER_POLICY = BackoffPolicy(lock_after=5, base_s=30.0, max_s=15 * 60.0, forget_s=3600.0)
CLIENT_POLICY = BackoffPolicy(lock_after=20, base_s=60.0, max_s=3600.0, forget_s=3600.0)


@dataclass
class _State:
    failures: int
    last: float
    locked_until: float


class Backoff:
    """Consecutive failures per key (a user name or a client address) and the lock they earn."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self.clock = policy, clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again (0: now)."""
        s = self._states.get(key)
        return max(0.0, s.locked_until - self.clock()) if s else 0.0

    def failures(self, key: str) -> int:
        s = self._states.get(key)
        return 0 if s is None or self.clock() - s.last >= self.policy.forget_s else s.failures

    def failed(self, key: str) -> float:
        """Count a failure; returns how long `key` is now locked for (0: not locked)."""
        now, p = self.clock(), self.policy
        with self._lock:
            if len(self._states) >= MAX_TRACKED:
                self._forget_old(now)
            s = self._states.get(key)
            if s is None or now - s.last >= p.forget_s:
                s = self._states[key] = _State(0, now, 0.0)
            s.failures += 1
            s.last = now
            over = s.failures - p.lock_after
            if over < 0:
                return 0.0
            lock = min(p.max_s, p.base_s * 2 ** min(over, 32))
            s.locked_until = now + lock
            return lock

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def _forget_old(self, now: float) -> None:
        keep = {k: s for k, s in self._states.items() if now - s.last < self.policy.forget_s or s.locked_until > now}
        if len(keep) >= MAX_TRACKED:  # still full: drop the oldest half
            keep = dict(sorted(keep.items(), key=lambda kv: kv[1].last)[len(keep) // 2 :])
        self._states = keep


class SignInRefused(Exception):
    """A refused sign-in; the message is safe to show (it never says whether the name exists)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(seconds: float) -> str:
    s = math.ceil(seconds)
    return f"{s} s" if s < 120 else f"{math.ceil(s / 60)} min"


class SignIn:
    """Checks names and passwords against the users file, with back-off per name and per client."""

    def __init__(
        self,
        users_file: str | Path,
        clock: Callable[[], float] = time.monotonic,
        user_policy: BackoffPolicy = USER_POLICY,
        client_policy: BackoffPolicy = CLIENT_POLICY,
    ) -> None:
        self.users = UserDirectory(users_file)
        self.per_user = Backoff(user_policy, clock)
        self.per_client = Backoff(client_policy, clock)

    def attempt(self, name: str, password: str, client: str = "") -> User:
        """The signed-in user; raises SignInRefused (wrong name or password, locked out, no users)."""
        name = name.strip()
        client_key = f"client:{client or 'unknown'}"
        user_key = f"user:{name.lower()}"
        wait = self.per_client.retry_after(client_key)
        if wait > 0:
            raise SignInRefused(f"Too many failed sign-ins from this address. Try again in {_wait(wait)}.", wait)
        wait = self.per_user.retry_after(user_key)
        if wait > 0:
            raise SignInRefused(f"Too many failed sign-ins for this user. Try again in {_wait(wait)}.", wait)
        if not len(self.users):
            raise SignInRefused(f"No users yet. On the server, create the first admin: `{NO_USERS_HINT}`.")
        user = self.users.verify(name, password) if name and password else None
        if user is None:
            locked = max(self.per_user.failed(user_key), self.per_client.failed(client_key))
            extra = f" Too many failures: try again in {_wait(locked)}." if locked else ""
            raise SignInRefused("Wrong user name or password." + extra, locked)
        self.per_user.succeeded(user_key)  # not the address's count: one valid account must not reset it
        return user
