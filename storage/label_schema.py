"""Each project's label schema: its failure modes, score range and required fields.

    <data_dir>/config/label_schema/<project>/v<N>.json   one file per version, written once

A new version is written to a temporary file, fsynced, then hard-linked to `v<N+1>.json`:
the link fails if that version exists, so two writers that both start from version N
cannot both succeed (the second gets `SchemaConflict` and retries from the newer
version). Every version is kept (history); the current schema is the highest version, or
the built-in default (version 0) when the project has none. Any process on the host can
read the files; the collector's API (`PUT /api/v1/label-schema`) is the usual writer.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from spanlake.storage.layout import DataDir, valid_project
from spanlake.storage.writer import fsync_dir, makedirs_durable

DEFAULT_FAILURE_MODES = (
    "hallucination",
    "retrieval_miss",
    "wrong_tool",
    "format_error",
    "policy_violation",
    "too_slow",
    "too_expensive",
)
LABEL_FIELDS = ("verdict", "failure_mode", "score", "comment", "expected_output")
MAX_FAILURE_MODES = 500
_VERSION_FILE = re.compile(r"^v(\d{6})\.json$")

FailureMode = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
LabelField = Literal["verdict", "failure_mode", "score", "comment", "expected_output"]


class SchemaConflict(Exception):
    """The schema changed since the version the caller started from."""


class LabelSchema(BaseModel):
    """What a label in a project may and must hold.

    `required` applies to labels from human reviewers (judges and APIs may send just a
    score); `failure_mode`, when sent by anyone, must be in `failure_modes`; a score must
    lie in [score_min, score_max] where those are set. `score_buckets` splits that range
    into equal bins when agreement on scores is measured.
    """

    model_config = ConfigDict(extra="forbid")

    version: int = Field(default=0, ge=0)
    failure_modes: list[FailureMode] = Field(default_factory=lambda: list(DEFAULT_FAILURE_MODES))
    score_min: float | None = None
    score_max: float | None = None
    score_buckets: int = Field(default=5, ge=2, le=100)
    required: list[LabelField] = Field(default_factory=list)
    require_failure_mode_on_fail: bool = False
    updated_at: datetime | None = None
    updated_by: Annotated[str, StringConstraints(max_length=256)] | None = None

    @field_validator("failure_modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        if len(v) > MAX_FAILURE_MODES:
            raise ValueError(f"at most {MAX_FAILURE_MODES} failure modes")
        if len(set(v)) != len(v):
            raise ValueError("failure modes must be unique")
        return v

    @model_validator(mode="after")
    def _range(self) -> LabelSchema:
        for v in (self.score_min, self.score_max):
            if v is not None and not math.isfinite(v):
                raise ValueError("score_min and score_max must be finite numbers")
        if self.score_min is not None and self.score_max is not None and self.score_min >= self.score_max:
            raise ValueError("score_min must be below score_max")
        return self

    def problem(self, label: Mapping[str, Any]) -> str | None:
        """Why `label` (a dict with the label fields and `source`) breaks this schema, or None."""
        mode = label.get("failure_mode")
        if mode is not None and mode not in self.failure_modes:
            return f"failure_mode {mode!r} is not in the project's list: {', '.join(self.failure_modes)}"
        score = label.get("score")
        if score is not None:
            if self.score_min is not None and score < self.score_min:
                return f"score {score} is below the project's minimum {self.score_min}"
            if self.score_max is not None and score > self.score_max:
                return f"score {score} is above the project's maximum {self.score_max}"
        if label.get("source") == "human":
            missing = [f for f in self.required if label.get(f) is None]
            if missing:
                return f"the project requires {', '.join(missing)} on a reviewer's label"
            if self.require_failure_mode_on_fail and label.get("verdict") == "fail" and mode is None:
                return "the project requires a failure_mode when the verdict is fail"
        return None

    def score_bucket(self, score: float) -> int:
        """The agreement bin of a score (0 .. score_buckets-1); integers when no range is set."""
        if self.score_min is None or self.score_max is None:
            return round(score)
        width = (self.score_max - self.score_min) / self.score_buckets
        return min(self.score_buckets - 1, max(0, math.floor((score - self.score_min) / width)))


class LabelSchemas:
    """The label schemas of one data directory: read (cached per folder change) and write."""

    def __init__(self, data_dir: DataDir | str | Path) -> None:
        dd = data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
        self.root = dd.root / "config" / "label_schema"
        self._cache: dict[str, tuple[int, LabelSchema]] = {}
        self._lock = threading.Lock()

    def _dir(self, project: str) -> Path:
        if not valid_project(project):
            raise ValueError(f"invalid project name {project!r}")
        return self.root / project

    def versions(self, project: str) -> list[int]:
        """Saved versions of a project's schema, oldest first."""
        try:
            names = os.listdir(self._dir(project))
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _VERSION_FILE.match(n)))

    def get(self, project: str, version: int | None = None) -> LabelSchema:
        """The current schema (or an older `version`); the default when none was saved."""
        folder = self._dir(project)
        if version is not None:
            return self._read(folder, version) if version else LabelSchema()
        try:
            stamp = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return LabelSchema()
        with self._lock:
            cached = self._cache.get(project)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        versions = self.versions(project)
        schema = self._read(folder, versions[-1]) if versions else LabelSchema()
        with self._lock:
            self._cache[project] = (stamp, schema)
        return schema

    def _read(self, folder: Path, version: int) -> LabelSchema:
        return LabelSchema.model_validate(orjson.loads((folder / f"v{version:06d}.json").read_bytes()))

    def save(self, project: str, schema: LabelSchema, author: str | None = None) -> LabelSchema:
        """Write `schema` as the version after `schema.version`; SchemaConflict if that exists."""
        folder = self._dir(project)
        makedirs_durable(folder)
        saved = schema.model_copy(
            update={"version": schema.version + 1, "updated_at": datetime.now(UTC), "updated_by": author}
        )
        dest = folder / f"v{saved.version:06d}.json"
        tmp = folder / f".{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(orjson.dumps(saved.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise SchemaConflict(
                    f"the label schema of {project!r} changed (now version {self.versions(project)[-1]}); "
                    "read it again and retry"
                ) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(folder)
        return saved

    def update(self, project: str, author: str | None = None, attempts: int = 20, **changes: Any) -> LabelSchema:
        """Apply `changes` to the current schema and save, retrying on a concurrent change.

        `add_failure_modes` / `remove_failure_modes` (iterables) edit the list; other keys
        replace fields.
        """
        add: Iterable[str] = changes.pop("add_failure_modes", ()) or ()
        remove = set(changes.pop("remove_failure_modes", ()) or ())
        for _ in range(attempts):
            current = self.get(project)
            modes = [m for m in current.failure_modes if m not in remove]
            modes += [m for m in dict.fromkeys(add) if m not in modes]
            data = current.model_dump() | changes | {"failure_modes": modes}
            try:
                return self.save(project, LabelSchema.model_validate(data), author)
            except SchemaConflict:
                continue
        raise SchemaConflict(f"the label schema of {project!r} kept changing; try again")
