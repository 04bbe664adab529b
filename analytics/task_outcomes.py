"""Tasks and their outcomes, as SQL over the span relation `sp` (see analytics.spans).

Task: a span the app marked as a task (category 'task' or a task name), otherwise — in a
trace with no marked span — the trace's root span. A root is a span without a parent (or
with a remote parent that is not in the lake): a trace whose root has not arrived has no
task until it does.

Outcome, first rule that applies:
  1. label       the latest human label on the task span (relation `task_labels`)
  2. judge       the latest judge label on the task span whose evaluator decides outcomes
                 (`decides_outcome = true` in evaluators.toml, metadata.decides_outcome on the
                 label): each evaluator version's current label counts, the latest of them wins
  3. app         the outcome the app recorded on the task span (`task_outcome`)
  4. validation  'failure' when a validation inside the task failed (validation_passed = false
                 on the task span or any span under it in the same trace)
  5. error       'failure' when the task span's status is ERROR
  6. default     TaskOptions.default_outcome ('unknown' unless configured)
A verdict pass is 'success', fail 'failure'; a label on a whole trace applies to its root span
(analytics.runner.TASK_LABELS_SQL builds `task_labels`).

A task at the root of its trace (and the only task there) owns every span of the trace, even
spans whose parent has not arrived yet; other tasks own the spans under them. Cost and tokens
of a task are those of its spans; a span inside nested tasks belongs to the innermost one, so
task costs add up without double counting.

Task name filter (`Filters.task_name`): a task's name is its `task_name` (the SDK's
`spanlake.task.name`, ...), else its span name. Task-level relations keep the tasks of that
name. Span-level ones (calls, steps, checks, retrievals) keep the spans whose *innermost*
task — the one their cost belongs to, `member` — has that name, that task having started at
most `horizon` before the span (`task_scoped`, `task_scope_ctes`). So in a trace where task
`answer` contains task `summarize`, the calls under `summarize` count for `summarize` only,
and a span outside every task (a trace whose root has not arrived) counts for no name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from spanlake.analytics.spans import (
    BILLABLE_CATEGORIES,
    RAW_FILTER_COLUMNS,
    Filters,
    GroupBy,
    Params,
    SpanSource,
    dim_predicates,
)

OUTCOMES = ("success", "failure", "unknown")
OUTCOME_SOURCES = ("label", "judge", "app", "validation", "error", "default")
# A span the app marked as a task (the SDK sets the category; other instrumentations a task name).
IS_TASK = "(category = 'task' OR task_name IS NOT NULL)"
MAX_DEPTH = 64  # guards the descendant walk against malformed (cyclic) parent links

# Group-by name → column of the `tasks` relation.
TASK_DIMS = {
    "project": "project",
    "service": "service_name",
    "model": "model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
    "task_name": "task_name",
    "name": "name",
    "outcome": "outcome",
    "outcome_source": "outcome_source",
}
_TASK_FILTER_COLS = {
    "service": "service_name",
    "model": "model",
    "response_model": "model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
}


@dataclass(frozen=True)
class TaskOptions:
    """How tasks are found and judged.

    `horizon` is how long after the window's end spans of a task that started inside it
    are still read (long-running tasks); `skew` tolerates child clocks running early.
    """

    default_outcome: str = "unknown"
    horizon: timedelta = timedelta(hours=6)
    skew: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.default_outcome not in OUTCOMES:
            raise ValueError(f"default outcome must be one of {OUTCOMES}")


def latest_label_cte(name: str = "latest_label") -> str:
    """CTE `name`: per labelled task span (project, trace_id, span_id), the `outcome` its
    verdicts decide and the `outcome_source` ('label' or 'judge'): the latest reviewer verdict,
    else the latest deciding judge's (rules 1 and 2)."""
    human = "coalesce(outcome_source, 'label') = 'label'"
    return f"""{name} AS (
      SELECT project, trace_id, span_id,
        coalesce(arg_max(outcome, labeled_at) FILTER (WHERE {human}),
                 arg_max(outcome, labeled_at) FILTER (WHERE outcome_source = 'judge')) AS outcome,
        CASE WHEN count(*) FILTER (WHERE {human}) > 0 THEN 'label' ELSE 'judge' END AS outcome_source
      FROM task_labels GROUP BY project, trace_id, span_id
    )"""


