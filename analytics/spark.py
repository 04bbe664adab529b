"""The core of the latency and cost reports in Spark SQL, over the same Parquet lake.

spanlake's reports run on DuckDB (analytics.reports). Past one machine, the lake is read by
an existing engine instead; this module is the tested Spark equivalent of their core
aggregations, so the numbers agree (tests/engines/test_spark.py runs both on one lake):

- latency: per step category (count, error and timeout rate, p50/p90/p95/p99/max, slow
  share, time to first token, repeats, retries) and per task, end to end;
- cost: LLM/embedding calls, tokens and priced cost; tasks, successes, failures, task cost.

What differs from the DuckDB reports: tasks are those a trace has exactly one of, at its
root (the common case; nested tasks need a recursive walk, and such traces are counted
in `unsupported_traces` instead); a step's attempt before it (for repeats and retries) is
looked for inside the window only (DuckDB also reads the hour before), and so is the
other spans of a duplicate call (DuckDB reads 5 minutes past both ends); human labels are
not read; group-by keys are the plain dimensions in SPAN_KEYS / TASK_KEYS (no time buckets
or attributes). Percentiles are exact and linearly interpolated in both engines (Spark
`percentile`, DuckDB `quantile_cont`).

    spark = SparkSession.builder.master("local[*]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    register_lake(spark, "/data/spanlake/lake")          # or s3a://bucket/prefix with hadoop-aws
    rows = SparkReports(spark, PriceBook()).cost(Filters(project="shop"), ["model"])["calls"]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from spanlake.analytics.pricing import KEY_SEP, SERVICE_TIER_KEYS, PriceBook
from spanlake.analytics.reports.latency import DEFAULT_SLOW_MS, RETRY_LOOKBACK
from spanlake.analytics.spans import BASE_COLUMNS, BILLABLE_CATEGORIES, SPAN_COST_SQL, STEP_CATEGORIES, Filters
from spanlake.storage.call_pairs import RESPONSE_ID_KEY, duplicate_ctes
from spanlake.storage.late import late_prefix
from spanlake.storage.schema import LOGS, SPANS, Table

SPAN_KEYS = {
    "project": "project",
    "service": "service_name",
    "model": "model",
    "provider": "provider",
    "prompt_version": "prompt_version",
    "name": "name",
}
TASK_KEYS = {"project": "project", "service": "service_name", "name": "name"}
_SPARK_TYPES = {
    pa.string(): "STRING",
    pa.int64(): "BIGINT",
    pa.int32(): "INT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.list_(pa.string()): "ARRAY<STRING>",
}
_TIMEOUT = "lower(coalesce({c}, '')) RLIKE '(timeout|timed.?out|deadline)'"
# Spark timestamps end at 9999-12-31 but Python's conversion of year-1 bounds is fragile: clamp.
_MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2200, 1, 1, tzinfo=UTC)


def spark_ddl(table: Table) -> str:
    """The table's columns, partition keys first, as a Spark schema string."""
    cols = []
    for c in table.all_columns:
        t = "TIMESTAMP" if pa.types.is_timestamp(c.type) else _SPARK_TYPES[c.type]
        cols.append(f"`{c.name}` {t}")
    return ", ".join(cols)


def register_lake(spark: Any, lake: str) -> None:
    """Temp views `spans_raw` and `logs_raw` over a lake root (a folder or `s3a://bucket/prefix`).

    The schema is given, not inferred: partition keys keep their types (a project named
    `123` stays a string) and files from older schema versions read missing columns as NULL.
    Rows in the late-arrival area (storage.late: `date` and `hour` stored in the file, the
    project in its folder) are read too, so a view holds every row once as the lake does.
    """
    root = str(lake).rstrip("/")
    for table in (SPANS, LOGS):
        df = _read(spark, table, f"{root}/{table.name}")
        late = _read(spark, table, f"{root}/{late_prefix(table)}")
        df.unionByName(late).createOrReplaceTempView(f"{table.name}_raw")


def _read(spark: Any, table: Table, path: str) -> Any:
    """The Parquet files under `path` with the table's schema (empty where nothing was written)."""
    try:
        return spark.read.schema(spark_ddl(table)).option("basePath", path).parquet(path)
    except Exception as e:  # pyspark's AnalysisException: a folder nothing was written to yet
        if "PATH_NOT_FOUND" not in str(e):
            raise
        return spark.createDataFrame([], schema=spark_ddl(table))


