"""Complete traces after a durable cursor: what one online cycle (evaluators.online) takes.

A trace is complete when its newest span's `ingested_at` is at or before the horizon. Traces are
taken oldest first by (newest ingested_at, project, trace id); the cursor is that triple of the
last trace handled, so traces with equal timestamps are neither skipped nor repeated. When more
than `max_backlog` are waiting, the oldest are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spanlake.analytics.runner import Analytics


@dataclass(frozen=True, order=True)
class Cursor:
    """The last trace handled: its newest span's ingested_at (µs since 1970), project, trace id."""

    ingested_at_us: int = 0
    project: str = ""
    trace_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ingested_at_us": self.ingested_at_us, "project": self.project, "trace_id": self.trace_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Cursor:
        if not d:
            return cls()
        return cls(int(d.get("ingested_at_us") or 0), str(d.get("project") or ""), str(d.get("trace_id") or ""))

    @property
    def at(self) -> datetime | None:
        return datetime.fromtimestamp(self.ingested_at_us / 1e6, UTC) if self.ingested_at_us else None


_CANDIDATES = """
WITH c AS (
  SELECT project, trace_id, max(epoch_us(ingested_at)) AS last_us, min(start_time) AS trace_start
  FROM spans_raw WHERE epoch_us(ingested_at) >= $c_us
  GROUP BY project, trace_id
  HAVING max(epoch_us(ingested_at)) <= $h_us
     AND (max(epoch_us(ingested_at)) > $c_us
          OR (project > $c_project OR (project = $c_project AND trace_id > $c_trace)))
), n AS (
  SELECT *, row_number() OVER (ORDER BY last_us, project, trace_id) AS rn, count(*) OVER () AS total FROM c
)
SELECT project, trace_id, last_us, trace_start, rn, total FROM n
WHERE rn >= greatest(total - $max_backlog, 1) ORDER BY rn LIMIT $limit"""


@dataclass(frozen=True)
class Candidate:
    project: str
    trace_id: str
    last_us: int
    trace_start: datetime

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.last_us, self.project, self.trace_id)


def complete_traces(
    an: Analytics, cursor: Cursor, horizon: datetime, batch: int, max_backlog: int
) -> tuple[list[Candidate], Cursor, int, int]:
    """(the next `batch` complete traces after `cursor`, the cursor past the skipped ones,
    how many were skipped, how many wait after the batch)."""
    params = {
        "c_us": cursor.ingested_at_us,
        "c_project": cursor.project,
        "c_trace": cursor.trace_id,
        "h_us": int(horizon.timestamp() * 1e6),
        "max_backlog": max(max_backlog, 0),
        "limit": batch + 1,
    }
    rows = an.lake.query(_CANDIDATES, params).to_pylist()
    if not rows:
        return [], cursor, 0, 0
    total = int(rows[0]["total"])
    skip = max(0, total - max(max_backlog, 0))
    found = [Candidate(r["project"], r["trace_id"], int(r["last_us"]), r["trace_start"]) for r in rows]
    if skip:  # the first row is the newest of the skipped ones: the cursor moves past it
        cursor = found.pop(0).cursor
    taken = found[:batch]
    return taken, cursor, skip, total - skip - len(taken)
