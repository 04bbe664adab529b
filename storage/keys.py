"""Per-project API keys, stored hashed in `<data_dir>/keys.json`.

A key is a random token (`slk_` + 32 random bytes, URL-safe base64) shown once at creation;
the file keeps only its SHA-256, which is enough for a high-entropy token (no KDF needed:
nobody can guess 256 random bits, so there is no dictionary to slow down). Each key has a
project and a scope: `read` (read the project), `write` (also send spans, logs, labels and
feedback, edit datasets) or `admin` (also create, list and revoke the project's keys over the
HTTP API). Each scope includes the ones before it.

One writer, many readers: `spanlake keys` changes the file under an exclusive lock and
replaces it atomically (write a temporary file, fsync, rename), so a reader sees the old or
the new file, never half of one. Collectors only read it, and reload it when it changes
(`KeyRing.lookup` checks the file's identity on each call). Several collectors share keys by
mounting the same file (read-only is enough for them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import orjson

from spanlake.storage.layout import valid_project
from spanlake.storage.watched import WatchedFile

log = logging.getLogger(__name__)

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
KEYS_FILE = "keys.json"
KEYS_ENV = "SPANLAKE_KEYS_FILE"
TOKEN_PREFIX = "slk_"
FORMAT_VERSION = 1


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def keys_path(data_dir: str | Path) -> Path:
    """The keys file: $SPANLAKE_KEYS_FILE when set, else `<data_dir>/keys.json`."""
    env = os.environ.get(KEYS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(data_dir).expanduser().resolve() / KEYS_FILE


@dataclass(frozen=True)
class ApiKey:
    """One key as stored (never the token itself)."""

    id: str
    project: str
    scope: Scope
    name: str
    token_sha256: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: Scope) -> bool:
        """Scopes are ordered read < write < admin; a key may do what its scope or a lower one allows."""
        return SCOPES.index(scope) <= SCOPES.index(self.scope)


class KeyStore:
    """Create, list and revoke keys in one file (the writer side, used by the CLI)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> list[ApiKey]:
        return read_keys(self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[ApiKey]]:
        """Hold the writer lock; yield the current keys; write them back atomically on success."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            keys = read_keys(self.path)
            yield keys
            _write_atomically(self.path, keys)

    def create(self, project: str, scope: Scope, name: str = "") -> tuple[ApiKey, str]:
        """Add a key; returns it and its token (the only time the token exists outside the caller)."""
        if not valid_project(project):
            raise ValueError(f"invalid project name {project!r} (letters, digits, '_', '.', '-'; at most 64)")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if len(name) > 128:
            raise ValueError("name must be at most 128 characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked() as keys:
            ids = {k.id for k in keys}
            key_id = secrets.token_hex(4)
            while key_id in ids:
                key_id = secrets.token_hex(4)
            key = ApiKey(key_id, project, scope, name, hash_token(token), time.time())
            keys.append(key)
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (kept in the file so `keys list` shows when). KeyError if unknown."""
        with self._locked() as keys:
            for i, k in enumerate(keys):
                if k.id == key_id:
                    if k.revoked_at is None:
                        keys[i] = ApiKey(**{**asdict(k), "revoked_at": time.time()})
                    return keys[i]
            raise KeyError(key_id)


def read_keys(path: Path) -> list[ApiKey]:
    """Every key in the file (none when it does not exist). ValueError when it is not a keys file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        doc = orjson.loads(raw)
        return [ApiKey(**k) for k in doc["keys"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a spanlake keys file: {e}") from None


def _write_atomically(path: Path, keys: list[ApiKey]) -> None:
    body = orjson.dumps({"version": FORMAT_VERSION, "keys": [asdict(k) for k in keys]}, option=orjson.OPT_INDENT_2)
    write_atomically(path, body)


def write_atomically(path: Path, body: bytes) -> None:
    """Replace `path` with `body` (mode 0600): temporary file, fsync, rename, fsync the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyRing:
    """The reader side (collectors): token → key, reloaded whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = WatchedFile(self.path, lambda p: {k.token_sha256: k for k in read_keys(p)}, {}, "API keys")

    def lookup(self, token: str) -> ApiKey | None:
        """The key this token belongs to, revoked or not; None when no key matches."""
        return self._file.current().get(hash_token(token))

    def __len__(self) -> int:
        return sum(1 for k in self._file.current().values() if k.active)