def _where(f: Filters, args: dict[str, Any]) -> str:
    preds = ["TRUE"]
    if f.since is not None:
        args["since"] = f.since.astimezone(UTC)
        preds.append("date >= to_date(:since) AND start_time >= :since")
    if f.until is not None:
        args["until"] = f.until.astimezone(UTC)
        preds.append("date <= to_date(:until) AND start_time < :until")
    if f.project is not None:
        args["project"] = f.project
        preds.append("project = :project")
    return " AND ".join(preds)


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _keys(group_by: Sequence[str], allowed: dict[str, str]) -> tuple[str, str]:
    """(select list with trailing comma, GROUP BY list) for validated keys."""
    for k in group_by:
        if k not in allowed:
            raise ValueError(f"portable reports group by {', '.join(allowed)}; not {k!r}")
    select = "".join(f"{allowed[k]} AS `{k}`, " for k in group_by)
    return select, ", ".join(allowed[k] for k in group_by)


def span_ctes(where: str, tier_models: Sequence[str] = (), tier_keys: Sequence[str] = ()) -> str:
    """`sp`: deduplicated spans (earliest delivery) with model, duration, root flag, cost and
    `duplicate_of` (an LLM span of a call another span of it counts: storage.call_pairs)."""
    tier = "''"
    if tier_models:
        lookups = ", ".join(f"get_json_object(attributes, {_quote('$[' + repr(k) + ']')})" for k in SERVICE_TIER_KEYS)
        raw = f"coalesce({lookups}, '')"
        key = f"concat(coalesce(provider, ''), {_quote(KEY_SEP)}, price_model)"
        models = ", ".join(_quote(m) for m in tier_models)
        keys = ", ".join(_quote(k) for k in tier_keys)
        tier = (
            f"CASE WHEN {key} IN ({models}) AND concat({key}, {_quote(KEY_SEP)}, {raw}) IN ({keys}) "
            f"THEN {raw} ELSE '' END"
        )
    billable = str(BILLABLE_CATEGORIES)
    rid = f"get_json_object(attributes, {_quote('$[' + repr(RESPONSE_ID_KEY) + ']')})"
    dup = duplicate_ctes("dup", where, start_ns="unix_micros(start_time) * 1000", response_id=rid)
    return f"""{dup},
    raw_sp AS (
      SELECT {", ".join(BASE_COLUMNS)}, attributes, ingested_at,
        coalesce(request_model, response_model) AS model,
        coalesce(response_model, request_model) AS price_model,
        duration_ns / 1e6 AS duration_ms,
        (parent_span_id IS NULL OR (coalesce(flags, 0) & 768) = 768) AS is_root
      FROM spans_raw WHERE {where}
    ),
    dedup AS (
      SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY project, trace_id, span_id ORDER BY ingested_at) AS copy_no
        FROM raw_sp) WHERE copy_no = 1
    ),
    tiered AS (SELECT *, {tier} AS service_tier FROM dedup),
    sp AS (
      SELECT s.*, d.duplicate_of,
        (s.category IN {billable} AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL)
          AND d.duplicate_of IS NULL) AS billable,
        CASE WHEN d.duplicate_of IS NULL THEN {SPAN_COST_SQL} END AS cost_usd,
        pr.model IS NULL AS no_price
      FROM tiered s
      LEFT JOIN dup d ON d.project = s.project AND d.trace_id = s.trace_id AND d.span_id = s.span_id
      LEFT JOIN prices pr
        ON s.category IN {billable}
        AND pr.provider = coalesce(s.provider, '') AND pr.model = s.price_model
        AND s.start_time >= pr.valid_from AND s.start_time < pr.valid_to
        AND unix_micros(s.start_time) % 86400000000 >= pr.tod_lo_us
        AND unix_micros(s.start_time) % 86400000000 < pr.tod_hi_us
        AND coalesce(s.input_tokens, 0) > pr.tier_lo AND coalesce(s.input_tokens, 0) <= pr.tier_hi
        AND pr.service_tier = s.service_tier
    )"""


