"""Where things live in a data directory, and what a valid project name is.

    <data_dir>/
      wal/                              write-ahead log segments (collector-local)
      lake/<table>/project=<p>/date=<YYYY-MM-DD>/hour=<HH>/<file>.parquet
      lake/_staging/                    files being written; renamed into place whole

The lake is hive-partitioned so DuckDB, Spark, Trino and friends prune by project and
time from the path alone. Partition keys live in the path, not in the files.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import NamedTuple

DEFAULT_PROJECT = "default"
PROJECT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PARQUET_SUFFIX = ".parquet"


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
    """The folders of one spanlake data directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def staging(self) -> Path:
        return self.lake / "_staging"

    def table_glob(self, table: str) -> str:
        """Glob matching every published file of a table (never staging files)."""
        return str(self.lake / table / "project=*" / "date=*" / "hour=*" / f"*{PARQUET_SUFFIX}")

    def create(self) -> DataDir:
        for p in (self.wal, self.lake, self.staging):
            p.mkdir(parents=True, exist_ok=True)
        return self