def task_source(filters: Filters, group: GroupBy, opts: TaskOptions, *, priced: bool = True) -> SpanSource:
    """Read whole traces around the window; task-level filters apply after tasks are found."""
    return SpanSource(
        filters,
        group,
        span_level_filters=False,
        widen_after=opts.horizon,
        widen_before=opts.skew,
        priced=priced,
        outside_window_traces_only=True,
    )


def task_ctes(filters: Filters, group: GroupBy, opts: TaskOptions, p: Params, spans: str = "sp") -> str:
    """CTEs after `sp` (or the relation named `spans`, read like `task_source`): trace_agg and
    the simple tasks, the walk for other traces, member (each span's innermost task), task_rows
    (task spans with their aggregates), tasks_all and tasks (tasks_all with the filters)."""
    window = []
    if filters.since is not None:
        window.append(f"t.start_time >= {p.add(filters.since)}")
    if filters.until is not None:
        window.append(f"t.start_time < {p.add(filters.until)}")
    where = " AND ".join(window) or "TRUE"
    final = dim_predicates(filters, p, _TASK_FILTER_COLS)
    if filters.attributes:
        final.append("attr_match")
    if filters.task_name is not None:
        final.append(f"task_name = {p.add(filters.task_name)}")
    final_where = " AND ".join(final) or "TRUE"
    default = p.add(opts.default_outcome)
    g_attrs = "".join(f"t.g_attr_{i}, " for i in range(len(group.attrs)))
    simple_when = (
        "(n_marked = 1 AND coalesce(marked_parentless, false)) "
        "OR (n_marked = 0 AND n_roots = 1 AND coalesce(roots_parentless, false))"
    )
    return f"""-- One pass over the spans, per trace. Most traces have one task that is their root (or
    -- one marked span at the root): that task owns every span of the trace, even spans whose
    -- parent has not arrived, and its aggregates are the trace's. Other traces walk the tree.
    trace_agg AS (
      SELECT project, trace_id,
        count(*) FILTER (WHERE {IS_TASK}) AS n_marked,
        count(*) FILTER (WHERE is_root) AS n_roots,
        bool_and(parent_span_id IS NULL) FILTER (WHERE {IS_TASK}) AS marked_parentless,
        bool_and(parent_span_id IS NULL) FILTER (WHERE is_root) AS roots_parentless,
        coalesce(any_value(span_id) FILTER (WHERE {IS_TASK}), any_value(span_id) FILTER (WHERE is_root)) AS task_id,
        {_aggregates("TRUE")}
      FROM {spans} s GROUP BY project, trace_id
    ),
    simple AS (SELECT * FROM trace_agg WHERE {simple_when}),
    -- The task span of each simple trace that starts in the window, with its trace's aggregates.
    simple_rows AS (
      SELECT t.*, {_prefixed("s")} FROM {spans} t JOIN simple s
        ON s.project = t.project AND s.trace_id = t.trace_id AND s.task_id = t.span_id
      WHERE {where}
    ),
    -- Every other trace with a task candidate: a marked span, or a root whose parent is not here.
    walk_sp AS (
      SELECT s.* FROM {spans} s SEMI JOIN (SELECT project, trace_id FROM trace_agg
        WHERE (n_marked > 0 OR n_roots > 0) AND NOT ({simple_when})) c
        ON c.project = s.project AND c.trace_id = s.trace_id
    ),
    marked_traces AS (SELECT DISTINCT project, trace_id FROM walk_sp WHERE {IS_TASK}),
    task_candidates AS (
      SELECT t.* FROM walk_sp t
      WHERE {IS_TASK}
        OR (t.is_root
            AND NOT EXISTS (SELECT 1 FROM marked_traces m WHERE m.project = t.project AND m.trace_id = t.trace_id)
            AND NOT EXISTS (SELECT 1 FROM walk_sp q WHERE q.project = t.project AND q.trace_id = t.trace_id
                            AND q.span_id = t.parent_span_id))
    ),
    walk_spans AS (SELECT t.* FROM task_candidates t WHERE {where}),
    edges AS (
      SELECT e.project, e.trace_id, e.span_id, e.parent_span_id FROM walk_sp e WHERE e.parent_span_id IS NOT NULL
    ),
    walk(project, trace_id, task_id, span_id, depth) AS (
      SELECT t.project, t.trace_id, t.span_id, t.span_id, 0 FROM walk_spans t
      UNION ALL
      SELECT w.project, w.trace_id, w.task_id, e.span_id, w.depth + 1
      FROM walk w JOIN edges e
        ON e.project = w.project AND e.trace_id = w.trace_id AND e.parent_span_id = w.span_id
      WHERE w.depth < {MAX_DEPTH}
    ),
    walk_m AS (
      SELECT *, depth = min(depth) OVER (PARTITION BY project, trace_id, span_id) AS own FROM walk
    ),
    -- Each span's innermost task (the one its cost belongs to).
    member AS (
      SELECT s.project, s.trace_id, st.span_id AS task_id, s.span_id FROM {spans} s
      JOIN simple_rows st ON st.project = s.project AND st.trace_id = s.trace_id
      UNION ALL
      SELECT project, trace_id, task_id, span_id FROM walk_m WHERE own
    ),
    walk_agg AS (
      SELECT w.project, w.trace_id, w.task_id, {_aggregates("w.own")}
      FROM walk_m w JOIN walk_sp s ON s.project = w.project AND s.trace_id = w.trace_id AND s.span_id = w.span_id
      GROUP BY w.project, w.trace_id, w.task_id
    ),
    -- Task spans with their aggregates (`a_*`).
    task_rows AS (
      SELECT * FROM simple_rows
      UNION ALL
      SELECT t.*, {_prefixed("a")} FROM walk_spans t
      JOIN walk_agg a ON a.project = t.project AND a.trace_id = t.trace_id AND a.task_id = t.span_id
    ),
    {latest_label_cte()},
    tasks_all AS (
      SELECT t.project, t.trace_id, t.span_id, coalesce(t.task_name, t.name) AS task_name, t.name,
        t.start_time, t.duration_ms, t.service_name, t.status_code, t.error_type, t.status_message, t.attr_match,
        {g_attrs}
        coalesce(t.model, t.a_first_model) AS model,
        coalesce(t.provider, t.a_first_provider) AS provider,
        coalesce(t.prompt_name, t.a_first_prompt_name) AS prompt_name,
        coalesce(t.prompt_version, t.a_first_prompt_version) AS prompt_version,
        CASE WHEN l.outcome IS NOT NULL THEN l.outcome
             WHEN t.task_outcome IS NOT NULL THEN t.task_outcome
             WHEN t.a_validation_failed THEN 'failure'
             WHEN t.status_code = 'ERROR' THEN 'failure'
             ELSE {default} END AS outcome,
        CASE WHEN l.outcome IS NOT NULL THEN l.outcome_source
             WHEN t.task_outcome IS NOT NULL THEN 'app'
             WHEN t.a_validation_failed THEN 'validation'
             WHEN t.status_code = 'ERROR' THEN 'error'
             ELSE 'default' END AS outcome_source,
        t.task_outcome_reason,
        t.a_spans AS spans, t.a_validations AS validations, t.a_validation_failures AS validation_failures,
        t.a_cost_usd AS cost_usd, t.a_reported_cost_usd AS reported_cost_usd, t.a_llm_calls AS llm_calls,
        t.a_unpriced_calls AS unpriced_calls, t.a_input_tokens AS input_tokens, t.a_output_tokens AS output_tokens
      FROM task_rows t
      LEFT JOIN latest_label l ON l.project = t.project AND l.trace_id = t.trace_id AND l.span_id = t.span_id
    ),
    tasks AS (SELECT * FROM tasks_all WHERE {final_where})"""


