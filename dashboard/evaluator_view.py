"""What the Evaluators page and the trace view show of evaluators, as plain data (no Streamlit,
so it is tested directly): each evaluator version with its volume, pass rate, cost and latency
(from its current judge labels), its agreement with people (evaluators.alignment), its results
per week, its latest results and its disagreements, each with a link to its trace.

A result is a current label of source `judge` (one per trace or span and evaluator version:
analytics.labels.current_labels); its author is `name@vN` (evaluators.result.author) and its
metadata holds the judge's model, tokens, cost and latency (docs/evaluators.md). Results the
app sent (`gen_ai.evaluation.result` events, evaluators.external) have the author `name@otel`,
which is also their evaluator's name, and no version (None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import altair as alt
import orjson
import polars as pl

from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.external import is_external
from spanlake.evaluators.result import parse_author

MAX_BUTTONS = 12  # disagreements with a button of their own (the table links every one)
VERDICTS = ("pass", "fail")
COMMENT_CELL = 200  # characters of a judge's reason in a table (the trace view shows all)
RESULT_COLUMNS = ("project", "trace_id", "span_id", "created_at", "evaluator", "version", "verdict", "score",
                  "failure_mode", "comment", "judge_model", "cost_usd", "latency_ms", "input_tokens",
                  "output_tokens", "decides_outcome", "label")  # fmt: skip
_SCHEMA = {"project": pl.String, "trace_id": pl.String, "span_id": pl.String,
           "created_at": pl.Datetime("us", "UTC"), "evaluator": pl.String, "version": pl.Int64,
           "verdict": pl.String, "score": pl.Float64, "failure_mode": pl.String, "comment": pl.String,
           "judge_model": pl.String, "cost_usd": pl.Float64, "latency_ms": pl.Float64, "input_tokens": pl.Int64,
           "output_tokens": pl.Int64, "decides_outcome": pl.Boolean, "label": pl.String}  # fmt: skip
APP_KIND = "sent by your app"  # the kind shown for results the app sent (`name@otel`)


def version_key(project: str, name: str, version: int | None) -> str:
    """`project/name@vN`, or `project/name@otel` for the results the app sent (no version)."""
    return f"{project}/{name}" if version is None else f"{project}/{name}@v{version}"


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def metadata_of(value: Any) -> dict[str, Any]:
    """A label's metadata (JSON text in the lake) as a dict; {} when absent or not an object."""
    if isinstance(value, Mapping):
        return dict(value)
    if not value:
        return {}
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}


def result_row(label: Mapping[str, Any]) -> dict[str, Any] | None:
    """One judge label as a result row (RESULT_COLUMNS); None when it names no evaluator version
    (neither metadata.evaluator/evaluator_version nor an author `name@vN` or `name@otel`)."""
    meta = metadata_of(label.get("metadata"))
    name, version = meta.get("evaluator"), _int(meta.get("evaluator_version"))
    author = str(label.get("author") or "")
    if is_external(author):
        name, version = author, None
    elif not isinstance(name, str) or version is None:
        found = parse_author(str(label.get("author") or ""))
        if found is None:
            return None
        name, version = found
    created = label.get("created_at")
    if isinstance(created, datetime) and created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return {
        "project": label.get("project"),
        "trace_id": label.get("trace_id"),
        "span_id": label.get("span_id"),
        "created_at": created,
        "evaluator": name,
        "version": version,
        "verdict": label.get("verdict"),
        "score": _number(label.get("score")),
        "failure_mode": label.get("failure_mode"),
        "comment": label.get("comment"),
        "judge_model": meta.get("judge_model") if isinstance(meta.get("judge_model"), str) else None,
        "cost_usd": _number(meta.get("cost_usd")),
        "latency_ms": _number(meta.get("latency_ms")),
        "input_tokens": _int(meta.get("input_tokens")),
        "output_tokens": _int(meta.get("output_tokens")),
        "decides_outcome": bool(meta.get("decides_outcome")),
        "label": meta.get("label") if isinstance(meta.get("label"), str) else None,
    }


