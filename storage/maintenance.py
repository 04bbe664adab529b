"""What compaction (storage.compact) and retention share, without DuckDB: the lake's
maintenance lock, the compaction journal and the listing of partitions. A process that only
writes (the flusher of `spanlake up --role ingest`) takes the lock and finishes an interrupted
compaction through this module, and never loads DuckDB.

A local lake uses a non-blocking file lock (every process on the host); a lake on object
storage has a lease object `_compaction/lease.json` with an expiry. The journal
`_compaction/<id>.json` names a merged file and its sources; `recover_interrupted` finishes
the job (deletes the sources if the merged file exists, else forgets it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import PurePath

from spanlake.storage.json_file import file_lock
from spanlake.storage.layout import PARQUET_SUFFIX, DataDir
from spanlake.storage.objectstore import FileEntry
from spanlake.storage.schema import Table

log = logging.getLogger(__name__)

JOURNAL_DIR = "_compaction"
LEASE = f"{JOURNAL_DIR}/lease.json"
LEASE_S = 900.0  # an object-storage lease not renewed for this long is free
_PROCESS_LOCK = threading.Lock()  # object-storage leases: one holder per process too


class Held:
    """An acquired (truthy) or refused (falsy) compaction lock; `renew()` extends a lease."""

    def __init__(self, acquired: bool, renew: Callable[[], None] | None = None) -> None:
        self.acquired = acquired
        self._renew = renew

    def __bool__(self) -> bool:
        return self.acquired

    def renew(self) -> None:
        if self._renew is not None:
            self._renew()


@contextlib.contextmanager
def exclusive(data_dir: DataDir) -> Iterator[Held]:
    """Hold the lake's compaction lock if it is free; yields whether it was acquired."""
    if data_dir.is_remote:
        with _lease(data_dir) as held:
            yield held
        return
    with file_lock(data_dir.lake / JOURNAL_DIR / "lock", blocking=False) as acquired:
        yield Held(acquired)


@contextlib.contextmanager
def _lease(data_dir: DataDir) -> Iterator[Held]:
    store = data_dir.store
    if not _PROCESS_LOCK.acquire(blocking=False):
        yield Held(False)
        return
    holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    def current() -> dict[str, object]:
        raw = store.get_bytes(LEASE)
        return json.loads(raw) if raw else {}

    def write() -> None:
        store.put_bytes(LEASE, json.dumps({"holder": holder, "expires": time.time() + LEASE_S}).encode())

    try:
        lease = current()
        if lease and lease.get("holder") != holder and float(lease.get("expires", 0)) > time.time():  # type: ignore[arg-type]
            log.warning("compaction lease held by %s; skipping (designate one compactor)", lease.get("holder"))
            yield Held(False)
            return
        write()
        time.sleep(0.2)  # a racing writer shows up here (strongly consistent reads)
        if current().get("holder") != holder:
            yield Held(False)
            return
        try:
            yield Held(True, write)
        finally:
            if current().get("holder") == holder:
                store.delete([LEASE])
    finally:
        _PROCESS_LOCK.release()


def _write_journal(data_dir: DataDir, dests: list[str], sources: list[str]) -> str:
    rel = f"{JOURNAL_DIR}/{PurePath(dests[0]).stem}.json"
    data_dir.store.put_bytes(rel, json.dumps({"dest": dests[0], "dests": dests, "sources": sources}).encode())
    return rel


def _remove(data_dir: DataDir, rels: list[str]) -> None:
    data_dir.store.delete(rels)


def recover_interrupted(data_dir: DataDir) -> int:
    """Finish compactions a crash interrupted; returns how many. Call with the lock held.

    When every file a job was publishing exists, its sources are deleted; otherwise the
    files it did publish are (the sources still hold every row)."""
    store = data_dir.store
    n = 0
    journals = store.list_files(JOURNAL_DIR)
    store.delete([j.rel for j in journals if j.rel.endswith(".json.tmp")])  # never completed
    for j in journals:
        if not j.rel.endswith(".json") or j.rel == LEASE:
            continue
        raw = store.get_bytes(j.rel)
        if raw is None:
            continue
        entry = json.loads(raw)
        dests = entry.get("dests") or [entry["dest"]]
        if all(store.exists(d) for d in dests):
            _remove(data_dir, entry["sources"])
            log.info("finished an interrupted compaction into %s", ", ".join(dests))
        else:
            _remove(data_dir, dests)
        store.delete([j.rel])
        n += 1
    return n


def partitions(data_dir: DataDir, table: Table) -> dict[str, list[FileEntry]]:
    """Published files of a table by partition (relative directory), from one listing."""
    out: dict[str, list[FileEntry]] = {}
    for e in data_dir.store.list_files(table.name, PARQUET_SUFFIX):
        if e.rel.count("/") == 4:  # <table>/project=/date=/hour=/<file>
            out.setdefault(e.parent, []).append(e)
    return out
