"""Current labels and how much reviewers agree.

Label events are append-only (storage.schema.LABELS): the current label of a (trace, span,
source, author) is its latest event (by `created_at`, then `ingested_at`, then
`label_id`); earlier events are its history.

Agreement is measured per label field over items (a trace, or a span of it) that two or
more human reviewers labelled, each reviewer counted once per item (their current label):

- verdict: pass / fail;
- failure_mode: the mode chosen, or `(none)` when the reviewer gave a verdict without one
  (so "hallucination" against "pass" is a disagreement);
- score: bucketed by the project's label schema (`LabelSchema.score_bucket`).

Figures: percent agreement (the mean over items of the share of reviewer pairs that agree;
for two reviewers, the share of items they agree on), Cohen's kappa for each pair of
reviewers over the items both labelled, their mean (Light's kappa: Cohen's kappa itself
when there are two reviewers), and Fleiss' kappa (items may have different numbers of
reviewers). A kappa is None when it is undefined: fewer than two shared items, or chance
agreement of 1 (every rating in one category).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any

import polars as pl
import pyarrow as pa

from spanlake.storage.label_schema import LabelSchema
from spanlake.storage.reader import Lake

AGREEMENT_FIELDS = ("verdict", "failure_mode", "score")
NO_FAILURE_MODE = "(none)"
LABEL_COLUMNS = (
    "project, trace_id, span_id, source, author, created_at, label_id, verdict, failure_mode, score, value, "
    "comment, expected_output, metadata"
)


def _where(
    project: str | None,
    source: str | None,
    trace_ids: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    params: dict[str, Any],
) -> str:
    preds = ["TRUE"]
    for name, col, value in (("project", "project", project), ("source", "source", source)):
        if value is not None:
            params[name] = value
            preds.append(f"{col} = ${name}")
    if trace_ids is not None:
        params["trace_ids"] = [t.lower() for t in trace_ids]
        preds.append("list_contains($trace_ids, trace_id)")
    if since is not None:
        params["since"] = since
        preds += ["date >= CAST($since AS DATE)", "created_at >= $since"]
    if until is not None:
        params["until"] = until
        preds += ["date <= CAST($until AS DATE)", "created_at < $until"]
    return " AND ".join(preds)


def current_labels_sql(where: str = "TRUE") -> str:
    """SQL for the current label of each (project, trace, span, source, author) among `labels` rows matching `where`."""
    return f"""SELECT {LABEL_COLUMNS} FROM labels WHERE {where}
      QUALIFY row_number() OVER (PARTITION BY project, trace_id, span_id, source, author
                                 ORDER BY created_at DESC, ingested_at DESC, label_id DESC) = 1"""


def current_labels(
    lake: Lake,
    project: str | None = None,
    source: str | None = None,
    trace_ids: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pl.DataFrame:
    """Current labels (one row per trace, span, source, author), newest first.

    `since`/`until` bound when the label was set; `trace_ids` restricts to those traces.
    """
    params: dict[str, Any] = {}
    where = _where(project, source, trace_ids, since, until, params)
    sql = f"{current_labels_sql(where)} ORDER BY created_at DESC, label_id DESC"
    return pl.from_arrow(lake.query(sql, params or None))  # type: ignore[return-value]


def label_history(lake: Lake, trace_id: str, project: str | None = None) -> pl.DataFrame:
    """Every label event of a trace (its spans included), oldest first."""
    params: dict[str, Any] = {}
    where = _where(project, None, [trace_id], None, None, params)
    sql = f"SELECT {LABEL_COLUMNS} FROM labels WHERE {where} ORDER BY created_at, ingested_at, label_id"
    return pl.from_arrow(lake.query(sql, params))  # type: ignore[return-value]


# --- judges ---------------------------------------------------------------------------------

JUDGE_SOURCE = "judge"
# The current label of each evaluator version (author `<evaluator>@v<version>`) on each target,
# with its evaluator and version (metadata.evaluator / evaluator_version, else the author's parts);
# results the app sent (author `<name>@otel`) have metadata.evaluator `<name>@otel` and no version.
JUDGE_LABELS_SCHEMA = pa.schema(
    [
        ("project", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("author", pa.string()),
        ("evaluator", pa.string()),
        ("evaluator_version", pa.int64()),
        ("created_at", pa.timestamp("us", "UTC")),
        ("verdict", pa.string()),
        ("score", pa.float64()),
        ("failure_mode", pa.string()),
        ("comment", pa.string()),
    ]
)
_JUDGE_SELECT = """SELECT project, trace_id, span_id, author,
      coalesce(json_extract_string(metadata, '$.evaluator'), nullif(regexp_extract(author, '^(.*)@v[0-9]+$', 1), ''))
        AS evaluator,
      coalesce(TRY_CAST(json_extract_string(metadata, '$.evaluator_version') AS BIGINT),
               TRY_CAST(nullif(regexp_extract(author, '@v([0-9]+)$', 1), '') AS BIGINT)) AS evaluator_version,
      created_at, verdict, score, failure_mode, comment"""


def has_label_files(lake: Lake) -> bool:
    """Whether the lake may hold labels (always on object storage, where listing is not cheap)."""
    dd = lake.data_dir
    return dd.is_remote or any((dd.lake / "labels").glob("project=*/*/*/*.parquet"))


def judge_labels(
    lake: Lake,
    project: str | None = None,
    since: datetime | None = None,
    trace_ids: Sequence[str] | None = None,
    evaluator: str | None = None,
) -> pa.Table:
    """Current judge labels (JUDGE_LABELS_SCHEMA): one per (trace, span, evaluator version), set
    at or after `since`, of `evaluator` when given (a name: every version; `name@vN`: that one)."""
    if not has_label_files(lake):
        return JUDGE_LABELS_SCHEMA.empty_table()
    params: dict[str, Any] = {}
    where = _where(project, JUDGE_SOURCE, trace_ids, since, None, params)
    sql = f"""SELECT * FROM ({_JUDGE_SELECT} FROM ({current_labels_sql(where)}))"""
    if evaluator is not None:
        params["evaluator"] = evaluator
        sql += " WHERE (evaluator = $evaluator OR author = $evaluator)"
    return lake.query(sql, params).cast(JUDGE_LABELS_SCHEMA)


# --- agreement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAgreement:
    """Two reviewers over the items both labelled."""

    reviewer_a: str
    reviewer_b: str
    items: int
    percent_agreement: float
    cohen_kappa: float | None


@dataclass(frozen=True)
class FieldAgreement:
    """Agreement on one label field."""

    field: str
    items: int  # items with ratings from two or more reviewers
    reviewers: int
    ratings: int
    percent_agreement: float | None
    cohen_kappa: float | None  # mean over reviewer pairs (Light's kappa); Cohen's for two reviewers
    fleiss_kappa: float | None
    pairs: list[PairAgreement] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "items": self.items,
            "reviewers": self.reviewers,
            "ratings": self.ratings,
            "percent_agreement": self.percent_agreement,
            "cohen_kappa": self.cohen_kappa,
            "fleiss_kappa": self.fleiss_kappa,
            "pairs": [p.__dict__ for p in self.pairs],
        }


def rating(row: Mapping[str, Any], name: str, schema: LabelSchema) -> Any:
    """A reviewer's rating on one field, as a category (None: not rated)."""
    if name == "verdict":
        return row.get("verdict")
    if name == "failure_mode":
        if row.get("failure_mode") is not None:
            return row["failure_mode"]
        return NO_FAILURE_MODE if row.get("verdict") is not None else None
    if name == "score":
        score = row.get("score")
        return None if score is None else schema.score_bucket(score)
    raise ValueError(f"no agreement on field {name!r}; use one of {', '.join(AGREEMENT_FIELDS)}")


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's kappa of two raters' categories over the same items (None when undefined)."""
    n = len(a)
    if n < 2 or n != len(b):
        return None
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[c] * cb[c] for c in ca) / (n * n)
    return None if pe >= 1.0 else (po - pe) / (1.0 - pe)


def fleiss_kappa(items: Iterable[Sequence[Any]]) -> float | None:
    """Fleiss' kappa over items, each the list of its ratings (two or more; counts may differ)."""
    per_item: list[float] = []
    totals: Counter[Any] = Counter()
    for ratings in items:
        n = len(ratings)
        if n < 2:
            continue
        counts = Counter(ratings)
        per_item.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
        totals.update(counts)
    if not per_item:
        return None
    all_ratings = sum(totals.values())
    pe = sum((c / all_ratings) ** 2 for c in totals.values())
    p_bar = sum(per_item) / len(per_item)
    return None if pe >= 1.0 else (p_bar - pe) / (1.0 - pe)