def task_ctes(default_outcome: str) -> str:
    """`tasks`: one per trace whose only task is its root (see the module doc), with outcome and cost."""
    return f"""marked AS (SELECT DISTINCT project, trace_id FROM sp WHERE category = 'task' OR task_name IS NOT NULL),
    candidates AS (
      SELECT t.* FROM sp t
      LEFT JOIN marked m ON m.project = t.project AND m.trace_id = t.trace_id
      LEFT JOIN sp q ON q.project = t.project AND q.trace_id = t.trace_id AND q.span_id = t.parent_span_id
      WHERE t.category = 'task' OR t.task_name IS NOT NULL OR (t.is_root AND m.trace_id IS NULL AND q.span_id IS NULL)
    ),
    per_trace AS (
      SELECT project, trace_id, count(*) AS n, bool_and(parent_span_id IS NULL) AS at_root FROM candidates
      GROUP BY project, trace_id
    ),
    agg AS (
      SELECT project, trace_id, sum(cost_usd) AS cost_usd, count_if(billable AND no_price) AS unpriced_calls,
        coalesce(bool_or(validation_passed = false), false) AS validation_failed
      FROM sp GROUP BY project, trace_id
    ),
    tasks AS (
      SELECT t.*, a.cost_usd AS task_cost_usd, a.unpriced_calls AS task_unpriced_calls,
        CASE WHEN t.task_outcome IS NOT NULL THEN t.task_outcome
             WHEN a.validation_failed THEN 'failure'
             WHEN t.status_code = 'ERROR' THEN 'failure'
             ELSE {_quote(default_outcome)} END AS outcome
      FROM candidates t
      JOIN per_trace p ON p.project = t.project AND p.trace_id = t.trace_id AND p.n = 1 AND p.at_root
      JOIN agg a ON a.project = t.project AND a.trace_id = t.trace_id
    )"""


def latency_metrics(duration: str, slow_ms: float) -> str:
    # 1.0D: a DOUBLE average (a 1.0 literal is a DECIMAL, whose average keeps 5 decimals: 1/12 → 0.08333)
    qs = "".join(f"percentile({duration}, {q}) AS p{int(q * 100)}_ms, " for q in (0.5, 0.9, 0.95, 0.99))
    return (
        "count(*) AS count, "
        "avg(CASE WHEN status_code = 'ERROR' THEN 1.0D ELSE 0.0D END) AS error_rate, "
        f"avg(CASE WHEN {_TIMEOUT.format(c='error_type')} OR {_TIMEOUT.format(c='status_message')} "
        "THEN 1.0D ELSE 0.0D END) AS timeout_rate, "
        f"{qs}max({duration}) AS max_ms, "
        f"avg(CASE WHEN {duration} > {float(slow_ms)} THEN 1.0D ELSE 0.0D END) AS slow_share"
    )


