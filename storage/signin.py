"""Password sign-in with back-off: repeated failures lock out a user name at a client address,
and a client address.

Each (name, client address) pair and each client address has its own count of consecutive
failures. The `lock_after`-th failure locks that pair (or address) for `base_s`; each further
one for twice as long as the one before, up to `max_s`. While locked, attempts are refused
without checking the password (so guessing gets no answers) and do not extend the lock. A
success clears the pair's count (not the address's: signing in to one's own account must not
reset it); `forget_s` without failures clears either. The clock is injectable (wall-clock by
default: the state outlives the process).

Per name and address (the 5th failure locks for 30 s, the 6th 60 s, … up to 15 min) slows
guessing one account from one client without letting anyone lock the account out for everyone
else; per address (the 20th for 60 s, … up to 1 h) slows one client trying many names.

The counts are durable: `<data_dir>/signin.json` or $SPANLAKE_SIGNIN_FILE (storage.json_file:
under a lock, replaced atomically), never a cache a client can clear, and a restart keeps them. `spanlake
users unlock NAME` clears a user's. At most MAX_TRACKED counts per kind are kept.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from spanlake.storage.json_file import JsonFile
from spanlake.storage.users import User, UserDirectory

MAX_TRACKED = 10_000
MAX_KEY_CHARS = 256  # of a typed name or an address kept in the file
SIGNIN_FILE = "signin.json"
SIGNIN_ENV = "SPANLAKE_SIGNIN_FILE"
FORMAT_VERSION = 1
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

# signin.json: {"version": 1, "<section>": {key: {"failures", "last", "locked_until", "user"?, "client"?}}}
Doc = dict[str, Any]


def signin_path(data_dir: str | Path) -> Path:
    """The lockout file: $SPANLAKE_SIGNIN_FILE when set, else `<data_dir>/signin.json` (not beside a
    users file named by $SPANLAKE_USERS_FILE, which may be mounted read-only)."""
    env = os.environ.get(SIGNIN_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(data_dir).expanduser().resolve() / SIGNIN_FILE


def _parse(raw: bytes) -> Doc:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"not a spanlake sign-in file: {e}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise ValueError("not a spanlake sign-in file (version 1)")
    return doc


def _dump(doc: Doc) -> bytes:
    return orjson.dumps({**doc, "version": FORMAT_VERSION}, option=orjson.OPT_INDENT_2)


def lockout_file(path: str | Path) -> JsonFile[Doc]:
    """Failure counts and locks, durable (storage.json_file: lock, atomic replace, reload on change)."""
    return JsonFile(path, _parse, _dump, lambda: {"version": FORMAT_VERSION}, "sign-in lockouts")


class _InMemory:
    """The JsonFile interface over a dict, for a Backoff that need not survive its process."""

    def __init__(self) -> None:
        self.doc: Doc = {}
        self._lock = threading.Lock()

    def current(self) -> Doc:
        return self.doc

    @contextlib.contextmanager
    def change(self) -> Iterator[Doc]:
        with self._lock:
            yield self.doc


class Backoff:
    """Consecutive failures per key (a user name at a client address, or an address) and the lock
    they earn, in `file` (durable: no client message and no restart resets it) or, without one,
    in memory."""

    def __init__(
        self,
        policy: BackoffPolicy,
        clock: Callable[[], float] = time.time,
        file: JsonFile[Doc] | None = None,
        section: str = "counts",
    ) -> None:
        self.policy, self.clock, self.section = policy, clock, section
        self._file: JsonFile[Doc] | _InMemory = file if file is not None else _InMemory()

    def _state(self, key: str) -> dict[str, Any] | None:
        return self._file.current().get(self.section, {}).get(key)

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again (0: now)."""
        s = self._state(key)
        return max(0.0, s["locked_until"] - self.clock()) if s else 0.0

    def failures(self, key: str) -> int:
        s = self._state(key)
        return 0 if s is None or self.clock() - s["last"] >= self.policy.forget_s else int(s["failures"])

    def failed(self, key: str, **about: str) -> float:
        """Count a failure; returns how long `key` is now locked for (0: not locked). `about` is
        kept with the count (the user name and address, for `spanlake users unlock`)."""
        now, p = self.clock(), self.policy
        with self._file.change() as doc:
            states: dict[str, dict[str, Any]] = doc.setdefault(self.section, {})
            if len(states) >= MAX_TRACKED:
                doc[self.section] = states = self._forget_old(states, now)
            s = states.get(key)
            if s is None or now - s["last"] >= p.forget_s:
                s = states[key] = {"failures": 0, "last": now, "locked_until": 0.0, **about}
            s["failures"] += 1
            s["last"] = now
            over = s["failures"] - p.lock_after
            if over < 0:
                return 0.0
            lock = min(p.max_s, p.base_s * 2 ** min(over, 32))
            s["locked_until"] = now + lock
            return lock

    def succeeded(self, key: str) -> None:
        if self._state(key) is None:
            return  # nothing to forget: no write
        with self._file.change() as doc:
            doc.get(self.section, {}).pop(key, None)

    def forget(self, match: Callable[[dict[str, Any]], bool]) -> int:
        """Drop the counts (and locks) `match` selects; returns how many."""
        with self._file.change() as doc:
            states: dict[str, dict[str, Any]] = doc.get(self.section, {})
            gone = [k for k, s in states.items() if match(s)]
            for k in gone:
                del states[k]
        return len(gone)

    def _forget_old(self, states: dict[str, dict[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        forget_s = self.policy.forget_s
        keep = {k: s for k, s in states.items() if now - s["last"] < forget_s or s["locked_until"] > now}
        if len(keep) >= MAX_TRACKED:  # still full: drop the oldest half
            keep = dict(sorted(keep.items(), key=lambda kv: kv[1]["last"])[len(keep) // 2 :])
        return keep


class SignInRefused(Exception):
    """A refused sign-in; the message is safe to show (it never says whether the name exists)."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(seconds: float) -> str:
    s = math.ceil(seconds)
    return f"{s} s" if s < 120 else f"{math.ceil(s / 60)} min"


class SignIn:
    """Checks names and passwords against the users file, with back-off per name at each client
    address and per address, kept in the lockout file `lockouts` (default: signin_path of the
    users file's folder) so that neither a client message nor a restart resets it."""

    def __init__(
        self,
        users_file: str | Path,
        clock: Callable[[], float] = time.time,
        user_policy: BackoffPolicy = USER_POLICY,
        client_policy: BackoffPolicy = CLIENT_POLICY,
        lockouts: str | Path | None = None,
    ) -> None:
        self.users = UserDirectory(users_file)
        self.lockouts = lockout_file(lockouts if lockouts is not None else signin_path(Path(users_file).parent))
        self.per_user = Backoff(user_policy, clock, self.lockouts, "user")
        self.per_client = Backoff(client_policy, clock, self.lockouts, "client")

    def attempt(self, name: str, password: str, client: str = "") -> User:
        """The signed-in user; raises SignInRefused (wrong name or password, locked out, no users)."""
        name = name.strip()
        client = (client or "unknown")[:MAX_KEY_CHARS]
        folded = name.lower()[:MAX_KEY_CHARS]
        user_key = orjson.dumps([folded, client]).decode()  # this name from this address
        wait = self.per_client.retry_after(client)
        if wait > 0:
            raise SignInRefused(f"Too many failed sign-ins from this address. Try again in {_wait(wait)}.", wait)
        wait = self.per_user.retry_after(user_key)
        if wait > 0:
            raise SignInRefused(f"Too many failed sign-ins for this user. Try again in {_wait(wait)}.", wait)
        if not len(self.users):
            raise SignInRefused(f"No users yet. On the server, create the first admin: `{NO_USERS_HINT}`.")
        user = self.users.verify(name, password) if name and password else None
        try:
            if user is None:
                locked = max(
                    self.per_user.failed(user_key, user=folded, client=client),
                    self.per_client.failed(client, client=client),
                )
                extra = f" Too many failures: try again in {_wait(locked)}." if locked else ""
                raise SignInRefused("Wrong user name or password." + extra, locked)
            self.per_user.succeeded(user_key)  # not the address's count: one valid account must not reset it
        except (OSError, ValueError) as e:  # fail closed: a failure that cannot be counted is not answered
            raise SignInRefused(f"Sign-in is unavailable: cannot record it in {self.lockouts.path} ({e}).") from None
        return user

    def unlock(self, name: str, client: str | None = None) -> int:
        """Forget the failures and locks of user `name` from every address (and, with `client`,
        that address's own); returns how many counts were dropped."""
        folded = name.strip().lower()[:MAX_KEY_CHARS]
        n = self.per_user.forget(lambda s: s.get("user") == folded)
        if client is not None:
            n += self.per_client.forget(lambda s: s.get("client") == client)
        return n

    def locked(self) -> list[tuple[str, str, float]]:
        """(kind, who, seconds left) of every lock in force: kind `user` (who: name@address) or `client`."""
        out = []
        for kind, b in (("user", self.per_user), ("client", self.per_client)):
            for s in self.lockouts.read().get(kind, {}).values():
                left = s["locked_until"] - b.clock()
                if left > 0:
                    who = f"{s.get('user', '?')}@{s.get('client', '?')}" if kind == "user" else s.get("client", "?")
                    out.append((kind, who, left))
        return out