def results(labels: pl.DataFrame | Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Judge labels (current_labels(source="judge") rows) as result rows, newest first."""
    rows = labels.to_dicts() if isinstance(labels, pl.DataFrame) else list(labels)
    found = [r for r in (result_row(x) for x in rows) if r is not None]
    frame = pl.DataFrame(found, schema=_SCHEMA)
    return frame.sort(["created_at", "trace_id"], descending=True, nulls_last=True)


# --- one row per evaluator version ----------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """An evaluator version against people on the same items (evaluators.alignment)."""

    items: int = 0
    kappa: float | None = None
    precision: float | None = None  # of the judge's "fail", people's fail being the truth
    recall: float | None = None
    confusion: Mapping[tuple[str, str], int] | None = None  # (judge verdict, people's verdict) → items


def agreement(figures: Any) -> Agreement:
    """An Agreement from evaluators.alignment's Figures (confusion keyed `judge_pass_human_fail`, ...)."""
    confusion = {(j, h): int(figures.confusion.get(f"judge_{j}_human_{h}", 0)) for j in VERDICTS for h in VERDICTS}
    return Agreement(figures.items, figures.kappa, figures.precision, figures.recall, confusion)


@dataclass(frozen=True)
class EvaluatorSummary:
    """One evaluator version as the page lists it. `declared`: in evaluators.toml now (its
    current version); else a version seen only in results (an older one, or one removed)."""

    project: str
    name: str
    version: int | None  # None: results the app sent (`name@otel`)
    kind: str | None
    declared: bool
    results: int
    passed: int
    failed: int
    cost_usd: float | None  # total over its results that were priced
    mean_latency_ms: float | None
    latest: datetime | None
    description: str = ""

    @property
    def key(self) -> str:
        return version_key(self.project, self.name, self.version)

    @property
    def pass_rate(self) -> float | None:
        """pass / (pass + fail); None without a verdict."""
        judged = self.passed + self.failed
        return self.passed / judged if judged else None

    @property
    def cost_per_result(self) -> float | None:
        return None if self.cost_usd is None or not self.results else self.cost_usd / self.results


def summaries(declared: Sequence[Evaluator], found: pl.DataFrame) -> list[EvaluatorSummary]:
    """Each declared evaluator's current version (with or without results) and every other
    version that has results, ordered by project, name, newest version first."""
    stats: dict[tuple[str, str, int | None], dict[str, Any]] = {}
    if found.height:
        grouped = found.group_by("project", "evaluator", "version").agg(
            pl.len().alias("results"),
            (pl.col("verdict") == "pass").sum().alias("passed"),
            (pl.col("verdict") == "fail").sum().alias("failed"),
            pl.when(pl.col("cost_usd").is_not_null().any()).then(pl.col("cost_usd").sum()).alias("cost_usd"),
            pl.col("latency_ms").mean().alias("mean_latency_ms"),
            pl.col("created_at").max().alias("latest"),
        )
        stats = {(r["project"], r["evaluator"], r["version"]): r for r in grouped.to_dicts()}
    out: dict[tuple[str, str, int | None], EvaluatorSummary] = {}
    kinds = {(e.project, e.name): e for e in declared}
    for e in declared:
        out[(e.project, e.name, e.version)] = _summary(e.project, e.name, e.version, e, True, stats.get(
            (e.project, e.name, e.version)))  # fmt: skip
    for key, s in stats.items():
        if key not in out:
            out[key] = _summary(*key, kinds.get(key[:2]), False, s)
    return sorted(out.values(), key=lambda s: (s.project, s.name, -(s.version or 0)))


def _summary(
    project: str, name: str, version: int | None, e: Evaluator | None, declared: bool, s: Mapping[str, Any] | None
) -> EvaluatorSummary:
    s = s or {}
    return EvaluatorSummary(
        project=project,
        name=name,
        version=version,
        kind=e.kind if e is not None else (APP_KIND if version is None else None),
        declared=declared,
        results=int(s.get("results") or 0),
        passed=int(s.get("passed") or 0),
        failed=int(s.get("failed") or 0),
        cost_usd=s.get("cost_usd"),
        mean_latency_ms=s.get("mean_latency_ms"),
        latest=s.get("latest"),
        description=e.description if e is not None else "",
    )


def list_rows(found: Sequence[EvaluatorSummary], agreements: Mapping[str, Agreement]) -> list[dict[str, Any]]:
    """The evaluators table, numbers kept as numbers (sortable)."""
    rows = []
    for s in found:
        a = agreements.get(s.key) or Agreement()
        rows.append({
            "evaluator": s.name if s.declared or s.version is None else f"{s.name} (not declared)",
            "project": s.project,
            "version": s.version,
            "kind": s.kind or "",
            "results": s.results,
            "pass_rate": s.pass_rate,
            "kappa": a.kappa,
            "precision_fail": a.precision,
            "recall_fail": a.recall,
            "compared": a.items,
            "cost_usd": s.cost_usd,
            "mean_latency_ms": s.mean_latency_ms,
            "latest": s.latest,
        })  # fmt: skip
    return rows


def label(s: EvaluatorSummary, with_project: bool = False) -> str:
    """How an evaluator version is named in pickers: `groundedness v2 · llm_judge · 40 results`."""
    name = f"{s.project} / {s.name}" if with_project else s.name
    parts = [title(s, name), s.kind or "not declared", f"{s.results:,} result{'s' * (s.results != 1)}"]
    return " · ".join(parts)


def title(s: EvaluatorSummary, name: str | None = None) -> str:
    """`groundedness v2`; the app's results (no version) by their name alone: `relevance@otel`."""
    name = s.name if name is None else name
    return name if s.version is None else f"{name} v{s.version}"


# --- one evaluator version ------------------------------------------------------------------------


def of_version(found: pl.DataFrame, s: EvaluatorSummary) -> pl.DataFrame:
    """The results of one evaluator version."""
    return found.filter(
        (pl.col("project") == s.project) & (pl.col("evaluator") == s.name) & pl.col("version").eq_missing(s.version)
    )


def week_of(t: datetime) -> datetime:
    """The Monday 00:00 UTC that starts t's ISO week."""
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def weekly(found: pl.DataFrame) -> list[dict[str, Any]]:
    """Pass rate per ISO week (weeks start on Monday, UTC) of one version's results, oldest first."""
    by: dict[datetime, list[int]] = {}
    for r in found.select("created_at", "verdict").to_dicts():
        if r["created_at"] is None or r["verdict"] not in ("pass", "fail"):
            continue
        counts = by.setdefault(week_of(r["created_at"]), [0, 0])
        counts[0 if r["verdict"] == "pass" else 1] += 1
    return [
        {"week": w.date().isoformat(), "pass_rate": p / (p + f), "results": p + f, "shown": f"{p / (p + f):.1%}"}
        for w, (p, f) in sorted(by.items())
    ]


def weekly_chart(rows: list[dict[str, Any]], title: str) -> alt.Chart:
    """The pass rate per week, a line with a point per week (0 to 100 %)."""
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=alt.OverlayMarkDef(filled=True, size=60))
        .encode(
            x=alt.X("week:T", title=None, scale=alt.Scale(type="utc"), axis=alt.Axis(format="%b %d", tickCount=8)),
            y=alt.Y("pass_rate:Q", title=None, scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
            tooltip=[
                alt.Tooltip("week:N", title="week of"),
                alt.Tooltip("shown:N", title="pass rate"),
                alt.Tooltip("results:Q"),
            ],
        )
        .properties(height=180, title=alt.TitleParams(title, anchor="start", fontSize=13, fontWeight="normal"))
    )


