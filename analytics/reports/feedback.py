"""End-user feedback: how many traces got a thumbs up or down, the share that ended down, and
the mean score — for the traces of the window and filters.

Which feedback counts (label events with source `user_feedback`, `POST /api/v1/feedback`):

- **Traces.** A trace counts when it has a task (analytics.task_outcomes) that starts in the
  window and matches the filters (task name, service, model, prompt, attributes); each such
  trace counts once, whatever number of tasks it holds. Its feedback is every feedback event on
  it (on the trace or any of its spans) set at most the clock skew before the window's start
  and any time after it (feedback comes after the answer), so a window's figures fill in as
  users react.
- **Users.** Events are append-only; a user (`user_id`; feedback without one counts as one
  anonymous user per trace) who changes their mind sends a new event. A user's *vote* on a
  trace is their latest event with a value (up/down), their *score* their latest event with a
  score: a score without a value leaves the vote as it was, and the other way round. Latest
  is by `created_at`, then `ingested_at`, then `label_id` (as analytics.labels).
- **A trace's value** is the latest of its users' votes (equivalently, its latest event with a
  value): `positive` / `negative` count traces whose value is up / down, and
  `negative_share` = negative / `traces_with_value` (NULL without any).
- **Scores**: `scores` counts the users' current scores (one per user and trace), and
  `mean_score` is their mean.

Only raw spans and labels are read (no rollup: feedback keeps arriving for old traces).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl
import pyarrow as pa

from spanlake.analytics.reports.report import Report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TaskOptions, task_ctes, task_source

SOURCE = "user_feedback"
FEEDBACK_SCHEMA = pa.schema(
    [
        ("project", pa.string()),
        ("trace_id", pa.string()),
        ("author", pa.string()),
        ("created_at", pa.timestamp("us", "UTC")),
        ("ingested_at", pa.timestamp("us", "UTC")),
        ("label_id", pa.string()),
        ("value", pa.string()),
        ("score", pa.float64()),
    ]
)
_LATEST = "ORDER BY created_at DESC, ingested_at DESC, label_id DESC"


def feedback_events(an: Analytics, project: str | None, since: datetime | None) -> pa.Table:
    """End-user feedback events of `project` (all when None) set at or after `since`."""
    dd = an.lake.data_dir
    if not dd.is_remote and not any((dd.lake / "labels").glob("project=*/*/*/*.parquet")):
        return FEEDBACK_SCHEMA.empty_table()
    params: dict[str, object] = {"source": SOURCE}
    preds = ["source = $source"]
    if project is not None:
        params["project"] = project
        preds.append("project = $project")
    if since is not None:
        params["since"] = since
        preds += ["date >= CAST($since AS DATE)", "created_at >= $since"]
    sql = f"SELECT {', '.join(FEEDBACK_SCHEMA.names)} FROM labels WHERE {' AND '.join(preds)}"
    return an.lake.query(sql, params).cast(FEEDBACK_SCHEMA)


def _ctes(filters: Filters, options: TaskOptions, p: Params) -> str:
    """Task CTEs, then `fb` (the feedback events of the traces counted), `trace_value` (each
    trace's latest vote, with its time) and `user_score` (each user's latest score per trace)."""
    return f"""{task_ctes(filters, GroupBy(), options, p)},
    fb_traces AS (SELECT DISTINCT project, trace_id FROM tasks),
    fb AS (
      SELECT f.* FROM feedback_events f
      SEMI JOIN fb_traces t ON t.project = f.project AND t.trace_id = f.trace_id
    ),
    trace_value AS (
      SELECT project, trace_id, value, created_at FROM fb WHERE value IN ('up', 'down')
      QUALIFY row_number() OVER (PARTITION BY project, trace_id {_LATEST}) = 1
    ),
    user_score AS (
      SELECT project, trace_id, author, score, created_at FROM fb WHERE score IS NOT NULL
      QUALIFY row_number() OVER (PARTITION BY project, trace_id, author {_LATEST}) = 1
    )"""


def _run(an: Analytics, filters: Filters, options: TaskOptions, body: Callable[[Params], str]) -> pl.DataFrame:
    since = filters.since - options.skew if filters.since is not None else None
    events = feedback_events(an, filters.project, since)
    return an.run(task_source(filters, GroupBy(), options, priced=False), body, {"feedback_events": events})


def feedback(an: Analytics, filters: Filters, *, options: TaskOptions | None = None) -> pl.DataFrame:
    """One row: traces_with_feedback, traces_with_value, positive, negative, negative_share,
    scores, mean_score over the traces of the window and filters (see the module docstring)."""
    options = options or TaskOptions()

    def body(p: Params) -> str:
        return f"""{_ctes(filters, options, p)}
        SELECT
          (SELECT count(*) FROM (SELECT DISTINCT project, trace_id FROM fb)) AS traces_with_feedback,
          (SELECT count(*) FROM trace_value) AS traces_with_value,
          (SELECT count(*) FILTER (WHERE value = 'up') FROM trace_value) AS positive,
          (SELECT count(*) FILTER (WHERE value = 'down') FROM trace_value) AS negative,
          (SELECT count(*) FILTER (WHERE value = 'down') / nullif(count(*), 0) FROM trace_value) AS negative_share,
          (SELECT count(*) FROM user_score) AS scores,
          (SELECT avg(score) FROM user_score) AS mean_score"""

    return _run(an, filters, options, body)


def disliked_traces(
    an: Analytics, filters: Filters, by: str = "down", *, limit: int = 5, options: TaskOptions | None = None
) -> list[str]:
    """Trace ids the users liked least: by='down', the traces whose value is down, the latest
    vote first; by='score', the traces with a score, the lowest (any user's current) first."""
    options = options or TaskOptions()
    if by not in ("down", "score"):
        raise ValueError("by must be 'down' or 'score'")

    def body(p: Params) -> str:
        pick = (
            "SELECT trace_id, created_at AS k FROM trace_value WHERE value = 'down' ORDER BY k DESC, trace_id"
            if by == "down"
            else "SELECT trace_id, min(score) AS k FROM user_score GROUP BY trace_id ORDER BY k, trace_id"
        )
        return f"""{_ctes(filters, options, p)}
        {pick} LIMIT {p.add(int(limit))}"""

    return _run(an, filters, options, body)["trace_id"].to_list()


REPORT = Report(
    "feedback",
    110,
    "end-user feedback on the window's traces: thumbs up and down, the share down, the mean score",
    raw=lambda an, q: feedback(an, q.filters, options=q.options),
    description="One vote per user and trace (their latest up/down), a trace's value is its latest vote; "
    "`negative_share` = traces ending down / traces with a value; `mean_score` over each user's latest score.",
    chart="negative_share",
)
