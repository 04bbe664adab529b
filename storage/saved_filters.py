"""Saved trace filters (e.g. "failed validation in the last day"), for labelling queues.

One JSON file per filter: `<data-dir>/config/saved_filters/<project>/<name>.json`, holding
`{"name", "project", "range_s", "filters", "saved_by", "saved_at"}`. `range_s` makes the
window relative ("the last N seconds" when it is used); `filters` are the trace list's
other fields (analytics.traces.filters.TraceFilters) as plain JSON. A save replaces the
file atomically (storage.json_file: temporary file, fsync, rename), so readers never see half a
file. The dashboard saves through the server's API (POST /api/v1/saved-filters).
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from spanlake.storage.json_file import write_atomically
from spanlake.storage.layout import DataDir, valid_project

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
MAX_BYTES = 64 * 1024
SHARED = 0o644  # readable by every process of the deployment, like the lake


def valid_name(name: str) -> bool:
    """Letters, digits, spaces, `_`, `.`, `-`; starts with a letter or digit; at most 64."""
    return bool(NAME_RE.match(name))


class SavedFilters:
    """The saved filters of one data directory."""

    def __init__(self, data_dir: DataDir | str | Path) -> None:
        dd = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
        self.root = dd.root / "config" / "saved_filters"

    def _dir(self, project: str) -> Path:
        if not valid_project(project):
            raise ValueError(f"invalid project name {project!r}")
        return self.root / project

    def list(self, project: str) -> list[dict[str, Any]]:
        """The project's saved filters, by name."""
        try:
            paths = sorted(self._dir(project).glob("*.json"))
        except FileNotFoundError:
            return []
        out = []
        for p in paths:
            with contextlib.suppress(OSError, ValueError):
                out.append(orjson.loads(p.read_bytes()))
        return sorted(out, key=lambda d: str(d.get("name", "")).lower())

    def get(self, project: str, name: str) -> dict[str, Any] | None:
        if not valid_name(name):
            return None
        try:
            return orjson.loads((self._dir(project) / f"{name}.json").read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def save(
        self, project: str, name: str, filters: dict[str, Any], range_s: float | None, saved_by: str | None = None
    ) -> dict[str, Any]:
        """Save (or replace) a filter; ValueError for a bad name or an oversized filter."""
        if not valid_name(name):
            raise ValueError("a filter name has letters, digits, spaces, '_', '.', '-' (at most 64)")
        doc = {
            "name": name,
            "project": project,
            "range_s": range_s,
            "filters": filters,
            "saved_by": saved_by,
            "saved_at": datetime.now(UTC).isoformat(),
        }
        try:
            data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError as e:  # e.g. an integer beyond 64 bits
            raise ValueError(f"a saved filter must be plain JSON: {e}") from None
        if len(data) > MAX_BYTES:
            raise ValueError(f"a saved filter is at most {MAX_BYTES} bytes")
        write_atomically(self._dir(project) / f"{name}.json", data, SHARED)
        return doc