def confusion_rows(a: Agreement) -> list[dict[str, Any]]:
    """The confusion matrix as a table: one row per judge verdict, a column per people's verdict."""
    c = a.confusion or {}
    return [
        {"judge": f"judge {j}", "people: pass": c.get((j, "pass"), 0), "people: fail": c.get((j, "fail"), 0)}
        for j in ("pass", "fail")
    ]


def trace_link(project: str, trace_id: str, at: datetime | None = None) -> str:
    """The trace on this dashboard's Trace page (relative: it opens on the same host)."""
    query = {"trace": trace_id, "project": project}
    if at is not None:
        query["t"] = at.isoformat()
    return "./trace?" + urlencode(query)


def short_id(trace_id: str) -> str:
    """A trace id short enough for a button, both ends kept: `4bf92f…4736`."""
    return trace_id if len(trace_id) <= 12 else f"{trace_id[:6]}…{trace_id[-4:]}"


def _cut(text: Any) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= COMMENT_CELL else text[: COMMENT_CELL - 1] + "…"


def latest_rows(found: pl.DataFrame, limit: int = 50) -> list[dict[str, Any]]:
    """A version's newest results with their traces."""
    return [
        {
            "created_at": r["created_at"],
            "target": "trace" if r["span_id"] is None else f"span {r['span_id']}",
            "verdict": r["verdict"] or "",
            "score": r["score"],
            "failure_mode": r["failure_mode"] or "",
            "reason": _cut(r["comment"]),
            "cost_usd": r["cost_usd"],
            "latency_ms": r["latency_ms"],
            "trace": trace_link(r["project"], r["trace_id"]),
        }
        for r in found.head(limit).to_dicts()
    ]


