"""Small state files (keys, users, sign-in lockouts, saved filters, rollup state, locks): one way
to lock them, replace them atomically and re-read them when they change.

- `write_atomically(path, body)`: temporary file in the same folder, fsync, rename over `path`,
  fsync the folder; a reader sees the old or the new file, never half of one.
- `file_lock(path)`: an exclusive `flock` on `path` (created if missing) for as long as the
  `with` block runs; `blocking=False` yields False at once when another process holds it.
- `JsonFile`: one document in one file, with its own parse and dump (so each file keeps its
  format): `read()` from disk, `current()` re-read only when the file changed (storage.watched),
  and `change()`, which holds the writer lock (`<file>.lock`), yields the current document to
  edit in place and writes it back atomically when the block ends without an error.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from spanlake.storage.watched import WatchedFile
from spanlake.storage.writer import fsync_dir, makedirs_durable

T = TypeVar("T")
PRIVATE = 0o600  # keys, users, lockouts: readable by the owner only


def write_atomically(path: Path, body: bytes, mode: int = PRIVATE) -> None:
    """Replace `path` with `body` (file mode `mode`): temporary file, fsync, rename, fsync the folder."""
    makedirs_durable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` for the block; yields whether it was acquired (always
    True when blocking). Every process on the host that locks the same path waits its turn."""
    makedirs_durable(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class JsonFile(Generic[T]):
    """One JSON document in one file: read, watched for changes, and changed under a lock.

    `parse(bytes) -> T` raises ValueError for a file that is not this kind of document; `dump(T)
    -> bytes` gives the file's bytes; `empty()` is the document of a missing file."""

    def __init__(
        self,
        path: str | Path,
        parse: Callable[[bytes], T],
        dump: Callable[[T], bytes],
        empty: Callable[[], T],
        what: str,
        mode: int = PRIVATE,
    ) -> None:
        self.path = Path(path)
        self._parse, self._dump, self._empty, self.mode = parse, dump, empty, mode
        self._watched = WatchedFile(self.path, lambda p: parse(p.read_bytes()), empty(), what)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> T:
        """The document as the file holds it now (empty() when missing); ValueError when it does not parse."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty()
        try:
            return self._parse(raw)
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}") from None

    def current(self) -> T:
        """The document, re-read only when the file changed; a broken file keeps the last good one.
        Shared between callers: do not modify it."""
        return self._watched.current()

    @contextlib.contextmanager
    def change(self) -> Iterator[T]:
        """Hold the writer lock; yield the document to edit in place; write it back atomically
        when the block ends without an exception (an exception leaves the file as it was)."""
        with file_lock(self.lock_path):
            doc = self.read()
            yield doc
            write_atomically(self.path, self._dump(doc), self.mode)

    def write(self, doc: T) -> None:
        """Replace the document under the writer lock."""
        with file_lock(self.lock_path):
            write_atomically(self.path, self._dump(doc), self.mode)
