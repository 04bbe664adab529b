"""A labelling queue: the traces matching a saved filter that a reviewer has not labelled yet.

The filter is the trace list's (analytics.traces.filters.TraceFilters, e.g. "failed in the
last day": `TraceFilters.last(timedelta(days=1), outcome="failure")`); the queue keeps the
trace list's order. A trace counts as done once it has a current label (on the trace or any
span of it) from the reviewer (`author`), or from any reviewer when `author` is None.
Labels are written through `POST /api/v1/labels`; they show up here after the next flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from spanlake.analytics.labels import current_labels_sql
from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import MAX_PAGE, Page, TraceFilters
from spanlake.analytics.traces.trace_list import list_traces

MAX_SCAN = 10_000  # traces looked at per call


@dataclass(frozen=True)
class Queue:
    """`total` traces match, `done` of them are labelled; `next` holds the first unlabelled
    ones (the trace list's columns). `truncated`: more than MAX_SCAN traces matched, and
    only the first MAX_SCAN were counted."""

    total: int
    done: int
    next: pl.DataFrame
    truncated: bool = False

    @property
    def remaining(self) -> int:
        return self.total - self.done


def labelled_traces(an: Analytics, project: str | None, author: str | None, source: str = "human") -> set[str]:
    """Trace ids with a current label from `author` (any author when None) of `source`."""
    params: dict[str, Any] = {"source": source}
    where = ["source = $source"]
    if project is not None:
        params["project"] = project
        where.append("project = $project")
    if author is not None:
        params["author"] = author
        where.append("author = $author")
    sql = f"SELECT DISTINCT trace_id FROM ({current_labels_sql(' AND '.join(where))})"
    return {r["trace_id"] for r in an.lake.query(sql, params).to_pylist()}


def labelling_queue(
    an: Analytics,
    f: TraceFilters,
    author: str | None = None,
    source: str = "human",
    limit: int = 20,
    page: Page | None = None,
) -> Queue:
    """The queue for filter `f`: progress, and the next `limit` traces `author` has not labelled."""
    done_ids = labelled_traces(an, f.project, author, source)
    base = page or Page()
    todo: list[pl.DataFrame] = []
    pending = 0
    total = done = offset = 0
    truncated = False
    while True:
        p = Page(sort=base.sort, descending=base.descending, limit=MAX_PAGE, offset=offset)
        result = list_traces(an, f, p)
        rows = result.rows
        total = result.total
        if rows.height:
            is_done = rows["trace_id"].is_in(list(done_ids))
            done += int(is_done.sum())
            if pending < limit:
                fresh = rows.filter(~is_done).head(limit - pending)
                todo.append(fresh)
                pending += fresh.height
        offset += rows.height
        if not result.has_next or not rows.height:
            break
        if offset >= MAX_SCAN:
            truncated = True
            break
    nxt = pl.concat(todo, how="diagonal_relaxed") if todo else pl.DataFrame()
    return Queue(total=total if not truncated else offset, done=done, next=nxt, truncated=truncated)
