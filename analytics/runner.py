"""Run report SQL over a lake: one DuckDB connection per call, the price table and labels registered."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.spans import MACROS, Params, SpanSource, pairing_needed, pairs_sql, span_ctes
from spanlake.storage.call_pairs import PAIR_LOOKAHEAD
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake, fetch_arrow
from spanlake.storage.schema import TASK_LABELS_SCHEMA
from spanlake.storage.window import connect_window

LabelSource = Callable[[], pa.Table]
# A report query: the spans it reads and the SQL after their CTEs (see Analytics.run).
Job = tuple[SpanSource, Callable[[Params], str]]


def no_labels() -> pa.Table:
    """A label source with no labels (reports then decide outcomes from spans alone)."""
    return TASK_LABELS_SCHEMA.empty_table()


# Verdicts that decide task outcomes (analytics.task_outcomes: a reviewer's before a judge's).
# Reviewers: every verdict event of source 'human' (the latest wins). Judges: the current label
# of each evaluator version (author) whose metadata says `decides_outcome`, with a verdict. A
# label on a whole trace (no span) applies to the trace's root span. End-user feedback (thumbs)
# is not a verdict.
TASK_LABELS_SQL = """
WITH human AS (
  SELECT project, trace_id, span_id, created_at AS labeled_at,
         CASE verdict WHEN 'pass' THEN 'success' ELSE 'failure' END AS outcome, 'label' AS outcome_source
  FROM labels WHERE source = 'human' AND verdict IN ('pass', 'fail')
), judge_current AS (
  SELECT project, trace_id, span_id, created_at, verdict, metadata FROM labels WHERE source = 'judge'
  QUALIFY row_number() OVER (PARTITION BY project, trace_id, span_id, author
                             ORDER BY created_at DESC, ingested_at DESC, label_id DESC) = 1
), judge AS (
  SELECT project, trace_id, span_id, created_at AS labeled_at,
         CASE verdict WHEN 'pass' THEN 'success' ELSE 'failure' END AS outcome, 'judge' AS outcome_source
  FROM judge_current
  WHERE verdict IN ('pass', 'fail') AND json_extract_string(metadata, '$.decides_outcome') = 'true'
), verdicts AS (
  SELECT * FROM human UNION ALL SELECT * FROM judge
), roots AS (
  SELECT project, trace_id, any_value(span_id) AS root_id FROM spans
  WHERE is_root AND trace_id IN (SELECT trace_id FROM verdicts WHERE span_id IS NULL)
  GROUP BY project, trace_id
)
SELECT h.project, h.trace_id, coalesce(h.span_id, r.root_id) AS span_id, h.outcome, h.labeled_at, h.outcome_source
FROM verdicts h LEFT JOIN roots r ON r.project = h.project AND r.trace_id = h.trace_id
WHERE coalesce(h.span_id, r.root_id) IS NOT NULL
"""


def lake_labels(lake: Lake) -> LabelSource:
    """The label source reading reviewer and deciding judge verdicts from the lake's `labels` view."""
    return lambda: lake.query(TASK_LABELS_SQL)


def task_labels_table(labels: pa.Table) -> pa.Table:
    """A label source's table as TASK_LABELS_SCHEMA (a source without `outcome_source` holds
    reviewer verdicts: the column is added, NULL)."""
    if not labels.num_rows:
        return TASK_LABELS_SCHEMA.empty_table()
    if "outcome_source" not in labels.column_names:
        labels = labels.append_column("outcome_source", pa.nulls(labels.num_rows, pa.string()))
    return labels.select(TASK_LABELS_SCHEMA.names).cast(TASK_LABELS_SCHEMA)


