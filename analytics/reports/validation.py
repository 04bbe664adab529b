"""Validation failures: failure rate per validator, model and prompt version; the most frequent messages."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from spanlake.analytics.reports.common import keys_select, span_keys
from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.rollups.read import agg, group, read, read_listed, sort_groups
from spanlake.analytics.rollups.tables import CALL_KEYS, COST_DIMS, Table, hours, no_reach
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params, SpanSource
from spanlake.analytics.task_outcomes import TaskOptions, earlier_tasks, task_ctes, task_scope_ctes, task_scoped

# Group-by name → column of the `checks` relation built below.
DIMS = {
    "validator": "validator",
    "project": "project",
    "service": "service_name",
    "model": "model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
    "task_name": "task_name",
}
ERRORS_KEY = "spanlake.validation.errors"
NO_GROUP = GroupBy()


def checks_source(filters: Filters, options: TaskOptions, group: GroupBy = NO_GROUP) -> SpanSource:
    """Whole traces from `horizon` (plus skew) before the window: the tasks checks ran in."""
    return SpanSource(
        filters,
        group,
        span_level_filters=False,
        widen_after=options.horizon,
        widen_before=options.horizon + options.skew,
        priced=False,
        outside_window_traces_only=True,
    )


def checks_ctes(filters: Filters, options: TaskOptions, p: Params, group: GroupBy = NO_GROUP) -> str:
    """Task CTEs over tasks started up to `horizon` before the window, then `checks`."""
    return f"{task_ctes(earlier_tasks(filters, options), group, options, p)},\n{_checks_cte(filters, p, group)}"


def _checks_cte(filters: Filters, p: Params, group: GroupBy) -> str:
    """`checks`: each validation verdict, with the model, prompt and grouped attributes of the
    check or else of its task (a task name filter keeps the checks whose innermost task has it)."""
    preds = []
    for col, value in (
        ("service_name", filters.service),
        ("provider", filters.provider),
        ("prompt_name", filters.prompt_name),
        ("prompt_version", filters.prompt_version),
    ):
        if value is not None:
            preds.append(f"{col} = {p.add(value)}")
    if filters.model is not None:
        preds.append(f"model = {p.add(filters.model)}")
    if filters.attributes:
        preds.append("attr_match")
    if filters.task_name is not None:
        preds.append(f"task_name = {p.add(filters.task_name)}")
    since = f"v.start_time >= {p.add(filters.since)}" if filters.since else "TRUE"
    until = f"v.start_time < {p.add(filters.until)}" if filters.until else "TRUE"
    g_attrs = "".join(f",\n        coalesce(v.g_attr_{i}, t.g_attr_{i}) AS g_attr_{i}" for i in range(len(group.attrs)))
    return f"""checks_all AS (
      SELECT v.project, v.trace_id, v.span_id, v.start_time, v.attr_match, v.service_name,
        coalesce(v.validation_name, v.name) AS validator, v.validation_passed AS passed,
        coalesce(v.model, t.model) AS model, coalesce(v.provider, t.provider) AS provider,
        coalesce(v.prompt_name, t.prompt_name) AS prompt_name,
        coalesce(v.prompt_version, t.prompt_version) AS prompt_version, t.task_name{g_attrs}
      FROM sp v
      LEFT JOIN member w ON w.project = v.project AND w.trace_id = v.trace_id AND w.span_id = v.span_id
      LEFT JOIN tasks_all t ON t.project = w.project AND t.trace_id = w.trace_id AND t.span_id = w.task_id
      WHERE v.validation_passed IS NOT NULL AND {since} AND {until}
    ),
    checks AS (SELECT * FROM checks_all WHERE {" AND ".join(preds) or "TRUE"})"""


def validation(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = ("validator",),
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group (by default per validator): checks, failures and failure rate.

    A check is a span with a verdict (`validation_passed`); its validator is
    `validation_name` (else the span name). Model, prompt version and `attr:KEY` group keys are
    the check's own, else those of the task it ran in.
    """
    options = options or TaskOptions()
    group = GroupBy.parse(group_by, DIMS, bucket)

    def body(p: Params) -> str:
        return f"""{checks_ctes(filters, options, p, group)}
        SELECT {keys_select(group, DIMS)}count(*) AS checks,
          count(*) FILTER (WHERE NOT passed) AS failures,
          count(*) FILTER (WHERE NOT passed) / count(*) AS failure_rate
        FROM checks GROUP BY ALL"""

    df = an.run(checks_source(filters, options, group), body)
    return df.sort(group.names, nulls_last=True) if group.names else df


def validation_errors(
    an: Analytics, filters: Filters, *, limit: int = 20, options: TaskOptions | None = None
) -> pl.DataFrame:
    """The most frequent failure messages per validator (`spanlake.validation.errors`).

    Messages are grouped by a pattern with numbers and quoted values replaced by `#` and
    `'…'`, so "field 'age' missing at line 3" and "field 'name' missing at line 9" count as
    one; `example` shows one message as sent, from `example_trace_id` (the group's first by id).
    """

    options = options or TaskOptions()
    src = failure_messages_source(filters)

    def body(p: Params) -> str:
        ctes, spans = task_scope_ctes(src, options, p)
        return f"""{ctes},
        {failure_messages_cte(spans)}
        SELECT validator, pattern, count(*) AS occurrences, arg_min(message, trace_id) AS example,
          min(trace_id) AS example_trace_id
        FROM patterned GROUP BY ALL ORDER BY occurrences DESC, validator, pattern LIMIT {p.add(int(limit))}"""

    return an.run(task_scoped(src, options), body)


