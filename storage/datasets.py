"""Datasets: membership from the `dataset_events` table, and frozen versions written once.

Membership is append-only events (storage.schema.DATASET_EVENTS) sent through the
collector's API: an item (a trace, or one span of it) is a member when its latest event
is an `add`. A dataset exists once it has any event.

A frozen version is the examples of a dataset at one moment, never changed afterwards:

    lake/datasets/<project>/<dataset>/v<N>/examples.parquet   (EXAMPLE_SCHEMA)
    lake/datasets/<project>/<dataset>/v<N>/manifest.json       written last: the version exists once it does

N counts up from 1. On a local lake, writers of the same dataset take an exclusive
`flock` on `lake/datasets/<project>/<dataset>/.lock` while they pick N and publish, so
two processes never write the same version. (On object storage there is no such lock:
freeze a dataset from one process — the API server — at a time.)
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from spanlake.storage.json_file import file_lock
from spanlake.storage.layout import DataDir, valid_project
from spanlake.storage.reader import Lake
from spanlake.storage.schema import JSON, SCHEMA_VERSION, TIMESTAMP

DATASETS_DIR = "datasets"
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
OPS = ("create", "add", "remove")
_VERSION_DIR = re.compile(r"^v(\d+)$")

# One row per example of a frozen version (docs/datasets.md describes each column).
EXAMPLE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),  # trace_id, or trace_id:span_id
        ("project", pa.string()),
        ("dataset", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("input", pa.string()),  # the user's input as text
        ("input_messages", JSON),  # [{role, content, tool_calls, tool_call_id}]
        ("prompt_template", pa.string()),
        ("prompt_variables", JSON),  # {name: value}
        ("context", pa.list_(pa.string())),  # retrieved documents' text
        ("context_documents", JSON),  # [{id, score, content, metadata, span_name}]
        ("actual_output", pa.string()),
        ("expected_output", pa.string()),  # from the latest reviewer label that has one
        ("verdict", pa.string()),  # the latest reviewer label's
        ("failure_mode", pa.string()),
        ("score", pa.float64()),
        ("comment", pa.string()),
        ("labels", JSON),  # every current label: [{source, author, created_at, verdict, ...}]
        ("model", pa.string()),
        ("prompt_name", pa.string()),
        ("prompt_version", pa.string()),
        ("service_name", pa.string()),
        ("trace_start", TIMESTAMP),
        ("trace_url", pa.string()),
        ("added_at", TIMESTAMP),
        ("added_by", pa.string()),
        ("metadata", JSON),  # span name, category, outcome, duration, cost, tokens, models, ...
    ]
)


def valid_dataset_name(name: str) -> bool:
    """Letters, digits, `_`, `.`, `-`; starts with a letter or digit; at most 128 (path-safe)."""
    return bool(DATASET_NAME_RE.match(name))


def check_names(project: str, dataset: str) -> None:
    if not valid_project(project):
        raise ValueError(f"invalid project name {project!r}")
    if not valid_dataset_name(dataset):
        raise ValueError(f"invalid dataset name {dataset!r} (letters, digits, '_', '.', '-'; at most 128)")


# --- membership (reads the lake) -------------------------------------------------------------

_LATEST = """SELECT project, dataset, trace_id, span_id, op, author, created_at, trace_start, metadata
  FROM dataset_events WHERE op IN ('add', 'remove') AND {where}
  QUALIFY row_number() OVER (PARTITION BY project, dataset, trace_id, span_id
                             ORDER BY created_at DESC, ingested_at DESC, event_id DESC) = 1"""


def members(lake: Lake, project: str, dataset: str) -> pl.DataFrame:
    """The dataset's items, in the order they were added: trace_id, span_id, added_at, added_by,
    trace_start, metadata."""
    check_names(project, dataset)
    sql = f"""SELECT trace_id, span_id, created_at AS added_at, author AS added_by, trace_start, metadata
      FROM ({_LATEST.format(where="project = $project AND dataset = $dataset")}) WHERE op = 'add'
      ORDER BY added_at, trace_id, span_id NULLS FIRST"""
    return pl.from_arrow(lake.query(sql, {"project": project, "dataset": dataset}))  # type: ignore[return-value]


def list_datasets(lake: Lake, project: str | None = None) -> pl.DataFrame:
    """Every dataset: project, dataset, description, created_at, created_by, updated_at, examples,
    latest_version (None when never frozen)."""
    params: dict[str, Any] = {}
    where = "TRUE"
    if project is not None:
        params["project"] = project
        where = "project = $project"
    sql = f"""WITH latest AS ({_LATEST.format(where=where)}),
      info AS (
        SELECT project, dataset,
          arg_max(description, created_at) FILTER (WHERE op = 'create' AND description IS NOT NULL) AS description,
          min(created_at) AS created_at, arg_min(author, created_at) AS created_by, max(created_at) AS updated_at
        FROM dataset_events WHERE {where} GROUP BY project, dataset)
      SELECT info.*, (SELECT count(*) FROM latest l
                      WHERE l.project = info.project AND l.dataset = info.dataset AND l.op = 'add') AS examples
      FROM info ORDER BY project, dataset"""
    df: pl.DataFrame = pl.from_arrow(lake.query(sql, params or None))  # type: ignore[assignment]
    dd = lake.data_dir
    latest = [(versions(dd, p, d) or [None])[-1] for p, d in zip(df["project"], df["dataset"], strict=True)]
    return df.with_columns(pl.Series("latest_version", latest, dtype=pl.Int64))


# --- frozen versions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    """A frozen version: its manifest and where its examples are."""

    project: str
    dataset: str
    version: int
    manifest: dict[str, Any]

    @property
    def rel(self) -> str:
        return version_rel(self.project, self.dataset, self.version)

    @property
    def examples_rel(self) -> str:
        return f"{self.rel}/examples.parquet"


def dataset_rel(project: str, dataset: str) -> str:
    check_names(project, dataset)
    return f"{DATASETS_DIR}/{project}/{dataset}"


def version_rel(project: str, dataset: str, version: int) -> str:
    return f"{dataset_rel(project, dataset)}/v{version}"


def versions(data_dir: DataDir, project: str, dataset: str) -> list[int]:
    """Published version numbers of a dataset, oldest first."""
    prefix = dataset_rel(project, dataset)
    found = set()
    for e in data_dir.store.list_files(prefix, "manifest.json"):
        parts = e.rel[len(prefix) + 1 :].split("/")
        if len(parts) == 2 and (m := _VERSION_DIR.match(parts[0])):
            found.add(int(m.group(1)))
    return sorted(found)


def read_version(data_dir: DataDir, project: str, dataset: str, version: int | None = None) -> Version | None:
    """A published version (default: the latest), or None."""
    if version is None:
        found = versions(data_dir, project, dataset)
        if not found:
            return None
        version = found[-1]
    raw = data_dir.store.get_bytes(f"{version_rel(project, dataset, version)}/manifest.json")
    return None if raw is None else Version(project, dataset, version, orjson.loads(raw))


def read_examples(data_dir: DataDir, v: Version) -> pa.Table:
    return data_dir.store.read_parquet(v.examples_rel)


def fingerprint(examples: pa.Table) -> str:
    """A hash of a version's content (not when it was frozen): equal examples, equal fingerprint."""
    h = hashlib.sha256()
    for row in examples.drop_columns(["added_at"]).to_pylist():
        h.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC, default=str))
    return h.hexdigest()