def earlier_tasks(filters: Filters, opts: TaskOptions) -> Filters:
    """`filters` with `since` moved `horizon` earlier: the tasks the window's spans can belong to."""
    return replace(filters, since=filters.since - opts.horizon) if filters.since is not None else filters


def named_member_cte(filters: Filters, p: Params, name: str = "named_member") -> str:
    """CTE `name`: (project, trace_id, span_id) of the spans whose innermost task is named
    `filters.task_name` (after `task_ctes`, whose `member` and `tasks_all` it reads)."""
    return f"""{name} AS (
      SELECT DISTINCT m.project, m.trace_id, m.span_id FROM member m
      JOIN tasks_all t ON t.project = m.project AND t.trace_id = m.trace_id AND t.span_id = m.task_id
      WHERE t.task_name = {p.add(filters.task_name)}
    )"""


def task_scoped(src: SpanSource, opts: TaskOptions) -> SpanSource:
    """The source a span-level report reads: `src` itself, or with a task name filter, whole
    traces from `horizon` + skew before its window to `horizon` after (to find the tasks its
    spans are in); `task_scope_ctes` then keeps what `src` would have read."""
    if src.filters.task_name is None:
        return src
    return replace(
        src,
        span_level_filters=False,
        categories=None,
        widen_before=max(src.widen_before, opts.horizon + opts.skew),
        widen_after=max(src.widen_after, opts.horizon),
        outside_window_traces_only=True,
    )


