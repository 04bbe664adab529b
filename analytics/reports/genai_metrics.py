"""GenAI client metrics (OTLP metrics, the `metrics` table): token totals by model and token type
from `gen_ai.client.token.usage`, and the count and mean of `gen_ai.client.operation.duration`.

How points add up over a window [since, until) (docs/analytics.md, "GenAI metrics"):

- **Delta** points (each holds what happened since the previous export) are summed: every
  point whose time falls in the window.
- **Cumulative** points hold running totals and are exported again and again, so summing
  them would count the same calls many times. A *series* is one metric, resource, scope,
  point attributes and start time; its figure for the window is its latest point in the
  window minus its latest point before the window (nothing when there is none: the series
  began in the window or the lake has nothing older). A counter reset (the exporting process
  restarted) has a new start time, so it is a new series and adds to the old one instead of
  cancelling it.
- A figure is a histogram's `sum` and `count` (the OTel SDK records both metrics as
  histograms), or a sum's `value` when an exporter sends token usage as a counter.

Model: `gen_ai.request.model`, else `gen_ai.response.model` (as the span reports). Only the
window, project, service and model filters apply (metrics carry no task, prompt or trace).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from spanlake.analytics.reports.report import Report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.storage.reader import fetch_arrow, retry_vanished
from spanlake.storage.window import connect_metrics

TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"
COLUMNS = {
    "project": pl.String,
    "model": pl.String,
    "input_tokens": pl.Float64,
    "output_tokens": pl.Float64,
    "operations": pl.Int64,
    "mean_duration_s": pl.Float64,
    "series": pl.Int64,
}

_SQL = """
WITH pts AS (
  SELECT project, metric_name, kind, temporality, resource_attributes, scope_name, scope_version, attributes,
         start_time_unix_nano, time_unix_nano, time,
         coalesce(sum, value) AS amount, count AS n,
         coalesce(attr_str(attributes, 'gen_ai.request.model'), attr_str(attributes, 'gen_ai.response.model')) AS model,
         attr_str(attributes, 'gen_ai.token.type') AS token_type
  FROM metrics
  WHERE metric_name IN ($usage, $duration) AND kind IN ('sum', 'histogram', 'exponential_histogram')
    AND time < $until {where}
),
keyed AS (
  SELECT *, hash(project, metric_name, kind, temporality, resource_attributes, scope_name, scope_version,
                 attributes, CASE WHEN temporality = 'cumulative' THEN start_time_unix_nano END) AS series_key,
         time >= $since AS in_window
  FROM pts
),
delta AS (
  SELECT project, model, metric_name, token_type, series_key, amount, n
  FROM keyed WHERE temporality = 'delta' AND in_window
),
last_in AS (
  SELECT * FROM keyed WHERE temporality = 'cumulative' AND in_window
  QUALIFY row_number() OVER (PARTITION BY series_key ORDER BY time_unix_nano DESC) = 1
),
last_before AS (
  SELECT series_key, amount, n FROM keyed WHERE temporality = 'cumulative' AND NOT in_window
  QUALIFY row_number() OVER (PARTITION BY series_key ORDER BY time_unix_nano DESC) = 1
),
cumulative AS (
  SELECT i.project, i.model, i.metric_name, i.token_type, i.series_key,
         i.amount - coalesce(b.amount, 0) AS amount, i.n - coalesce(b.n, 0) AS n
  FROM last_in i LEFT JOIN last_before b USING (series_key)
),
points AS (SELECT * FROM delta UNION ALL SELECT * FROM cumulative)
SELECT project, model,
  sum(amount) FILTER (WHERE metric_name = $usage AND token_type = 'input') AS input_tokens,
  sum(amount) FILTER (WHERE metric_name = $usage AND token_type = 'output') AS output_tokens,
  sum(n) FILTER (WHERE metric_name = $duration)::BIGINT AS operations,
  sum(amount) FILTER (WHERE metric_name = $duration) / nullif(sum(n) FILTER (WHERE metric_name = $duration), 0)
    AS mean_duration_s,
  count(DISTINCT series_key) AS series
FROM points GROUP BY ALL ORDER BY project, model NULLS LAST
"""


def genai_metrics(an: Analytics, filters: Filters) -> pl.DataFrame:
    """One row per (project, model): input_tokens, output_tokens, operations (calls timed),
    mean_duration_s and series (distinct metric series read), over the window and filters."""
    params: dict[str, Any] = {"usage": TOKEN_USAGE, "duration": DURATION}
    params["since"] = filters.since or "-infinity"
    params["until"] = filters.until or "infinity"
    preds = []
    for name, sql in (
        ("project", "project = $project"),
        ("service", "service_name = $service"),
        ("model", "(attr_str(attributes, 'gen_ai.request.model') = $model"
                  " OR attr_str(attributes, 'gen_ai.response.model') = $model)"),
    ):  # fmt: skip
        value = getattr(filters, name)
        if value is not None:
            params[name] = value
            preds.append(sql)
    sql = _SQL.format(where="".join(f" AND {p}" for p in preds))

    def attempt() -> Any:
        con = connect_metrics(an.lake, filters.project)
        try:
            return fetch_arrow(con, sql, params)
        finally:
            con.close()

    df = pl.from_arrow(retry_vanished(attempt))
    assert isinstance(df, pl.DataFrame)
    return df.cast(COLUMNS) if df.height else pl.DataFrame(schema=COLUMNS)  # type: ignore[arg-type]


REPORT = Report(
    "genai-metrics",
    120,
    "GenAI client metrics (OTLP): tokens by model and type, operation count and mean duration",
    raw=lambda an, q: genai_metrics(an, q.filters),
    description="From `gen_ai.client.token.usage` and `gen_ai.client.operation.duration` as exported by the "
    "instrumentations; cumulative series count once (their latest point in the window minus their latest "
    "before it), deltas are summed. Exact even where traces are sampled.",
    chart="input_tokens",
)