@contextlib.contextmanager
def _dataset_lock(data_dir: DataDir, project: str, dataset: str) -> Iterator[None]:
    if data_dir.is_remote:
        yield
        return
    with file_lock(data_dir.lake / dataset_rel(project, dataset) / ".lock"):
        yield


def freeze(
    data_dir: DataDir,
    project: str,
    dataset: str,
    examples: pa.Table,
    author: str | None = None,
    description: str | None = None,
    force: bool = False,
) -> tuple[Version, bool]:
    """Publish `examples` as the next version; returns (version, created).

    When the latest version holds the same content (same fingerprint) it is returned
    instead of writing a copy, unless `force`.
    """
    examples = examples.cast(EXAMPLE_SCHEMA)
    digest = fingerprint(examples)
    store = data_dir.store
    with _dataset_lock(data_dir, project, dataset):
        latest = read_version(data_dir, project, dataset)
        if latest is not None and latest.manifest.get("fingerprint") == digest and not force:
            return latest, False
        number = (latest.version if latest else 0) + 1
        manifest = {
            "project": project,
            "dataset": dataset,
            "version": number,
            "frozen_at": datetime.now(UTC).isoformat(),
            "frozen_by": author,
            "description": description,
            "examples": examples.num_rows,
            "fingerprint": digest,
            "schema_version": SCHEMA_VERSION,
            "columns": EXAMPLE_SCHEMA.names,
        }
        rel = version_rel(project, dataset, number)
        store.publish(f"{rel}/examples.parquet", examples)
        store.put_bytes(f"{rel}/manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return Version(project, dataset, number, manifest), True
