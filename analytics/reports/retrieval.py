"""Retrieval: per data source — queries, documents per query, empty results, scores, latency, top documents,
and, where reviewers judged which documents were relevant, hit rate and precision at k."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import polars as pl

from spanlake.analytics import sketch
from spanlake.analytics.reports.common import keys_select, span_keys
from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.rollups.read import agg, group, nullable_sum, ratio, read, read_listed, sort_groups
from spanlake.analytics.rollups.tables import CALL_KEYS, Table, no_reach, unpacked
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import SPAN_DIMS, Filters, GroupBy, Params, SpanSource
from spanlake.analytics.task_outcomes import TaskOptions, task_scope_ctes, task_scoped

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


DEFAULT_K = 5
MAX_K = 1000
RELEVANCE_COLUMNS = ("judged_queries", "hit_rate_at_k", "precision_at_k")


def retrieval(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = ("data_source",),
    *,
    bucket: str | None = None,
    k: int = DEFAULT_K,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group (by default per data source) of retrieval spans.

    Data source: `gen_ai.data_source.id`, else the database collection or system, else the
    span name. Documents are read from `content`; a span whose content was not recorded
    counts as a query with an unknown number of documents (left out of `docs_per_query` and
    `empty_rate`, counted in `queries_without_content`). top-1 is the first-ranked
    document's score; `mean_score` averages every scored document. `judged_queries`,
    `hit_rate_at_k` and `precision_at_k` come from relevance judgments (see `relevance`).
    """
    options = options or TaskOptions()
    group = GroupBy.parse(group_by, DIMS, bucket)
    src = SpanSource(filters, group, categories=("retrieval",), extra_columns=_EXTRA, priced=False)

    def body(p: Params) -> str:
        ctes, queries = task_scope_ctes(src, options, p)
        return f"""{ctes}
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
        FROM {queries} GROUP BY ALL"""

    df = an.run(task_scoped(src, options), body)
    df = df.sort(group.names, nulls_last=True) if group.names else df
    return with_relevance(an, filters, group_by, df, bucket=bucket, k=k, options=options)


def retrieved_documents(
    an: Analytics, filters: Filters, *, limit: int = 20, options: TaskOptions | None = None
) -> pl.DataFrame:
    """The documents retrieved most often, per data source."""
    options = options or TaskOptions()
    src = documents_source(filters)

    def body(p: Params) -> str:
        ctes, spans = task_scope_ctes(src, options, p)
        return f"""{ctes},
        {document_ids_cte(spans)}
        SELECT data_source, document_id, count(*) AS retrievals FROM ids GROUP BY ALL
        ORDER BY retrievals DESC, data_source, document_id LIMIT {p.add(int(limit))}"""

    return an.run(task_scoped(src, options), body)


def document_ids_cte(spans: str = "sp") -> str:
    """`ids`: one row per document a retrieval span in `spans` returned (with the span's columns)."""
    return f"ids AS (SELECT *, unnest(doc_ids) AS document_id FROM {spans})"


def documents_source(filters: Filters) -> SpanSource:
    """Retrieval spans of the window with their `data_source` and returned `doc_ids`."""
    extra = (_EXTRA[0], "sl_doc_ids(content) AS doc_ids")
    return SpanSource(filters, categories=("retrieval",), extra_columns=extra, priced=False)


# --- relevance: hit rate and precision at k --------------------------------------------------

_HEX_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
_OI_DOC = r"^retrieval\.documents\.([0-9]+)\.document\."
# Document ids by rank (position), a missing id kept as NULL so later documents keep their rank:
# the OTel GenAI array in order, or OpenInference's retrieval.documents.N by N.
_RANKED_IDS = (
    "CASE WHEN json_type(sl_gen_docs(content)) = 'ARRAY' THEN list_transform("
    "range(json_array_length(sl_gen_docs(content))::BIGINT),"
    " lambda i: json_extract_string(sl_gen_docs(content), '$[' || i || '].id'))"
    " ELSE list_transform(list_sort(list_distinct(list_transform(sl_oi_doc_keys(content),"
    f" lambda k: CAST(regexp_extract(k, '{_OI_DOC}', 1) AS BIGINT)))),"
    " lambda n: json_extract_string(content, '$.\"retrieval.documents.' || n || '.document.id\"')) END"
)
JUDGMENTS_SQL = """SELECT project, trace_id, span_id, json_extract(metadata, '$.relevant')::VARCHAR AS relevant
  FROM labels
  WHERE span_id IS NOT NULL AND json_type(json_extract(metadata, '$.relevant')) = 'OBJECT' {project}
  QUALIFY row_number() OVER (PARTITION BY project, trace_id, span_id
                             ORDER BY created_at DESC, ingested_at DESC, label_id DESC) = 1"""