class SparkReports:
    """The portable reports on a Spark session whose `spans_raw` view is a spanlake lake."""

    def __init__(self, spark: Any, prices: PriceBook | None = None, default_outcome: str = "unknown") -> None:
        self.spark = spark
        self.prices = prices if prices is not None else PriceBook()
        self.default_outcome = default_outcome

    def _rows(self, sql: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        return [r.asDict() for r in self.spark.sql(sql, args=args).collect()]

    def _prepare(self, filters: Filters) -> tuple[str, dict[str, Any]]:
        """Register this window's price table; returns the span CTEs and their arguments."""
        args: dict[str, Any] = {}
        where = _where(filters, args)
        pairs = self._rows(
            f"SELECT DISTINCT provider, coalesce(response_model, request_model) AS model FROM spans_raw "
            f"WHERE {where} AND category IN {BILLABLE_CATEGORIES} "
            "AND coalesce(response_model, request_model) IS NOT NULL",
            args,
        )
        table = self.prices.table((r["provider"], r["model"]) for r in pairs)
        rows = table.to_pylist()
        for r in rows:
            r["valid_from"] = min(max(r["valid_from"], _MIN_TS), _MAX_TS)
            r["valid_to"] = min(max(r["valid_to"], _MIN_TS), _MAX_TS)
        ddl = ", ".join(
            f"`{f.name}` {'TIMESTAMP' if pa.types.is_timestamp(f.type) else _SPARK_TYPES[f.type]}" for f in table.schema
        )
        self.spark.createDataFrame(rows, schema=ddl).createOrReplaceTempView("prices")
        ctes = span_ctes(where, PriceBook.tier_models(table), PriceBook.service_tier_keys(table))
        return ctes, args

    def latency(
        self, filters: Filters, group_by: Sequence[str] = (), slow_ms: float = DEFAULT_SLOW_MS
    ) -> dict[str, list[dict[str, Any]]]:
        """{'tasks': rows per task group, 'steps': rows per (category, group), 'unsupported_traces': [n]}."""
        ctes, args = self._prepare(filters)
        step_sel, step_grp = _keys(group_by, SPAN_KEYS)
        cats = ", ".join(_quote(c) for c in STEP_CATEGORIES)
        lookback = int(RETRY_LOOKBACK / timedelta(microseconds=1))
        tasks: list[dict[str, Any]] = []
        if set(group_by) <= set(TASK_KEYS):  # tasks by model need the task's first call: not here
            task_sel, task_grp = _keys(group_by, TASK_KEYS)
            tasks = self._rows(
                f"WITH {ctes}, {task_ctes(self.default_outcome)}\n"
                f"SELECT 'task' AS level, {task_sel}{latency_metrics('duration_ms', slow_ms)} FROM tasks"
                + (f" GROUP BY {task_grp}" if task_grp else ""),
                args,
            )
        steps = self._rows(
            f"""WITH {ctes},
            calls AS (  -- a client's span under its duplicate is an attempt under the duplicate's parent
              SELECT s.*, coalesce(w.parent_span_id, s.parent_span_id) AS attempt_parent
              FROM sp s LEFT JOIN dup w ON w.project = s.project AND w.trace_id = s.trace_id
                AND w.span_id = s.parent_span_id AND w.duplicate_of = s.span_id
              WHERE s.category IN ({cats}) AND s.duplicate_of IS NULL
            ),
            steps AS (
              SELECT *,
                attempt_parent IS NOT NULL
                  AND unix_micros(start_time) - unix_micros(lag(start_time) OVER attempts) <= {lookback} AS is_repeat,
                attempt_parent IS NOT NULL
                  AND unix_micros(start_time) - unix_micros(lag(start_time) OVER attempts) <= {lookback}
                  AND lag(status_code) OVER attempts = 'ERROR' AS is_retry
              FROM calls
              WINDOW attempts AS (PARTITION BY project, trace_id, attempt_parent, name ORDER BY start_time, span_id)
            )
            SELECT category AS level, {step_sel}{latency_metrics("duration_ms", slow_ms)},
              count(time_to_first_token_ms) AS ttft_count,
              percentile(time_to_first_token_ms, 0.5) AS ttft_p50_ms,
              percentile(time_to_first_token_ms, 0.95) AS ttft_p95_ms,
              count_if(is_repeat) AS repeats, count_if(is_retry) AS retries
            FROM steps GROUP BY category{", " + step_grp if step_grp else ""}""",
            args,
        )
        return {"tasks": tasks, "steps": steps, "unsupported_traces": [self._unsupported(ctes, args)]}

    def cost(self, filters: Filters, group_by: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:
        """{'calls': call totals per group, 'tasks': task totals (ungrouped or by TASK_KEYS)}."""
        ctes, args = self._prepare(filters)
        sel, grp = _keys(group_by, SPAN_KEYS)
        calls = self._rows(
            f"""WITH {ctes}
            SELECT {sel}count(*) AS calls,
              coalesce(sum(input_tokens), 0) AS input_tokens,
              coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
              coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
              coalesce(sum(output_tokens), 0) AS output_tokens,
              coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
              sum(cost_usd) AS cost_usd, sum(reported_cost) AS reported_cost_usd,
              count_if(no_price) AS unpriced_calls
            FROM sp WHERE billable"""
            + (f" GROUP BY {grp}" if grp else ""),
            args,
        )
        task_rows: list[dict[str, Any]] = []
        if set(group_by) <= set(TASK_KEYS):
            tsel, tgrp = _keys(group_by, TASK_KEYS)
            task_rows = self._rows(
                f"""WITH {ctes}, {task_ctes(self.default_outcome)}
                SELECT {tsel}count(*) AS tasks, count_if(outcome = 'success') AS successful_tasks,
                  count_if(outcome = 'failure') AS failed_tasks, sum(task_cost_usd) AS task_cost_usd,
                  sum(task_unpriced_calls) AS task_unpriced_calls
                FROM tasks"""
                + (f" GROUP BY {tgrp}" if tgrp else ""),
                args,
            )
        return {"calls": calls, "tasks": task_rows}

    def _unsupported(self, ctes: str, args: dict[str, Any]) -> int:
        rows = self._rows(
            f"WITH {ctes}, {task_ctes(self.default_outcome)}\n"
            "SELECT count(*) AS n FROM per_trace WHERE NOT (n = 1 AND at_root)",
            args,
        )
        return int(rows[0]["n"])
