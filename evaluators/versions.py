"""Evaluator versions: each (project, name) numbers the definitions it has had.

    <data-dir>/evaluators/versions.json
    {"projects": {"<project>": {"<name>": [{"version": 1, "fingerprint": "…", "first_seen": "…"}, …]}}}

A definition's fingerprint (definition.Evaluator.fingerprint: kind, params, decides_outcome)
gets version 1 the first time its name is seen, and a fingerprint never seen for that name
gets the next integer. A fingerprint seen before gets its old version back, so reverting a
change returns to that version (and its results, label ids and alignment, count together
again). The file only grows; it is changed under its lock and replaced atomically
(storage.json_file), so the server and a CLI assigning at the same time agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from spanlake.evaluators.definition import Evaluator
from spanlake.storage.json_file import JsonFile

DIR = "evaluators"
FILE_NAME = "versions.json"
MODE = 0o644  # fingerprints and dates, nothing secret

History = dict[str, dict[str, list[dict[str, Any]]]]  # project → name → versions, oldest first


def _parse(raw: bytes) -> History:
    doc = orjson.loads(raw)
    projects = doc.get("projects") if isinstance(doc, dict) else None
    if not isinstance(projects, dict):
        raise ValueError("not an evaluator versions file (no projects)")
    return projects


def _dump(projects: History) -> bytes:
    return orjson.dumps({"projects": projects}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


class VersionRegistry:
    """The versions of every evaluator of one data directory (`root`)."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / DIR / FILE_NAME
        self._file: JsonFile[History] = JsonFile(self.path, _parse, _dump, dict, "evaluator versions", MODE)

    def assign(self, evaluators: Iterable[Evaluator]) -> tuple[Evaluator, ...]:
        """The evaluators with their versions set (new fingerprints are recorded first)."""
        evaluators = tuple(evaluators)
        known = _lookup(self._file.current(), evaluators)
        if any(_key(e) not in known for e in evaluators):  # something new: record it under the lock
            with self._file.change() as projects:
                now = datetime.now(UTC).isoformat(timespec="seconds")
                for e in evaluators:
                    history = projects.setdefault(e.project, {}).setdefault(e.name, [])
                    if not any(h["fingerprint"] == e.fingerprint for h in history):
                        version = max((h["version"] for h in history), default=0) + 1
                        history.append({"version": version, "fingerprint": e.fingerprint, "first_seen": now})
                known = _lookup(projects, evaluators)
        return tuple(dataclasses.replace(e, version=known[_key(e)]) for e in evaluators)

    def history(self, project: str, name: str) -> list[dict[str, Any]]:
        """Every version of an evaluator: [{version, fingerprint, first_seen}], oldest first."""
        return [dict(h) for h in self._file.read().get(project, {}).get(name, [])]

    def version_of(self, evaluator: Evaluator) -> int | None:
        """The version of this definition when it was assigned one (None when not yet)."""
        return _lookup(self._file.current(), (evaluator,)).get(_key(evaluator))


def _key(e: Evaluator) -> tuple[str, str, str]:
    return (e.project, e.name, e.fingerprint)


def _lookup(projects: History, evaluators: Iterable[Evaluator]) -> dict[tuple[str, str, str], int]:
    out = {}
    for e in evaluators:
        for h in projects.get(e.project, {}).get(e.name, []):
            if h["fingerprint"] == e.fingerprint:
                out[_key(e)] = h["version"]
    return out
