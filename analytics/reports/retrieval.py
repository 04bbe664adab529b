"""Retrieval: per data source — queries, documents per query, empty results, scores, latency, top documents."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.query import Filters, GroupBy, Params, SpanSource
from spanlake.analytics.reports.common import keys_select

DIMS = {
    "data_source": "data_source",
    "project": "project",
    "service": "service_name",
    "name": "name",
    "model": "model",
}
# Computed before de-duplication so `content` never travels further than this.
_EXTRA = (
    "coalesce(attr_str(attributes, 'gen_ai.data_source.id'), attr_str(attributes, 'db.collection.name'),"
    " attr_str(attributes, 'db.system.name'), attr_str(attributes, 'db.system'), name) AS data_source",
    "sl_doc_count(content) AS doc_count",
    "sl_doc_scores(content) AS doc_scores",
    "sl_top1_score(content) AS top1_score",
)


def retrieval(
    an: Analytics, filters: Filters, group_by: Sequence[str] = ("data_source",), *, bucket: str | None = None
) -> pl.DataFrame:
    """Per group (by default per data source) of retrieval spans.

    Data source: `gen_ai.data_source.id`, else the database collection or system, else the
    span name. Documents are read from `content`; a span whose content was not recorded
    counts as a query with an unknown number of documents (left out of `docs_per_query` and
    `empty_rate`, counted in `queries_without_content`). top-1 is the first-ranked
    document's score; `mean_score` averages every scored document.
    """
    group = GroupBy.parse(group_by, DIMS, bucket)

    def body(p: Params) -> str:
        return f"""_ AS (SELECT 1)
        SELECT {keys_select(group, DIMS)}count(*) AS queries,
          count(*) FILTER (WHERE doc_count IS NULL) AS queries_without_content,
          avg(doc_count) AS docs_per_query,
          count(*) FILTER (WHERE doc_count = 0) / nullif(count(doc_count), 0) AS empty_rate,
          avg(top1_score) AS avg_top1_score,
          sum(list_sum(doc_scores)) / nullif(sum(len(doc_scores)), 0) AS mean_score,
          quantile_cont(duration_ms, 0.5) AS p50_ms,
          quantile_cont(duration_ms, 0.95) AS p95_ms,
          quantile_cont(duration_ms, 0.99) AS p99_ms,
          avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate
        FROM sp GROUP BY ALL"""

    df = an.run(SpanSource(filters, group, categories=("retrieval",), extra_columns=_EXTRA, priced=False), body)
    return df.sort(group.names, nulls_last=True) if group.names else df


def retrieved_documents(an: Analytics, filters: Filters, *, limit: int = 20) -> pl.DataFrame:
    """The documents retrieved most often, per data source."""
    extra = (_EXTRA[0], "sl_doc_ids(content) AS doc_ids")

    def body(p: Params) -> str:
        return f"""ids AS (SELECT data_source, unnest(doc_ids) AS document_id FROM sp)
        SELECT data_source, document_id, count(*) AS retrievals FROM ids GROUP BY ALL
        ORDER BY retrievals DESC, data_source, document_id LIMIT {p.add(int(limit))}"""

    return an.run(SpanSource(filters, categories=("retrieval",), extra_columns=extra, priced=False), body)
