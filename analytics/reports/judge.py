"""Judge pass rate: how often evaluators pass the window's traces, by evaluator, version, prompt
version, model or day.

Which labels count (label events with source `judge`, author `<evaluator>@v<version>`,
evaluators/result.py, or `<name>@otel` for results the app sent: evaluator `<name>@otel`, no
version, evaluators/external.py):

- **Traces.** A label counts when its trace has a task (analytics.task_outcomes) that starts in
  the window and matches the filters, like the feedback report; labels set at most the clock
  skew before the window's start and any time after it (judges run once a trace is complete,
  or later in a backfill).
- **One per evaluator version and target.** The current label of each (trace, span, author):
  a re-sent event (same label_id) counts once, a newer event of the same author replaces the
  older one (analytics.labels.judge_labels).
- **Its task.** A label on a span belongs to the span's innermost task, a label on a whole
  trace (or on a span outside every task) to the trace's first task; the task gives the
  grouping keys (prompt version, model: the task's, else its first LLM call's; day: the task's
  start) and the filters.

Figures per group: `labels` (current judge labels), `passed`, `failed`, `pass_rate` = passed /
(passed + failed) (NULL when neither), `scored` and `mean_score` (labels with a score),
`traces` (distinct traces judged). Only raw spans and labels are read (no rollup: judgments
keep arriving for old traces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from spanlake.analytics.labels import judge_labels as read_judge_labels
from spanlake.analytics.reports.common import keys_select
from spanlake.analytics.reports.report import Param, Report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TASK_DIMS, TaskOptions, task_ctes, task_source

# Group-by name → column of the `judged` relation (task columns, plus the label's).
JUDGE_DIMS = {
    "evaluator": "evaluator",
    "evaluator_version": "evaluator_version",
    **{k: v for k, v in TASK_DIMS.items() if k not in ("outcome_source",)},
}


def _ctes(filters: Filters, group: GroupBy, options: TaskOptions, p: Params) -> str:
    """Task CTEs, then `judged`: each current judge label of the window's traces with its task's columns."""
    return f"""{task_ctes(filters, group, options, p)},
    jl AS (
      SELECT j.* FROM judge_labels j
      SEMI JOIN (SELECT DISTINCT project, trace_id FROM tasks) t ON t.project = j.project AND t.trace_id = j.trace_id
    ),
    first_task AS (
      SELECT project, trace_id, arg_min(span_id, start_time) AS task_id FROM tasks GROUP BY project, trace_id
    ),
    judged AS (
      SELECT t.*, j.evaluator, j.evaluator_version, j.author, j.span_id AS labelled_span_id,
        j.verdict, j.score, j.created_at AS labelled_at
      FROM jl j
      JOIN first_task f ON f.project = j.project AND f.trace_id = j.trace_id
      LEFT JOIN member m ON m.project = j.project AND m.trace_id = j.trace_id AND m.span_id = j.span_id
      JOIN tasks t ON t.project = j.project AND t.trace_id = j.trace_id AND t.span_id = coalesce(m.task_id, f.task_id)
    )"""


def _run(
    an: Analytics, filters: Filters, group: GroupBy, options: TaskOptions, evaluator: str | None, body: Callable
) -> pl.DataFrame:
    since = filters.since - options.skew if filters.since is not None else None
    labels = read_judge_labels(an.lake, filters.project, since, evaluator=evaluator)
    return an.run(task_source(filters, group, options, priced=False), body, {"judge_labels": labels})


def judge(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = (),
    *,
    bucket: str | None = None,
    evaluator: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group: labels, passed, failed, pass_rate, scored, mean_score, traces (module docstring).
    `evaluator`: only this evaluator (a name: every version; `name@vN`: one version)."""
    options = options or TaskOptions()
    group = GroupBy.parse(group_by, JUDGE_DIMS, bucket)

    def body(p: Params) -> str:
        return f"""{_ctes(filters, group, options, p)}
        SELECT {keys_select(group, JUDGE_DIMS)}
          count(*) AS labels,
          count(*) FILTER (WHERE verdict = 'pass') AS passed,
          count(*) FILTER (WHERE verdict = 'fail') AS failed,
          count(*) FILTER (WHERE verdict = 'pass') / nullif(count(*) FILTER (WHERE verdict IN ('pass', 'fail')), 0)
            AS pass_rate,
          count(score) AS scored,
          avg(score) AS mean_score,
          count(DISTINCT (project, trace_id)) AS traces
        FROM judged GROUP BY ALL"""

    df = _run(an, filters, group, options, evaluator, body)
    return df.sort(group.names, nulls_last=True) if group.names else df


def judge_failed_traces(
    an: Analytics, filters: Filters, *, limit: int = 5, evaluator: str | None = None, options: TaskOptions | None = None
) -> list[str]:
    """Ids of the window's traces with a current judge fail, the latest judged first."""
    options = options or TaskOptions()

    def body(p: Params) -> str:
        return f"""{_ctes(filters, GroupBy(), options, p)}
        SELECT trace_id, max(labelled_at) AS k FROM judged WHERE verdict = 'fail'
        GROUP BY trace_id ORDER BY k DESC, trace_id LIMIT {p.add(int(limit))}"""

    return _run(an, filters, GroupBy(), options, evaluator, body)["trace_id"].to_list()


REPORT = Report(
    "judge",
    115,
    "evaluators' pass rate on the window's traces, by evaluator, version, prompt version, model or day "
    "({evaluator=groundedness})",
    raw=lambda an, q: judge(
        an, q.filters, q.group_by, bucket=q.bucket, evaluator=q.params["evaluator"], options=q.options
    ),
    dimensions=("evaluator", "evaluator_version", "prompt_version", "model", "task_name"),
    params=(Param("evaluator", str, None, help="Only this evaluator: a name (every version), name@vN or name@otel"),),
    description="Current judge labels (one per evaluator version and target) on the traces whose task starts in "
    "the window; `pass_rate` = passed / (passed + failed); group by `day` for the trend.",
    shown_group_by=("evaluator", "evaluator_version"),
    chart="pass_rate",
)