def judgments(an: Analytics, project: str | None = None) -> dict[tuple[str, str, str], dict[str, bool]]:
    """The current relevance judgment of each judged span: {(project, trace, span): {document id: relevant}}.

    A judgment is a label on a retrieval span whose `metadata.relevant` is an object of
    document id → true/false; the latest such label on a span wins, whoever set it.
    """
    dd = an.lake.data_dir
    if not dd.is_remote and not any((dd.lake / "labels").glob("project=*/*/*/*.parquet")):
        return {}
    params = {"project": project} if project is not None else None
    sql = JUDGMENTS_SQL.format(project="AND project = $project" if project is not None else "")
    out: dict[tuple[str, str, str], dict[str, bool]] = {}
    for r in an.lake.query(sql, params).to_pylist():
        rel = orjson.loads(r["relevant"])
        out[(r["project"], r["trace_id"], r["span_id"])] = {str(d): v is True for d, v in rel.items()}
    return out


def relevance(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str] = ("data_source",),
    *,
    bucket: str | None = None,
    k: int = DEFAULT_K,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """Per group, over the retrieval spans that have a relevance judgment and recorded content:

    - `judged_queries`: how many;
    - `hit_rate_at_k`: the share of them with at least one relevant document among the first
      k by position (rank);
    - `precision_at_k`: the mean of (relevant documents among the first k) / k. A document the
      judgment does not mention counts as not relevant, and a query that returned fewer than k
      documents (or none) still divides by k.

    Judged spans are read from raw spans (there are few), so the figures are the same whether
    the rest of the report came from rollups or raw spans.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    group = GroupBy.parse(group_by, DIMS, bucket)
    found = judgments(an, filters.project)
    ids = sorted({s for (_, _, s) in found if _HEX_SPAN_ID.match(s)})
    empty = pl.DataFrame(schema={"judged_queries": pl.Int64, "hit_rate_at_k": pl.Float64, "precision_at_k": pl.Float64})
    if not ids:
        return empty
    in_list = ", ".join(f"'{s}'" for s in ids)  # hex only: safe to inline
    extra = (_EXTRA[0], f"CASE WHEN span_id IN ({in_list}) AND content IS NOT NULL THEN {_RANKED_IDS} END AS ranked")

    src = SpanSource(filters, group, categories=("retrieval",), extra_columns=extra, priced=False)
    options = options or TaskOptions()

    def body(p: Params) -> str:
        ctes, judged = task_scope_ctes(src, options, p)
        return f"""{ctes}
        SELECT {keys_select(group, DIMS)}project AS _project, trace_id AS _trace_id, span_id AS _span_id,
          ranked AS _ranked
        FROM {judged} WHERE ranked IS NOT NULL"""

    spans = an.run(task_scoped(src, options), body)
    rows: list[dict[str, Any]] = []
    for r in spans.to_dicts():
        judged = found.get((r["_project"], r["_trace_id"], r["_span_id"]))
        if judged is None:
            continue
        hits = sum(1 for d in r["_ranked"][:k] if d is not None and judged.get(d) is True)
        rows.append({**{n: r[n] for n in group.names}, "_hit": 1.0 if hits else 0.0, "_precision": hits / k})
    if not rows:
        return empty
    df = pl.DataFrame(rows, schema_overrides={n: spans.schema[n] for n in group.names})
    aggs = [
        pl.len().cast(pl.Int64).alias("judged_queries"),
        pl.col("_hit").mean().alias("hit_rate_at_k"),
        pl.col("_precision").mean().alias("precision_at_k"),
    ]
    return df.group_by(group.names).agg(aggs) if group.names else df.select(aggs)


def with_relevance(
    an: Analytics,
    filters: Filters,
    group_by: Sequence[str],
    df: pl.DataFrame,
    *,
    bucket: str | None = None,
    k: int = DEFAULT_K,
    options: TaskOptions | None = None,
) -> pl.DataFrame:
    """The retrieval report `df` with `relevance` joined on its group keys (0 / None where nothing was judged)."""
    rel = relevance(an, filters, group_by, bucket=bucket, k=k, options=options)
    if df.width == 0:
        return df
    names = GroupBy.parse(group_by, DIMS, bucket).names
    if rel.height == 0:
        out = df.with_columns(
            pl.lit(0, pl.Int64).alias("judged_queries"),
            pl.lit(None, pl.Float64).alias("hit_rate_at_k"),
            pl.lit(None, pl.Float64).alias("precision_at_k"),
        )
    elif names:
        rel = rel.with_columns(pl.col(n).cast(df.schema[n]) for n in names)
        out = df.join(rel, on=names, how="left", nulls_equal=True)
        out = out.with_columns(pl.col("judged_queries").fill_null(0))
    else:
        out = pl.concat([df, rel], how="horizontal")
    return out


# --- from hourly rollups ---------------------------------------------------------------------

RETRIEVAL_KEYS = ("data_source", *CALL_KEYS, "name")
DOCUMENT_KEYS = ("data_source", "document_id", *CALL_KEYS)


def build_retrieval(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Retrieval queries per data source: documents, empty results, scores, errors, durations."""
    dims = {**{k: SPAN_DIMS[k] for k in RETRIEVAL_KEYS if k != "data_source"}, "data_source": "data_source"}
    group = GroupBy(RETRIEVAL_KEYS, (), "hour")

    def body(p: Params) -> str:
        aggregate = f"""SELECT {keys_select(group, dims)}count(*) AS queries,
          count(*) FILTER (WHERE doc_count IS NULL) AS queries_without_content,
          coalesce(sum(doc_count), 0)::BIGINT AS doc_count_sum, count(doc_count) AS doc_count_n,
          count(*) FILTER (WHERE doc_count = 0) AS empty_queries,
          sum(top1_score) AS top1_sum, count(top1_score) AS top1_n,
          sum(list_sum(doc_scores)) AS score_sum, coalesce(sum(len(doc_scores)), 0)::BIGINT AS score_n,
          count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
          {sketch.agg_sql("duration_ms", "dur")}
        FROM sp GROUP BY ALL"""
        return unpacked(aggregate, "dur")

    src = SpanSource(f, group, categories=("retrieval",), extra_columns=_EXTRA, priced=False)
    return an.run(src, body)


