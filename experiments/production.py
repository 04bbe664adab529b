"""Production sides: the lake's tasks of a window for two values of a dimension (prompt version
`v1` against `v2`, one model against another), each task an unpaired Item.

The tasks are the compare report's own (`analytics.reports.compare.compared_tasks`: the task
relation of analytics.task_outcomes, with its outcome rules), so a side's task count, success
count, total cost and p50/p95 duration equal `spanlake report compare` for the same window
(computed from the raw lake; the report's rollup answer has approximate percentiles).

A side holds at most MAX_TASKS_PER_SIDE tasks: beyond, a ValueError asks for a narrower window
or a filter rather than reading an unbounded number of rows into memory.
"""

from __future__ import annotations

import pyarrow as pa

from spanlake.analytics.reports.compare import compared_tasks
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params
from spanlake.analytics.task_outcomes import TaskOptions, task_source
from spanlake.experiments.sides import Item, Side

MAX_TASKS_PER_SIDE = 200_000
SUCCESS = {"success": True, "failure": False}  # 'unknown' → None

# The failure mode of each task span's latest failing reviewer verdict: the same label events
# as the label outcome rule (analytics.runner.TASK_LABELS_SQL: source 'human', a label
# on a whole trace applies to its root span), latest first by created_at, then label_id.
FAILURE_MODES_SQL = """
WITH human AS (
  SELECT project, trace_id, span_id, created_at, label_id, failure_mode
  FROM labels WHERE source = 'human' AND verdict = 'fail'
), roots AS (
  SELECT project, trace_id, any_value(span_id) AS root_id FROM spans
  WHERE is_root AND trace_id IN (SELECT trace_id FROM human WHERE span_id IS NULL)
  GROUP BY project, trace_id
)
SELECT h.project, h.trace_id, coalesce(h.span_id, r.root_id) AS span_id, h.failure_mode
FROM human h LEFT JOIN roots r ON r.project = h.project AND r.trace_id = h.trace_id
WHERE coalesce(h.span_id, r.root_id) IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY h.project, h.trace_id, coalesce(h.span_id, r.root_id)
                           ORDER BY h.created_at DESC, h.label_id DESC) = 1
"""
FAILURE_MODES_SCHEMA = pa.schema(
    [("project", pa.string()), ("trace_id", pa.string()), ("span_id", pa.string()), ("failure_mode", pa.string())]
)


def production_sides(
    an: Analytics,
    filters: Filters,
    by: str,
    a: str,
    b: str,
    options: TaskOptions | None = None,
    *,
    max_tasks: int = MAX_TASKS_PER_SIDE,
) -> tuple[Side, Side]:
    """The window's tasks whose `by` (prompt_version, model, prompt_name, provider, service or
    task_name) is `a`, resp. `b`, as two sides named `a` and `b`, tasks in start order.

    Each task is an Item with key None (production tasks are not paired), success from its
    outcome (success True, failure False, unknown None), its cost (None when none of its calls
    is priced), duration and trace id, and, when a reviewer's verdict decided that it failed,
    that verdict's failure mode. Raises ValueError for an unknown `by` or a side with more than
    `max_tasks` tasks.
    """
    options = options or TaskOptions()

    def body(p: Params) -> str:
        return f"""{compared_tasks(filters, by, a, b, options, p)}
        SELECT c.side, c.trace_id, c.outcome, c.cost_usd, c.duration_ms,
          CASE WHEN c.outcome_source = 'label' AND c.outcome = 'failure' THEN m.failure_mode END AS failure_mode
        FROM compared c
        LEFT JOIN failure_modes m ON m.project = c.project AND m.trace_id = c.trace_id AND m.span_id = c.span_id
        QUALIFY row_number() OVER (PARTITION BY c.side ORDER BY c.start_time, c.trace_id, c.span_id)
          <= {p.add(max_tasks + 1)}
        ORDER BY c.side, c.start_time, c.trace_id, c.span_id"""

    src = task_source(filters, GroupBy(), options)
    rows = an.run(src, body, tables={"failure_modes": _failure_modes(an)}).to_dicts()
    sides = []
    for value in (a, b):
        items = [_item(r) for r in rows if r["side"] == value]
        if len(items) > max_tasks:
            raise ValueError(
                f"{by} = {value!r} has more than {max_tasks:,} tasks in the window: "
                "narrow the window (--since/--until) or add a filter (e.g. --service)"
            )
        sides.append(Side(value, items))
    return sides[0], sides[1]


def _item(row: dict) -> Item:
    return Item(
        key=None,
        success=SUCCESS.get(row["outcome"]),
        cost_usd=row["cost_usd"],
        duration_ms=row["duration_ms"],
        failure_mode=row["failure_mode"],
        trace_id=row["trace_id"],
    )


def _failure_modes(an: Analytics) -> pa.Table:
    """The lake's failing reviewer verdicts with their failure modes (empty without label files)."""
    dd = an.lake.data_dir
    if not dd.is_remote and not any((dd.lake / "labels").glob("project=*/*/*/*.parquet")):
        return FAILURE_MODES_SCHEMA.empty_table()
    table = an.lake.query(FAILURE_MODES_SQL)
    return table.select(FAILURE_MODES_SCHEMA.names).cast(FAILURE_MODES_SCHEMA)