def failure_messages_source(filters: Filters) -> SpanSource:
    """Spans of the window, with the failure messages of failed checks as `errors_json`."""
    errors = f"CASE WHEN validation_passed = false THEN attr(attributes, {_lit(ERRORS_KEY)}) END AS errors_json"
    return SpanSource(filters, priced=False, extra_columns=(errors,))


def failure_messages_cte(spans: str = "sp") -> str:
    """CTEs to `patterned`: each failure message of a failed check in `spans`, with its pattern."""
    return f"""msgs AS (
      SELECT *, coalesce(validation_name, name) AS validator,
        unnest(coalesce(try_cast(json_extract(errors_json, '$') AS VARCHAR[]), [])) AS message
      FROM {spans} WHERE validation_passed = false
    ),
    {_PATTERNED}"""


_PATTERNED = r"""patterned AS (
      SELECT *, regexp_replace(regexp_replace(message, '(''[^'']*''|"[^"]*")', '''…''', 'g'),
                               '[0-9]+', '#', 'g') AS pattern
      FROM msgs
    )"""


def _lit(key: str) -> str:
    """A constant from this module as a SQL string literal (never user input)."""
    assert "'" not in key
    return f"'{key}'"


# --- from hourly rollups ---------------------------------------------------------------------

CHECK_KEYS = ("validator", *COST_DIMS, "task_name")
MESSAGE_KEYS = ("validator", "pattern", *CALL_KEYS)


def build_checks(an: Analytics, f: Filters, options: TaskOptions, bucket: str = "hour") -> pl.DataFrame:
    """Validation checks and failures per validator, model, prompt and task name."""
    group = GroupBy(CHECK_KEYS, (), bucket)

    def body(p: Params) -> str:
        return f"""{checks_ctes(f, options, p)}
        SELECT {keys_select(group, DIMS)}count(*) AS checks, count(*) FILTER (WHERE NOT passed) AS failures
        FROM checks GROUP BY ALL"""

    return an.run(checks_source(f, options), body)


def build_messages(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Failure messages per validator and pattern (`validation_errors`)."""
    group = GroupBy(MESSAGE_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""{failure_messages_cte()}
        SELECT {keys_select(group, span_keys("validator", "pattern"))}count(*) AS occurrences,
          arg_min(message, trace_id) AS example, min(trace_id) AS example_trace_id
        FROM patterned GROUP BY ALL"""

    return an.run(failure_messages_source(f), body)


CHECKS = Table(
    "checks", CHECK_KEYS, build_checks, lambda o: (hours(o.horizon + o.skew), hours(o.horizon)), minute_grain=True
)
MESSAGES = Table("messages", MESSAGE_KEYS, build_messages, no_reach)


def validation_rolled(an: Analytics, q: Request) -> Result | None:
    """The validation report from the `checks` rollup."""
    g = group(q.filters, q.group_by, DIMS, q.bucket)
    if g is None:
        return None
    c = read(an, CHECKS, q.filters, q.options, g.bucket)
    if c is None:
        return None
    checks, failures = pl.col("checks").sum(), pl.col("failures").sum()
    exprs = [checks.alias("checks"), failures.alias("failures"), (failures / checks).alias("failure_rate")]
    df = agg(c[0], g.names, exprs, []) if c[0].height else pl.DataFrame()
    return sort_groups(df, g.names), c[1]


def validation_errors_rolled(an: Analytics, q: Request) -> Result | None:
    """`validation_errors` from the `messages` rollup."""
    got = read_listed(an, MESSAGES, q.filters)
    if got is None:
        return None
    df, used = got
    names = ["validator", "pattern", "occurrences", "example", "example_trace_id"]
    if df.height == 0:
        return pl.DataFrame(schema={n: pl.Int64 if n == "occurrences" else pl.String for n in names}), used
    first = pl.col("example_trace_id").arg_min()
    out = df.group_by(["validator", "pattern"]).agg(
        pl.col("occurrences").sum(), pl.col("example").get(first), pl.col("example_trace_id").min()
    )
    out = out.sort(["occurrences", "validator", "pattern"], descending=[True, False, False], nulls_last=True)
    return out.head(q.params["limit"]).select(names), used


REPORT = Report(
    "validation",
    60,
    "validation checks and failure rate per validator (group by model, prompt_version, day, ...)",
    raw=lambda an, q: validation(an, q.filters, q.group_by, bucket=q.bucket, options=q.options),
    rollup=validation_rolled,
    dimensions=("validator", "model", "prompt_version", "task_name"),
    default_group_by=("validator",),
    tables=(CHECKS,),
    shown_group_by=("validator",),
    chart="failure_rate",
)
ERRORS = Report(
    "validation-errors",
    70,
    "the most frequent validation failure messages, grouped by pattern",
    raw=lambda an, q: validation_errors(an, q.filters, limit=q.params["limit"], options=q.options),
    rollup=validation_errors_rolled,
    params=(Param("limit", int, 20, ge=1, le=1000),),
    tables=(MESSAGES,),
    chart="occurrences",
)