def disagreement_rows(project: str, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The items where the judge and people differ (evaluators.alignment.disagreements), each
    with its trace one click away."""
    out = []
    for r in rows:
        out.append({
            "trace": trace_link(project, str(r["trace_id"])),
            "target": "trace" if r.get("span_id") is None else f"span {r['span_id']}",
            "judge": r.get("judge_verdict") or "",
            "judge score": _number(r.get("judge_score")),
            "judge's reason": _cut(r.get("judge_comment")),
            "people": r.get("human_verdict") or "",
            "reviewer": r.get("human_author") or "",
            "reviewer's note": _cut(r.get("human_comment")),
        })  # fmt: skip
    return out


FEEDBACK_VERDICT = {"up": "pass", "down": "fail"}


def feedback_disagreements(found: pl.DataFrame, feedback: pl.DataFrame) -> list[dict[str, Any]]:
    """The results whose verdict differs from an end user's thumbs on the same target (up is a
    pass, down a fail; the newest thumbs of a target counts), each with its trace."""
    thumbs: dict[tuple[str, str | None], dict[str, Any]] = {}
    for f in feedback.sort("created_at", descending=True).to_dicts() if feedback.height else []:
        if f.get("value") in FEEDBACK_VERDICT:
            thumbs.setdefault((f["trace_id"], f["span_id"]), f)
    out = []
    for r in found.to_dicts():
        f = thumbs.get((r["trace_id"], r["span_id"]))
        if f is None or r["verdict"] not in ("pass", "fail") or FEEDBACK_VERDICT[f["value"]] == r["verdict"]:
            continue
        out.append({
            "trace": trace_link(r["project"], r["trace_id"]),
            "target": "trace" if r["span_id"] is None else f"span {r['span_id']}",
            "judge": r["verdict"],
            "judge's reason": _cut(r["comment"]),
            "user": f"thumbs {f['value']}",
            "user id": f.get("author") or "",
            "user's comment": _cut(f.get("comment")),
        })  # fmt: skip
    return out


# --- the trace view -------------------------------------------------------------------------------


def on_trace(found: pl.DataFrame, span_names: Mapping[str, str]) -> list[dict[str, Any]]:
    """A trace's judge results (one per target and evaluator version), the trace's first, then by span."""
    rows = []
    for r in found.sort(["span_id", "evaluator", "version"], nulls_last=False).to_dicts():
        sid = r["span_id"]
        rows.append({
            "span_id": sid,
            "target": "trace" if sid is None else f"span {span_names.get(sid, '')} ({sid})".replace("  ", " "),
            "evaluator": r["evaluator"] if r["version"] is None else f"{r['evaluator']}@v{r['version']}",
            "verdict": r["verdict"] or r["label"] or "",
            "score": r["score"],
            "failure_mode": r["failure_mode"] or "",
            "reason": r["comment"] or "",
            "judge_model": r["judge_model"] or "",
            "cost_usd": r["cost_usd"],
            "latency_ms": r["latency_ms"],
            "decides_outcome": r["decides_outcome"],
            "created_at": r["created_at"],
        })  # fmt: skip
    return rows
