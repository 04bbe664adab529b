"""How well a judge agrees with people: each evaluator version against the current human labels
on the same items.

An *item* is a trace (a label without span) or a span of it, in one project. On each item the
judge's label is the evaluator version's current one (author `<name>@v<version>`; results the
app sent, author `<name>@otel`, count as one evaluator without versions: version None) and the
people's is the latest current human label (analytics.labels.current_labels: each reviewer's
latest, then the newest of those). An item counts for an evaluator version when both have
labelled it.

Figures, per evaluator version, overall and per ISO week of the judge label's time
(`2026-W49`):

- `items`: items both labelled;
- `confusion`: counts of (judge verdict, human verdict) over items where both gave a verdict,
  keys `judge_pass_human_pass`, `judge_pass_human_fail`, `judge_fail_human_pass`,
  `judge_fail_human_fail`;
- `kappa`: Cohen's kappa of the two verdicts (analytics.labels.cohen_kappa);
- `precision` / `recall`: of the judge on "fail", a human fail being the positive:
  precision = both fail / judge fail, recall = both fail / human fail;
- `spearman`: rank correlation of the scores over items both scored (ties get their average
  rank), with `scored_items`.

A figure that is undefined (no item, no judge fail, a constant score, chance agreement of 1)
is None. `disagreements` lists the items whose verdicts differ: that is where a rubric gets
fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from spanlake.analytics.labels import cohen_kappa, current_labels
from spanlake.evaluators.external import is_external
from spanlake.evaluators.result import SOURCE as JUDGE
from spanlake.evaluators.result import parse_author
from spanlake.storage.reader import Lake

HUMAN = "human"
VERDICTS = ("pass", "fail")
Item = tuple[Any, str, str | None]  # (project, trace_id, span_id)
Version = tuple[str, int | None]  # (evaluator, version); None: the app's own results (`name@otel`)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Figures:
    """Agreement of one evaluator version with people over some items (module docstring)."""

    items: int
    confusion: dict[str, int]
    kappa: float | None
    precision: float | None
    recall: float | None
    spearman: float | None
    scored_items: int


@dataclass(frozen=True)
class Alignment:
    """One evaluator version: figures overall and per ISO week (oldest first)."""

    evaluator: str
    version: int | None  # None: results the app sent (`name@otel`)
    overall: Figures
    weeks: dict[str, Figures] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "version": self.version,
            **asdict(self.overall),
            "weeks": [{"week": w, **asdict(f)} for w, f in self.weeks.items()],
        }


@dataclass(frozen=True)
class Pair:
    """A judge label and the people's label on the same item."""

    item: Item
    judge: Mapping[str, Any]
    human: Mapping[str, Any]


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with fewer than two pairs
    or when either side is constant."""
    if len(a) != len(b) or len(a) < 2:
        return None
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    da, db = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((da * da).sum() * (db * db).sum()))
    return None if denom == 0.0 else float((da * db).sum() / denom)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(values))
    counts = np.bincount(inverse, minlength=len(values))
    return (sums / counts)[inverse]


def figures(pairs: Sequence[Pair]) -> Figures:
    """The figures of these pairs (one per item)."""
    verdicts = [(p.judge.get("verdict"), p.human.get("verdict")) for p in pairs]
    verdicts = [(j, h) for j, h in verdicts if j in VERDICTS and h in VERDICTS]
    confusion = {f"judge_{j}_human_{h}": sum(v == (j, h) for v in verdicts) for j in VERDICTS for h in VERDICTS}
    both_fail = confusion["judge_fail_human_fail"]
    judge_fail = both_fail + confusion["judge_fail_human_pass"]
    human_fail = both_fail + confusion["judge_pass_human_fail"]
    scores = [(p.judge["score"], p.human["score"]) for p in pairs if _number(p.judge) and _number(p.human)]
    return Figures(
        items=len(pairs),
        confusion=confusion,
        kappa=cohen_kappa([j for j, _ in verdicts], [h for _, h in verdicts]),
        precision=both_fail / judge_fail if judge_fail else None,
        recall=both_fail / human_fail if human_fail else None,
        spearman=spearman([s for s, _ in scores], [s for _, s in scores]),
        scored_items=len(scores),
    )


def _number(row: Mapping[str, Any]) -> bool:
    s = row.get("score")
    return s is not None and s == s  # NaN is no score


def _item(row: Mapping[str, Any]) -> Item:
    return (row.get("project"), str(row["trace_id"]).lower(), (row.get("span_id") or None))


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a.get("created_at"), a.get("label_id") or "") > (b.get("created_at"), b.get("label_id") or "")


def evaluator_of(row: Mapping[str, Any]) -> Version | None:
    """(name, version) of a judge label: its metadata's, else its author's (`name@vN`); an app's
    result (author `name@otel`) is (`name@otel`, None)."""
    author = str(row.get("author") or "")
    if is_external(author):
        return author, None
    meta = row.get("metadata")
    if isinstance(meta, str):  # JSON text from the lake, a dict from callers
        try:
            meta = orjson.loads(meta)
        except orjson.JSONDecodeError:
            meta = None
    if isinstance(meta, Mapping) and isinstance(meta.get("evaluator"), str):
        version = meta.get("evaluator_version")
        if isinstance(version, int) and not isinstance(version, bool):
            return meta["evaluator"], version
    return parse_author(author)


def pairs_by_version(rows: Iterable[Mapping[str, Any]]) -> dict[Version, list[Pair]]:
    """Judge labels paired with the people's latest label on the same item, per evaluator version.

    `rows`: current labels (one per item, source and author, as analytics.labels.current_labels
    gives), judges' and people's; other sources are ignored."""
    human: dict[Item, Mapping[str, Any]] = {}
    judged: dict[Version, dict[Item, Mapping[str, Any]]] = {}
    for r in rows:
        if r.get("source") == HUMAN:
            key = _item(r)
            if key not in human or _newer(r, human[key]):
                human[key] = r
        elif r.get("source") == JUDGE:
            ev = evaluator_of(r)
            if ev is None:
                continue
            mine = judged.setdefault(ev, {})
            key = _item(r)
            if key not in mine or _newer(r, mine[key]):
                mine[key] = r
    out: dict[Version, list[Pair]] = {}
    for ev, items in sorted(judged.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        out[ev] = [Pair(k, j, human[k]) for k, j in items.items() if k in human]
    return out


def iso_week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def alignment(rows: Iterable[Mapping[str, Any]]) -> list[Alignment]:
    """Every evaluator version's agreement with people, from current label rows (pure; see
    `pairs_by_version`), by name then version. A version with no item in common with people
    is listed with zero items."""
    out = []
    for (name, version), pairs in pairs_by_version(rows).items():
        weeks: dict[str, list[Pair]] = {}
        for p in pairs:
            at = p.judge.get("created_at")
            if isinstance(at, datetime):
                weeks.setdefault(iso_week(at), []).append(p)
        by_week = {w: figures(weeks[w]) for w in sorted(weeks)}
        out.append(Alignment(name, version, figures(pairs), by_week))
    return out


def disagreements(rows: Iterable[Mapping[str, Any]], evaluator: str, version: int | None = None) -> list[dict]:
    """Items where `evaluator` (one `version`, or every one) and people gave different verdicts,
    the latest judged first: trace_id, span_id, the judge's verdict, score, comment and failure
    mode, the people's verdict, comment, failure mode and author."""
    out = []
    for (name, v), pairs in pairs_by_version(rows).items():
        if name != evaluator or (version is not None and v != version):
            continue
        for p in pairs:
            j, h = p.judge, p.human
            if j.get("verdict") in VERDICTS and h.get("verdict") in VERDICTS and j["verdict"] != h["verdict"]:
                out.append({
                    "project": p.item[0], "trace_id": p.item[1], "span_id": p.item[2],
                    "evaluator": name, "version": v, "judged_at": j.get("created_at"),
                    "judge_verdict": j["verdict"], "judge_score": j.get("score"),
                    "judge_comment": j.get("comment"), "judge_failure_mode": j.get("failure_mode"),
                    "human_verdict": h["verdict"], "human_comment": h.get("comment"),
                    "human_failure_mode": h.get("failure_mode"), "human_author": h.get("author"),
                })  # fmt: skip
    out.sort(key=lambda d: (d["judged_at"] or _EPOCH, d["trace_id"], d["span_id"] or ""), reverse=True)
    return out


def label_rows(
    lake: Lake, project: str, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """The current judge labels of `project` set in [since, until), and every current human
    label of their traces (people may label before or after the judge)."""
    judged = current_labels(lake, project, source=JUDGE, since=since, until=until).to_dicts()
    if not judged:
        return []
    traces = sorted({r["trace_id"] for r in judged})
    return judged + current_labels(lake, project, source=HUMAN, trace_ids=traces).to_dicts()


def project_alignment(
    lake: Lake, project: str, since: datetime | None = None, until: datetime | None = None
) -> list[Alignment]:
    """`alignment` of the project's judges whose labels were set in [since, until)."""
    return alignment(label_rows(lake, project, since, until))


def project_disagreements(
    lake: Lake,
    project: str,
    evaluator: str,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict]:
    """`disagreements` of an evaluator on the project's labels set in [since, until), at most `limit`."""
    return disagreements(label_rows(lake, project, since, until), evaluator, version)[:limit]