class Analytics:
    """Entry point for reports over one lake.

    `prices` resolves model prices (defaults to genai-prices plus `<data_dir>/prices.toml`
    if present); `labels` returns the verdicts that decide task outcomes as a TASK_LABELS_SCHEMA
    table (reviewers' and deciding judges', TASK_LABELS_SQL).
    """

    def __init__(
        self, lake: Lake | str | Path, prices: PriceBook | None = None, labels: LabelSource | None = None
    ) -> None:
        self.lake = lake if isinstance(lake, Lake) else Lake(lake)
        if prices is None:
            prices = PriceBook.from_file(default_prices_path(self.lake.data_dir))
        self.prices = prices
        self.labels = labels or lake_labels(self.lake)
        self._lake_labels = labels is None
        # analytics.rollups.row_cache.RowCache while budgets are evaluated (else None)
        self.row_cache: Any = None

    def run(
        self, src: SpanSource, body: Callable[[Params], str], tables: Mapping[str, pa.Table] | None = None
    ) -> pl.DataFrame:
        """Run `WITH <span CTEs>, <body>`; `body` adds its own CTEs and final SELECT and may read
        `tables` (registered under their names, e.g. label rows read beforehand)."""
        return self.run_many([(src, body)], tables)[0]

    def run_many(self, jobs: Sequence[Job], tables: Mapping[str, pa.Table] | None = None) -> list[pl.DataFrame]:
        """`run` for each (source, body), on one connection over the union of their windows (at
        10M spans, binding the views and closing the database cost ~0.4 s per connection)."""
        con = self._connect([src for src, _ in jobs])
        try:
            for stmt in MACROS:
                con.execute(stmt)
            con.register("task_labels", self._labels())
            for name, table in (tables or {}).items():
                con.register(name, table)
            seen: dict[str, bool] = {}  # pairing_needed's answers on this connection
            return [self._run_on(con, src, body, seen) for src, body in jobs]
        finally:
            con.close()

    def _run_on(
        self,
        con: duckdb.DuckDBPyConnection,
        src: SpanSource,
        body: Callable[[Params], str],
        seen: dict[str, bool] | None = None,
    ) -> pl.DataFrame:
        pairs: list[dict[str, Any]] = []
        if src.priced:
            p0 = Params()
            pairs = fetch_arrow(con, pairs_sql(src, p0), p0.values).to_pylist()
        table = self.prices.table((r["provider"], r["model"]) for r in pairs)
        con.register("prices", table)
        p = Params()
        pair = pairing_needed(con, src, seen)
        ctes = span_ctes(src, p, PriceBook.tier_models(table), PriceBook.service_tier_keys(table), pair)
        sql = f"WITH RECURSIVE {ctes},\n{body(p)}"
        df: pl.DataFrame = pl.from_arrow(fetch_arrow(con, sql, p.values))  # type: ignore[assignment]
        renames = {alias: name for alias, name in src.group.renames.items() if alias in df.columns}
        return df.rename(renames) if renames else df

    def _labels(self) -> pa.Table:
        """The label source's table (skipped when the lake's label source has no files yet)."""
        dd = self.lake.data_dir
        if self._lake_labels and not dd.is_remote and not any((dd.lake / "labels").glob("project=*/*/*/*.parquet")):
            return TASK_LABELS_SCHEMA.empty_table()
        return task_labels_table(self.labels())

    def _connect(self, sources: Sequence[SpanSource]) -> duckdb.DuckDBPyConnection:
        """A connection whose views read only the partitions of the sources' windows (widened as
        they ask, and by the call pairing's reach at both ends), or the whole lake when a window is
        open-ended. Each source's SQL bounds its own window, so a view over more partitions
        changes no result."""
        filters = [s.filters for s in sources]
        if any(f.since is None or f.until is None for f in filters):
            return self.lake.connect(derived=False)
        since = min(s.filters.since - s.widen_before - PAIR_LOOKAHEAD for s in sources)  # type: ignore[operator]
        until = max(s.filters.until + s.widen_after + PAIR_LOOKAHEAD for s in sources)  # type: ignore[operator]
        projects = {f.project for f in filters}
        project = projects.pop() if len(projects) == 1 else None
        return connect_window(self.lake, since, until, project, derived=False)

    def sql(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Plain SQL over the lake's views (for tests and ad-hoc checks)."""
        return self.lake.query_polars(sql, params)


def default_prices_path(data_dir: DataDir) -> Path:
    return data_dir.root / "prices.toml"