def field_agreement(rows: Iterable[Mapping[str, Any]], name: str, schema: LabelSchema | None = None) -> FieldAgreement:
    """Agreement on field `name` among rows of current reviewer labels (one per item and reviewer)."""
    schema = schema or LabelSchema()
    by_item: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        value = rating(r, name, schema)
        if value is None or r.get("author") is None:
            continue
        by_item.setdefault((r.get("project"), r["trace_id"], r.get("span_id")), {})[r["author"]] = value
    shared = {k: v for k, v in by_item.items() if len(v) >= 2}
    reviewers = sorted({a for v in shared.values() for a in v})
    shares = []
    for v in shared.values():
        pairs = list(combinations(v.values(), 2))
        shares.append(sum(x == y for x, y in pairs) / len(pairs))
    pair_stats = []
    for a, b in combinations(reviewers, 2):
        common = [(v[a], v[b]) for v in shared.values() if a in v and b in v]
        if not common:
            continue
        xs, ys = [c[0] for c in common], [c[1] for c in common]
        agree = sum(x == y for x, y in common) / len(common)
        pair_stats.append(PairAgreement(a, b, len(common), agree, cohen_kappa(xs, ys)))
    kappas = [p.cohen_kappa for p in pair_stats if p.cohen_kappa is not None]
    return FieldAgreement(
        field=name,
        items=len(shared),
        reviewers=len(reviewers),
        ratings=sum(len(v) for v in shared.values()),
        percent_agreement=sum(shares) / len(shares) if shares else None,
        cohen_kappa=sum(kappas) / len(kappas) if kappas else None,
        fleiss_kappa=fleiss_kappa(list(v.values()) for v in shared.values()),
        pairs=pair_stats,
    )


def agreement(
    rows: Iterable[Mapping[str, Any]], schema: LabelSchema | None = None, fields: Sequence[str] = AGREEMENT_FIELDS
) -> dict[str, FieldAgreement]:
    """Agreement per field among current human labels (`rows`: dicts with the label columns)."""
    rows = [r for r in rows if r.get("source", "human") == "human"]
    return {name: field_agreement(rows, name, schema) for name in fields}


def project_agreement(
    lake: Lake,
    project: str,
    schema: LabelSchema | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    fields: Sequence[str] = AGREEMENT_FIELDS,
) -> dict[str, FieldAgreement]:
    """Agreement among the project's reviewers, from their current labels set in [since, until)."""
    rows = current_labels(lake, project=project, source="human", since=since, until=until).to_dicts()
    return agreement(rows, schema, fields)
