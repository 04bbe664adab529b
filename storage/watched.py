"""A small file's parsed content, re-read whenever the file changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class WatchedFile(Generic[T]):
    """`current()` parses the file again when its inode, mtime or size changed (a missing file
    gives `empty`). A file that no longer parses (a hand edit) keeps the last good content, and
    `error` says why until the file parses again (None while it does)."""

    def __init__(self, path: str | Path, parse: Callable[[Path], T], empty: T, what: str) -> None:
        self.path = Path(path)
        self._parse = parse
        self._empty = empty
        self._what = what
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = empty
        self.error: str | None = None

    def current(self) -> T:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return self._value
        with self._lock:
            try:
                self._value = self._parse(self.path) if stamp is not None else self._empty
                self.error = None
            except (ValueError, OSError) as e:
                log.warning("keeping the previous %s: %s", self._what, e)
                self.error = str(e)
            self._stamp = stamp
            return self._value
