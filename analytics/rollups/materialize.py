"""Bring the hourly rollups up to date with the lake: every table the reports declare, the
overview's and the trace-id index, each hour written whole, then renamed into place.

`spanlake analytics run` calls `run`; the server's schedule (analytics.rollups.schedule) runs
`python -m spanlake.analytics.rollups.materialize DATA_DIR [LAKE]` in a child process.

A run rebuilds the hours a changed span file can affect (analytics.rollups.state), the hours
of traces that got new human labels (tables holding outcomes), and everything when prices or
task options change.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from spanlake.analytics.reports.registry import REPORTS
from spanlake.analytics.rollups.state import (
    STATE_VERSION,
    affected,
    changed_hours,
    dump_state,
    label_signatures,
    load_state,
    price_fingerprint,
    source_signatures,
)
from spanlake.analytics.rollups.tables import HOUR, Table, hour_name, rollup_dir
from spanlake.analytics.rollups.trace_index import TRACES, labelled_hours, linked_hours
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.analytics.traces.overview import OVERVIEW
from spanlake.storage.json_file import file_lock, write_atomically
from spanlake.storage.layout import DataDir

CHUNK = 24  # hours per builder query during a run
CHILD_NICE = 10  # CPU priority of the scheduled run (`python -m`)
# The order runs build (and `analytics run` prints) the tables in; tables added later follow.
ORDER = ("calls", "tasks", "steps", "checks", "retrieval", "overview", "traces", "unpriced", "messages", "documents",
         "task_top")  # fmt: skip


def _collect() -> dict[str, Table]:
    found: dict[str, Table] = {}
    for t in [*(t for r in REPORTS.values() for t in r.tables), OVERVIEW, TRACES]:
        if found.setdefault(t.name, t) is not t:
            raise ValueError(f"two rollup tables are named {t.name!r}")
    rank = {name: i for i, name in enumerate(ORDER)}
    return {n: found[n] for n in sorted(found, key=lambda n: rank.get(n, len(ORDER)))}


TABLES = _collect()


@dataclass(frozen=True)
class RunResult:
    hours_seen: int
    call_hours_rebuilt: int
    task_hours_rebuilt: int
    full_rebuild: bool
    rebuilt: dict[str, int] = field(default_factory=dict)  # table → hours rebuilt
    labelled_hours: int = 0  # hours rebuilt because their traces got new labels


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One run at a time per data directory (the server's schedule and the CLI may overlap)."""
    with file_lock(root / ".lock"):
        yield


def _ranges(hours: Sequence[datetime], limit: int = 10**9) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering sorted hours, at most `limit` hours each."""
    out: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h and (h - out[-1][0]) < limit * HOUR:
            out[-1] = (out[-1][0], h + HOUR)
        else:
            out.append((h, h + HOUR))
    return out


def run(
    an: Analytics,
    options: TaskOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    full: bool = False,
) -> RunResult:
    """Bring the rollups up to date with the lake; `progress(done, total)` reports hours written."""
    options = options or TaskOptions()
    dd = an.lake.data_dir
    root = rollup_dir(dd)
    with _locked(root):
        state = load_state(root / "state.json")
        fingerprint = price_fingerprint(an, options)
        if full or state.get("prices") != fingerprint:
            state = {}
        signatures = source_signatures(dd)
        labels = label_signatures(dd)
        lake_hours = set(signatures)
        changed = changed_hours(state, signatures)
        full_rebuild = not state.get("hours")
        relabelled = labelled_hours(an, state, labels) if not full_rebuild else set()
        plan: dict[str, list[datetime]] = {}
        cache: list[set[datetime]] = []

        def linked() -> set[datetime]:
            if not cache:
                cache.append(linked_hours(an, changed & lake_hours) if not full_rebuild else set())
            return cache[0]

        for name, table in TABLES.items():
            hours = affected(table, options, changed, lake_hours, linked)
            if table.labels:
                hours |= lake_hours if relabelled is None else relabelled
            plan[name] = sorted(hours & lake_hours)
        total = sum(len(h) for h in plan.values())
        done = 0
        for name, hours in plan.items():
            table = TABLES[name]
            for start, end in _ranges(hours, CHUNK):
                df = table.build(an, Filters(since=start, until=end), options)
                for i in range(int((end - start) / HOUR)):
                    h = start + i * HOUR
                    part = df.filter(pl.col("hour") == h) if df.height else df
                    path = root / name / f"{hour_name(h)}.parquet"
                    if part.height:
                        _write_atomic(path, part.write_parquet)
                    else:
                        path.unlink(missing_ok=True)
                    done += 1
                    if progress:
                        progress(done, total)
        for h in changed - lake_hours:
            for name in TABLES:
                (root / name / f"{hour_name(h)}.parquet").unlink(missing_ok=True)
        new_state = {
            "version": STATE_VERSION,
            "prices": fingerprint,
            "hours": {hour_name(h): s for h, s in signatures.items()},
            "labels": labels,
        }
        write_atomically(root / "state.json", dump_state(new_state), 0o644)  # under the run's lock
    n_labelled = len(lake_hours) if relabelled is None else len(relabelled & lake_hours)
    return RunResult(
        len(signatures),
        len(plan["calls"]),
        len(plan["tasks"]),
        full_rebuild,
        {k: len(v) for k, v in plan.items()},
        n_labelled,
    )


def run_job(data_dir: str | Path, lake: str | None = None) -> str:
    """Bring the rollups of one data directory up to date; returns a one-line summary."""
    dd = DataDir(data_dir, lake)
    if dd.is_remote or not dd.lake.is_dir():
        return ""  # rollups are kept for a local lake only
    t0 = time.monotonic()
    result = run(Analytics(dd))
    if not any(result.rebuilt.values()):
        return ""
    return f"rollups: rebuilt {result.rebuilt} in {time.monotonic() - t0:.1f} s"


if __name__ == "__main__":
    os.nice(CHILD_NICE)  # the schedule's child: ingest first
    summary = run_job(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    if summary:
        print(summary, file=sys.stderr)
