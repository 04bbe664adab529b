"""Dashboard users, stored in `<data_dir>/users.json` with scrypt password hashes.

A user has a role and the projects they may see (`*`: every project):

- viewer: read traces, sessions, the overview and reports;
- labeller: a viewer who may also label traces and build datasets;
- admin: everything, and managing users.

Passwords are hashed with scrypt (stdlib `hashlib.scrypt`; n=2**14, r=8, p=1, a 16-byte
random salt per password) and stored as one string that carries its parameters,
`scrypt$n=16384,r=8,p=1$<salt>$<hash>` (base64), so they can be raised later: older hashes
still verify, and `needs_rehash` tells which ones `spanlake users passwd` should renew. A user
without a password (`""`) cannot sign in with one; they exist for reverse-proxy sign-in.

The file is written like keys.json (storage.json_file): under an exclusive lock, replaced atomically,
mode 0600. The dashboard only reads it, and reloads it when it changes (UserDirectory).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import orjson

from spanlake.storage.json_file import JsonFile
from spanlake.storage.layout import valid_project

log = logging.getLogger(__name__)

Role = Literal["viewer", "labeller", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "labeller", "admin")
Permission = Literal["read", "label", "datasets", "manage_users"]
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "labeller": frozenset({"read", "label", "datasets"}),
    "admin": frozenset({"read", "label", "datasets", "manage_users"}),
}
ALL_PROJECTS = "*"
USERS_FILE = "users.json"
USERS_ENV = "SPANLAKE_USERS_FILE"
FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024

# scrypt: 16 MiB and ~50 ms per hash at these settings; raise them here, old hashes keep working.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAXMEM = 256 * 1024 * 1024


def users_path(data_dir: str | Path) -> Path:
    """The users file: $SPANLAKE_USERS_FILE when set, else `<data_dir>/users.json`."""
    env = os.environ.get(USERS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(data_dir).expanduser().resolve() / USERS_FILE


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The stored form of a password: `scrypt$n=…,r=…,p=…$<salt b64>$<hash b64>`."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES)
    return f"scrypt$n={n},r={r},p={p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[dict[str, int], bytes, bytes]:
    alg, params, salt, digest = stored.split("$")
    if alg != "scrypt":
        raise ValueError(f"unknown password hash {alg!r}")
    values = {k: int(v) for k, v in (kv.split("=") for kv in params.split(","))}
    if set(values) != {"n", "r", "p"}:
        raise ValueError("scrypt hash needs n, r and p")
    return values, _unb64(salt), _unb64(digest)


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (constant-time compare; False for no or a bad hash)."""
    try:
        params, salt, digest = _parse(stored)
    except (ValueError, TypeError):
        return False
    try:
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=_MAXMEM, dklen=len(digest), **params)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, digest)


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with weaker settings than today's (renew it on the next password change)."""
    try:
        params, salt, digest = _parse(stored)
    except (ValueError, TypeError):
        return bool(stored)
    return (params["n"], params["r"], params["p"], len(salt), len(digest)) < (
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
        SALT_BYTES,
        HASH_BYTES,
    )


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist takes as long as a real check."""
    return hash_password(secrets.token_urlsafe(16))


def check_password(password: str) -> None:
    """Raise ValueError when a new password is too short or too long."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")


@dataclass(frozen=True)
class User:
    """One user as stored (the password only as its hash)."""

    name: str
    role: Role
    projects: tuple[str, ...]
    password_hash: str
    created_at: float
    changed_at: float

    @property
    def all_projects(self) -> bool:
        return ALL_PROJECTS in self.projects

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    def may_see(self, project: str | None) -> bool:
        """Whether this user may see `project` (None, every project, only when they see all)."""
        return self.all_projects or (project is not None and project in self.projects)

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    def fingerprint(self) -> str:
        """Changes whenever the password, role or projects change (signed-in sessions compare it)."""
        text = f"{self.password_hash}|{self.role}|{','.join(self.projects)}|{self.changed_at}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check(name: str, role: str, projects: tuple[str, ...]) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"invalid user name {name!r} (letters, digits, '_', '.', '@', '+', '-'; at most 64)")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not projects:
        raise ValueError("a user needs at least one project (or '*' for every project)")
    for p in projects:
        if p != ALL_PROJECTS and not valid_project(p):
            raise ValueError(f"invalid project name {p!r}")


class UserStore:
    """Add, list, remove users and change passwords in one file (the writer side, used by the CLI)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = users_file(self.path)

    def load(self) -> list[User]:
        return read_users(self.path)

    def get(self, name: str) -> User | None:
        return next((u for u in self.load() if u.name == name), None)

    def add(self, name: str, role: Role, password: str | None, projects: tuple[str, ...] = (ALL_PROJECTS,)) -> User:
        """Add a user (password None: proxy sign-in only). ValueError when invalid or taken."""
        projects = tuple(dict.fromkeys(projects))
        _check(name, role, projects)
        if password is not None:
            check_password(password)
        hashed = hash_password(password) if password is not None else ""
        with self._file.change() as users:
            if any(u.name == name for u in users):
                raise ValueError(f"user {name!r} exists (remove it first, or change its password with passwd)")
            now = time.time()
            user = User(name, role, projects, hashed, now, now)
            users.append(user)
        return user

    def set_password(self, name: str, password: str | None) -> User:
        """Change (or, with None, clear) a password, hashed with today's settings. KeyError if unknown."""
        if password is not None:
            check_password(password)
        hashed = hash_password(password) if password is not None else ""
        with self._file.change() as users:
            for i, u in enumerate(users):
                if u.name == name:
                    users[i] = replace(u, password_hash=hashed, changed_at=time.time())
                    return users[i]
            raise KeyError(name)

    def remove(self, name: str) -> User:
        """Delete a user; their open dashboard sessions end on their next click. KeyError if unknown."""
        with self._file.change() as users:
            for i, u in enumerate(users):
                if u.name == name:
                    return users.pop(i)
            raise KeyError(name)


def _parse_users(raw: bytes) -> list[User]:
    try:
        doc = orjson.loads(raw)
        return [User(**{**u, "projects": tuple(u["projects"])}) for u in doc["users"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not a spanlake users file: {e}") from None


def _dump_users(users: list[User]) -> bytes:
    return orjson.dumps({"version": FORMAT_VERSION, "users": [asdict(u) for u in users]}, option=orjson.OPT_INDENT_2)


def users_file(path: str | Path) -> JsonFile[list[User]]:
    """The users file as a JsonFile (lock, atomic replace, reload on change)."""
    return JsonFile(path, _parse_users, _dump_users, list, "users")


def read_users(path: Path) -> list[User]:
    """Every user in the file (none when it does not exist). ValueError when it is not a users file."""
    return users_file(path).read()


class UserDirectory:
    """The reader side (the dashboard): name → user, reloaded whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = users_file(self.path)
        self._index: tuple[list[User] | None, dict[str, User]] = (None, {})

    def get(self, name: str) -> User | None:
        users = self._file.current()
        if self._index[0] is not users:  # the file changed: index the new list once
            self._index = (users, {u.name: u for u in users})
        return self._index[1].get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None (as slow for unknown names as for known ones)."""
        user = self.get(name)
        if user is None or not user.has_password:
            verify_password(password, _dummy_hash())
            return None
        return user if verify_password(password, user.password_hash) else None

    def __len__(self) -> int:
        return len(self._file.current())
