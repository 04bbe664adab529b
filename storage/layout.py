"""Where things live in a data directory, and what a valid project name is.

    <data_dir>/
      wal/                              write-ahead log segments (collector-local)
      lake/<table>/project=<p>/date=<YYYY-MM-DD>/hour=<HH>/<file>.parquet
      lake/_late/<table>/project=<p>/<file>.parquet
                                        late-arrival area: rows of hours a write could not open a
                                        partition for, with stored date and hour (storage.late)
      lake/_staging/                    files being written; renamed into place whole
      lake/_compaction/                 compaction lock/lease and journal
      lake/_flushed/<segment>           markers: every file of that WAL segment is published

The lake is hive-partitioned so DuckDB, Spark, Trino and friends prune by project and
time from the path alone. Partition keys live in the path, not in the files.

The lake may live elsewhere: another folder (shared by several collectors on one host) or
S3-compatible object storage (`s3://bucket/prefix`, see storage.objectstore), given as
`DataDir(root, lake=...)` or the SPANLAKE_LAKE environment variable. The WAL always stays
in the data directory on local disk.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import NamedTuple

from spanlake.storage.objectstore import LakeStore, LocalStore, S3Store

DEFAULT_PROJECT = "default"
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PARQUET_SUFFIX = ".parquet"
# Files the compactor writes: it merges a partition's files with DISTINCT ON, so each holds a span once.
COMPACTED_PREFIX = "compacted-"
COMPACT_MIN_AGE_S = 60.0  # compaction leaves younger files alone (here so config needs no DuckDB)
ALL_PROJECTS = "*"  # a retention rule for every other project
LAKE_ENV = "SPANLAKE_LAKE"


class PartitionKey(NamedTuple):
    project: str
    date: date
    hour: int

    def path(self, table: str) -> str:
        """Relative directory of this partition within the lake."""
        return f"{table}/project={self.project}/date={self.date.isoformat()}/hour={self.hour:02d}"


def valid_project(name: str) -> bool:
    """Project names are path-safe: letters, digits, `_`, `.`, `-`; at most 64; no leading dot."""
    return bool(PROJECT_NAME_RE.match(name))


class DataDir:
    """The folders of one spanlake data directory, and where its lake is.

    `lake`: None (the default: `<root>/lake`, or $SPANLAKE_LAKE when set), a folder, or an
    `s3://bucket/prefix` URL.
    """

    def __init__(self, root: str | Path, lake: str | Path | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if lake is None or str(lake) == "":
            lake = os.environ.get(LAKE_ENV) or None
        self.lake_url: str | None = None  # set for a lake on object storage
        self._lake = self.root / "lake"
        if lake is not None:
            text = str(lake)
            if text.startswith("s3://"):
                self.lake_url = text
            else:
                self._lake = Path(text.removeprefix("file://")).expanduser().resolve()
        self._store: LakeStore | None = None

    @property
    def is_remote(self) -> bool:
        """True when the lake is on object storage."""
        return self.lake_url is not None

    @property
    def lake_location(self) -> str:
        """The lake as users name it: its folder or its URL."""
        return self.lake_url or str(self._lake)

    @property
    def store(self) -> LakeStore:
        """The lake's files (local folder or object storage)."""
        if self._store is None:
            self._store = S3Store(self.lake_url) if self.lake_url else LocalStore(self._lake)
        return self._store

    def has_lake(self) -> bool:
        """Whether the lake exists (a local folder that exists; an object-storage lake always does)."""
        return self.is_remote or self.lake.is_dir()

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def lake(self) -> Path:
        """The local lake folder (for a lake on object storage: a local folder that stays unused)."""
        return self._lake

    @property
    def staging(self) -> Path:
        return self.lake / "_staging"

    def table_glob(self, table: str) -> str:
        """Glob matching every published file of a table (never staging files)."""
        return str(self.lake / table / "project=*" / "date=*" / "hour=*" / f"*{PARQUET_SUFFIX}")

    def projects(self) -> list[str]:
        """Projects with files in the lake (any table), sorted. Lists directories locally; on
        object storage it lists the span files, so keep it off hot paths there."""
        found: set[str] = set()
        if self.is_remote:
            for prefix, level in (("spans/", 1), ("_late/spans/", 2)):  # late area: see storage.late
                for entry in self.store.list_files(prefix, PARQUET_SUFFIX):
                    part = entry.rel.split("/")[level] if entry.rel.count("/") > level else ""
                    found.add(part.removeprefix("project="))
        elif self.lake.is_dir():
            dirs = [*self.lake.glob("*/project=*"), *self.lake.glob("_late/*/project=*")]
            found = {d.name.removeprefix("project=") for d in dirs if d.is_dir()}
        return sorted(p for p in found if valid_project(p))

    def create(self) -> DataDir:
        dirs = (self.wal,) if self.is_remote else (self.wal, self.lake, self.staging)
        for p in dirs:
            p.mkdir(parents=True, exist_ok=True)
        return self