def build_documents(an: Analytics, f: Filters, options: TaskOptions) -> pl.DataFrame:
    """Retrievals per data source and document (`retrieved_documents`)."""
    group = GroupBy(DOCUMENT_KEYS, (), "hour")

    def body(p: Params) -> str:
        return f"""{document_ids_cte()}
        SELECT {keys_select(group, span_keys("data_source", "document_id"))}count(*) AS retrievals
        FROM ids GROUP BY ALL"""

    return an.run(documents_source(f), body)


RETRIEVALS = Table("retrieval", RETRIEVAL_KEYS, build_retrieval, no_reach)
DOCUMENTS = Table("documents", DOCUMENT_KEYS, build_documents, no_reach)


def retrieval_rolled(an: Analytics, q: Request) -> Result | None:
    """The retrieval report from the `retrieval` rollup; relevance at k from raw judged spans (`with_relevance`)."""
    g = group(q.filters, q.group_by, DIMS, q.bucket)
    if g is None:
        return None
    r = read(an, RETRIEVALS, q.filters, q.options, g.bucket)
    if r is None:
        return None
    if r[0].height == 0:
        return pl.DataFrame(), r[1]
    queries, docs_n = pl.col("queries").sum(), pl.col("doc_count_n").sum()
    exprs = [
        queries.alias("queries"),
        pl.col("queries_without_content").sum().alias("queries_without_content"),
        ratio(pl.col("doc_count_sum").sum().cast(pl.Float64), docs_n).alias("docs_per_query"),
        ratio(pl.col("empty_queries").sum(), docs_n).alias("empty_rate"),
        ratio(nullable_sum("top1_sum"), pl.col("top1_n").sum()).alias("avg_top1_score"),
        ratio(nullable_sum("score_sum"), pl.col("score_n").sum()).alias("mean_score"),
    ]
    qs = (0.5, 0.95, 0.99)
    df = agg(r[0], g.names, [*exprs, (pl.col("errors").sum() / queries).alias("error_rate")],
             [("dur", qs, ("p50_ms", "p95_ms", "p99_ms"))])  # fmt: skip
    cols = [*g.names, *(e.meta.output_name() for e in exprs), "p50_ms", "p95_ms", "p99_ms", "error_rate"]
    df = sort_groups(df.select(cols), g.names)
    return with_relevance(an, q.filters, q.group_by, df, bucket=q.bucket, k=q.params["k"], options=q.options), r[1]


def retrieved_documents_rolled(an: Analytics, q: Request) -> Result | None:
    """`retrieved_documents` from the `documents` rollup."""
    got = read_listed(an, DOCUMENTS, q.filters)
    if got is None:
        return None
    df, used = got
    names = ["data_source", "document_id", "retrievals"]
    if df.height == 0:
        return pl.DataFrame(schema={"data_source": pl.String, "document_id": pl.String, "retrievals": pl.Int64}), used
    out = df.group_by(["data_source", "document_id"]).agg(pl.col("retrievals").sum())
    out = out.sort(["retrievals", "data_source", "document_id"], descending=[True, False, False], nulls_last=True)
    return out.head(q.params["limit"]).select(names), used


REPORT = Report(
    "retrieval",
    80,
    "per data source: queries, documents per query, empty-result rate, scores, latency, "
    "hit rate and precision at k where documents were judged",
    raw=lambda an, q: retrieval(an, q.filters, q.group_by, bucket=q.bucket, k=q.params["k"], options=q.options),
    rollup=retrieval_rolled,
    dimensions=("data_source", "service", "name"),
    default_group_by=("data_source",),
    params=(Param("k", int, DEFAULT_K, help="Hit rate and precision at k (judged queries)", ge=1, le=MAX_K),),
    tables=(RETRIEVALS,),
    description="`judged_queries`, `hit_rate_at_k`, `precision_at_k`: over retrieval spans with a relevance judgment.",
    shown_group_by=("data_source",),
    chart="docs_per_query",
)
DOCUMENTS_REPORT = Report(
    "retrieved-documents",
    90,
    "the documents retrieved most often",
    raw=lambda an, q: retrieved_documents(an, q.filters, limit=q.params["limit"], options=q.options),
    rollup=retrieved_documents_rolled,
    params=(Param("limit", int, 20, ge=1, le=1000),),
    tables=(DOCUMENTS,),
    chart="retrievals",
)
