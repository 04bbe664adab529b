"""What the Experiments page shows, as plain data (no Streamlit here, so it is tested directly):
the experiments table, the aggregates of a baseline and its candidates side by side, the item
table with its filters, and one item in both runs. Figures and deltas are the CLI's
(experiments.compare via experiments.offline, formatted by experiments.markdown)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from spanlake.experiments.compare import Comparison, ItemDiff
from spanlake.experiments.markdown import TITLES, figure_rows
from spanlake.experiments.sides import Item

FILTERS = ("regressed", "improved", "changed", "all")
FILTER_TITLES = {
    "regressed": "Regressed",
    "improved": "Improved",
    "changed": "Changed output",
    "all": "All items",
}
FILTER_HELP = {
    "regressed": "passed in the baseline, fail in the candidate",
    "improved": "failed in the baseline, pass in the candidate",
    "changed": "same verdict, different output",
    "all": "every item both runs have",
}
VERDICTS = {True: "pass", False: "fail", None: "undecided"}
LETTERS = "ABCDEFGH"
MAX_PICKED = len(LETTERS)
OUTPUT_CELL = 200  # characters of an output in the items table (the item view shows all)


def label(row: Mapping[str, Any]) -> str:
    """How an experiment is named in pickers: `id · dataset · meta`."""
    parts = [str(row["id"]), str(row["dataset"])]
    if row.get("meta"):
        parts.append(str(row["meta"]))
    return " · ".join(parts)


def default_pick(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The newest experiment and the newest older one over the same dataset (project and
    name), oldest first (baseline, candidate); [] when there is no such pair."""
    for i, newer in enumerate(rows):
        for older in rows[i + 1 :]:
            if (older["project"], older["dataset"].split("@")[0]) == (newer["project"], newer["dataset"].split("@")[0]):
                return [str(older["id"]), str(newer["id"])]
    return []


def list_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The experiments table: one row per experiment, numbers kept as numbers (sortable)."""
    return [
        {
            "id": r["id"],
            "dataset": r["dataset"],
            "meta": r["meta"],
            "status": r["status"],
            "items": r["items"],
            "success_pct": None if r["success_rate"] is None else r["success_rate"] * 100,
            "cost_per_successful_task": r["cost_per_successful_task"],
            "p95_ms": r["p95_ms"],
            "app": r["app"],
            "project": r["project"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def letter(i: int) -> str:
    """The short name of the i-th picked experiment: A (the baseline), B, C, ..."""
    return LETTERS[i]


def aggregate_rows(comparisons: Sequence[Comparison]) -> list[dict[str, str]]:
    """The aggregates of baseline A and every candidate (B, C, ...), each candidate followed by
    its difference from A with the interval; `figure` names the row."""
    if not comparisons:
        return []
    tables = [figure_rows(c) for c in comparisons]
    rows: list[dict[str, str]] = []
    for i, (name, a_text, _, _) in enumerate(tables[0]):
        row = {"figure": name, "A (baseline)": a_text}
        for n, table in enumerate(tables, 1):
            _, _, b_text, delta = table[i]
            row[letter(n)] = b_text
            row[f"{letter(n)} vs A"] = delta or "—"
        rows.append(row)
    return rows


def failure_mode_rows(comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    """Failure modes and their counts in A and each candidate."""
    if not comparisons:
        return []
    figures = [comparisons[0].a] + [c.b for c in comparisons]
    modes = list(dict.fromkeys(m for f in figures for m in f.failure_modes))
    return [{"failure mode": m} | {letter(n): f.failure_modes.get(m, 0) for n, f in enumerate(figures)}
            for m in modes]  # fmt: skip


def diffs(c: Comparison, which: str) -> list[ItemDiff]:
    """The items of one filter, by item id: regressed, improved, changed (same verdict, other
    output) or all (every item both runs have)."""
    if which == "regressed":
        rows = list(c.regressed)
    elif which == "improved":
        rows = list(c.improved)
    elif which == "changed":
        rows = list(c.changed)
    elif c.sides is None:
        rows = []
    else:
        by_b = {i.key: i for i in c.sides[1].items}
        rows = [ItemDiff(str(i.key), i, by_b[i.key]) for i in c.sides[0].items if i.key in by_b]
    return sorted(rows, key=lambda d: d.key)


def first_filter(counts: Mapping[str, int]) -> str:
    """The filter a comparison opens on: the first of regressed, improved, changed with items,
    else all."""
    return next((f for f in FILTERS[:-1] if counts.get(f)), "all")


def trace_link(project: str | None, item: Item) -> str | None:
    """The item's trace on this dashboard's Trace page (relative, so it opens on the same host)."""
    if item.trace_id is None or project is None:
        return None
    return "./trace?" + urlencode({"trace": item.trace_id, "project": project})


def shown_output(item: Item) -> str:
    text = item.output if item.error is None else f"error: {item.error}"
    text = text or ""
    return text if len(text) <= OUTPUT_CELL else text[: OUTPUT_CELL - 1] + "…"


def item_rows(rows: Sequence[ItemDiff], project_a: str | None, project_b: str | None) -> list[dict[str, Any]]:
    """The items table: verdicts, the candidate's failure mode, both outputs (cut), cost and
    duration in each run, and both traces."""
    return [
        {
            "item": d.key,
            "baseline": VERDICTS[d.a.success],
            "candidate": VERDICTS[d.b.success],
            "candidate failure": d.b.failure_mode,
            "baseline output": shown_output(d.a),
            "candidate output": shown_output(d.b),
            "baseline cost": d.a.cost_usd,
            "candidate cost": d.b.cost_usd,
            "baseline ms": d.a.duration_ms,
            "candidate ms": d.b.duration_ms,
            "baseline trace": trace_link(project_a, d.a),
            "candidate trace": trace_link(project_b, d.b),
        }
        for d in rows
    ]


@dataclass(frozen=True)
class Verdict:
    """A gate verdict as the page shows it: a Material icon, its words and a badge color."""

    icon: str
    title: str
    color: str


VERDICT_LOOKS = {
    "pass": (":material/check_circle:", "green"),
    "fail": (":material/cancel:", "red"),
    "not-enough-data": (":material/warning:", "orange"),
    "n/a": (":material/remove:", "gray"),
}


def verdict(v: str) -> Verdict:
    icon, color = VERDICT_LOOKS.get(v, (":material/help:", "gray"))
    return Verdict(icon, TITLES.get(v, v), color)


def check_marks(checks: Mapping[str, bool | None]) -> str:
    """`exact ✓ · contains ✗` (a check that did not apply: ·)."""
    return " · ".join(f"{k} {'✓' if v else '·' if v is None else '✗'}" for k, v in checks.items()) or "no checks"