def task_scope_ctes(src: SpanSource, opts: TaskOptions, p: Params, name: str = "scoped_sp") -> tuple[str, str]:
    """(CTEs, relation) of a span-level report read through `task_scoped(src)`: without a task
    name filter a placeholder CTE and `sp`; with one, the task CTEs and `name`: the spans of
    `src`'s window, categories and span-level filters whose innermost task has that name."""
    f = src.filters
    if f.task_name is None:
        return "_scope AS (SELECT 1)", "sp"
    preds = []
    if f.since is not None:
        preds.append(f"start_time >= {p.add(f.since)}")
    if f.until is not None:
        preds.append(f"start_time < {p.add(f.until)}")
    if src.categories is not None:
        preds.append(f"category IN ({', '.join(p.add(c) for c in src.categories)})")
    if src.span_level_filters:
        preds += dim_predicates(f, p, RAW_FILTER_COLUMNS)
        if f.attributes:
            preds.append("attr_match")
    ctes = f"""{task_ctes(earlier_tasks(f, opts), GroupBy(), opts, p)},
    {named_member_cte(f, p)},
    {name} AS (
      SELECT s.* FROM (SELECT * FROM sp WHERE {" AND ".join(preds) or "TRUE"}) s
      SEMI JOIN named_member m ON m.project = s.project AND m.trace_id = s.trace_id AND m.span_id = s.span_id
    )"""
    return ctes, name


AGGREGATE_NAMES = (
    "spans",
    "validation_failed",
    "validations",
    "validation_failures",
    "cost_usd",
    "reported_cost_usd",
    "llm_calls",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "first_model",
    "first_provider",
    "first_prompt_name",
    "first_prompt_version",
)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{name} AS a_{name}" for name in AGGREGATE_NAMES)


def _aggregates(own: str) -> str:
    """Per-task aggregates over its spans `s`; `own` marks spans whose innermost task this is."""
    first_call = f"s.category IN {BILLABLE_CATEGORIES} AND s.model IS NOT NULL"
    return f"""count(*) AS spans,
        coalesce(bool_or(s.validation_passed = false), false) AS validation_failed,
        count(*) FILTER (WHERE s.validation_passed IS NOT NULL) AS validations,
        count(*) FILTER (WHERE s.validation_passed = false) AS validation_failures,
        sum(s.cost_usd) FILTER (WHERE {own}) AS cost_usd,
        sum(s.reported_cost) FILTER (WHERE {own}) AS reported_cost_usd,
        count(*) FILTER (WHERE {own} AND s.billable) AS llm_calls,
        count(*) FILTER (WHERE {own} AND s.unpriced) AS unpriced_calls,
        coalesce(sum(s.input_tokens) FILTER (WHERE {own} AND s.billable), 0)::BIGINT AS input_tokens,
        coalesce(sum(s.output_tokens) FILTER (WHERE {own} AND s.billable), 0)::BIGINT AS output_tokens,
        arg_min(s.model, s.start_time) FILTER (WHERE {first_call}) AS first_model,
        arg_min(s.provider, s.start_time) FILTER (WHERE {first_call}) AS first_provider,
        arg_min(s.prompt_name, s.start_time) FILTER (WHERE s.prompt_name IS NOT NULL) AS first_prompt_name,
        arg_min(s.prompt_version, s.start_time) FILTER (WHERE s.prompt_version IS NOT NULL) AS first_prompt_version"""
