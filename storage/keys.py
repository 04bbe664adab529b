"""Per-project API keys, stored hashed in `<data_dir>/keys.json`.

A key is a random token (`slk_` + 32 random bytes, URL-safe base64) shown once at creation;
the file keeps only its SHA-256, which is enough for a high-entropy token (no KDF needed:
nobody can guess 256 random bits, so there is no dictionary to slow down). Each key has a
project and a scope: `read` (read the project), `write` (also send spans, logs, labels and
feedback, edit datasets) or `admin` (also create, list and revoke the project's keys over the
HTTP API). Each scope includes the ones before it.

One writer, many readers: `spanlake keys` changes the file under an exclusive lock and
replaces it atomically (storage.json_file: temporary file, fsync, rename), so a reader sees the old or
the new file, never half of one. Collectors only read it, and reload it when it changes
(`KeyRing.lookup` checks the file's identity on each call). Several collectors share keys by
mounting the same file (read-only is enough for them).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import orjson

from spanlake.storage.json_file import JsonFile
from spanlake.storage.layout import valid_project

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


def _parse_keys(raw: bytes) -> list[ApiKey]:
    try:
        doc = orjson.loads(raw)
        return [ApiKey(**k) for k in doc["keys"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"not a spanlake keys file: {e}") from None


def _dump_keys(keys: list[ApiKey]) -> bytes:
    return orjson.dumps({"version": FORMAT_VERSION, "keys": [asdict(k) for k in keys]}, option=orjson.OPT_INDENT_2)


def keys_file(path: str | Path) -> JsonFile[list[ApiKey]]:
    """The keys file as a JsonFile (lock, atomic replace, reload on change)."""
    return JsonFile(path, _parse_keys, _dump_keys, list, "API keys")


class KeyStore:
    """Create, list and revoke keys in one file (the writer side, used by the CLI)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = keys_file(self.path)

    def load(self) -> list[ApiKey]:
        return read_keys(self.path)

    def create(self, project: str, scope: Scope, name: str = "") -> tuple[ApiKey, str]:
        """Add a key; returns it and its token (the only time the token exists outside the caller)."""
        if not valid_project(project):
            raise ValueError(f"invalid project name {project!r} (letters, digits, '_', '.', '-'; at most 64)")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if len(name) > 128:
            raise ValueError("name must be at most 128 characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._file.change() as keys:
            ids = {k.id for k in keys}
            key_id = secrets.token_hex(4)
            while key_id in ids:
                key_id = secrets.token_hex(4)
            key = ApiKey(key_id, project, scope, name, hash_token(token), time.time())
            keys.append(key)
        return key, token

    def revoke(self, key_id: str) -> ApiKey:
        """Mark a key revoked (kept in the file so `keys list` shows when). KeyError if unknown."""
        with self._file.change() as keys:
            for i, k in enumerate(keys):
                if k.id == key_id:
                    if k.revoked_at is None:
                        keys[i] = ApiKey(**{**asdict(k), "revoked_at": time.time()})
                    return keys[i]
            raise KeyError(key_id)


def read_keys(path: Path) -> list[ApiKey]:
    """Every key in the file (none when it does not exist). ValueError when it is not a keys file."""
    return keys_file(path).read()


class KeyRing:
    """The reader side (collectors): token → key, reloaded whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = keys_file(self.path)
        self._index: tuple[list[ApiKey] | None, dict[str, ApiKey]] = (None, {})

    def _by_hash(self) -> dict[str, ApiKey]:
        keys = self._file.current()
        if self._index[0] is not keys:  # the file changed: index the new list once
            self._index = (keys, {k.token_sha256: k for k in keys})
        return self._index[1]

    def lookup(self, token: str) -> ApiKey | None:
        """The key this token belongs to, revoked or not; None when no key matches."""
        return self._by_hash().get(hash_token(token))

    def __len__(self) -> int:
        return sum(1 for k in self._file.current() if k.active)
