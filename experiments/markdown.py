"""Markdown for a comparison and a gate verdict: fit for a CI job summary ($GITHUB_STEP_SUMMARY)
or a pull-request comment. Cells are escaped and long outputs cut."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spanlake.experiments.compare import Comparison, Delta, Figures, ItemDiff
from spanlake.experiments.gate import GateResult
from spanlake.experiments.sides import Item

Link = Callable[[str, Item], str | None]
MARKS = {"pass": "✅", "fail": "❌", "not-enough-data": "⚠️", "n/a": "—"}
TITLES = {"pass": "pass", "fail": "fail", "not-enough-data": "not enough data"}
CELL = 160  # characters of an output shown in a table cell
MAX_ROWS = 50  # items listed per table


def cell(value: Any, width: int = CELL) -> str:
    """A value safe inside a Markdown table cell."""
    if value is None:
        return "—"
    text = str(value)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", "<br>") or "″″"


def rate_text(f: Figures) -> str:
    """`90.0% [59.6%, 98.2%] (9/10)`: the success rate, its interval and counts."""
    if f.success_rate is None:
        return "—"
    return f"{f.success_rate:.1%} [{f.success_low:.1%}, {f.success_high:.1%}] ({f.successes}/{f.items})"


def usd_text(x: float | None) -> str:
    return "—" if x is None else f"${x:.6f}".rstrip("0").rstrip(".") if x < 1 else f"${x:,.2f}"


def ms_text(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f} ms"


def delta_text(d: Delta) -> str:
    """`+2.0 pts [-3.1, +7.2]` for a difference, `-10.0 % [-15.2, -4.1]` for a ratio."""
    if d.estimate is None:
        return f"— ({d.note})" if d.note else "—"

    def fmt(x: float) -> str:
        return f"{x * 100:+.1f} pts" if d.kind == "difference" else f"{(x - 1) * 100:+.1f} %"

    if d.low is None or d.high is None:
        return fmt(d.estimate)
    return f"{fmt(d.estimate)} [{fmt(d.low)}, {fmt(d.high)}]"


def figure_rows(c: Comparison) -> list[tuple[str, str, str, str]]:
    """(figure, baseline, candidate, candidate vs baseline) for each aggregate, as text."""
    a, b = c.a, c.b
    return [
        ("items", str(a.items), str(b.items), ""),
        ("success rate", rate_text(a), rate_text(b), delta_text(c.deltas["success_rate"])),
        ("cost per task", usd_text(a.cost_per_task), usd_text(b.cost_per_task), delta_text(c.deltas["cost_per_task"])),
        (
            "cost per successful task",
            usd_text(a.cost_per_successful_task),
            usd_text(b.cost_per_successful_task),
            delta_text(c.deltas["cost_per_successful_task"]),
        ),
        ("p50 latency", ms_text(a.p50_ms), ms_text(b.p50_ms), delta_text(c.deltas["p50_latency"])),
        ("p95 latency", ms_text(a.p95_ms), ms_text(b.p95_ms), delta_text(c.deltas["p95_latency"])),
        ("errors and timeouts", str(a.errors), str(b.errors), ""),
        ("undecided", str(a.undecided), str(b.undecided), ""),
    ]


def figures_table(c: Comparison) -> list[str]:
    a, b = c.a, c.b
    rows = figure_rows(c)
    out = [
        f"| {c.confidence:.0%} intervals | baseline `{cell(a.name, 60)}` | candidate `{cell(b.name, 60)}` "
        "| candidate vs baseline |",
        "|---|---|---|---|",
    ]
    out += [f"| {name} | {x} | {y} | {z} |" for name, x, y, z in rows]
    if c.paired and (c.only_in_a or c.only_in_b):
        out.append("")
        out.append(
            f"Compared on the items both ran ({c.only_in_a} only in the baseline, {c.only_in_b} only in the candidate)."
        )
    return out


def _modes(c: Comparison) -> list[str]:
    names = list(dict.fromkeys([*c.a.failure_modes, *c.b.failure_modes]))
    if not names:
        return []
    out = ["", "| failure mode | baseline | candidate |", "|---|---|---|"]
    out += [f"| {cell(m, 80)} | {c.a.failure_modes.get(m, 0)} | {c.b.failure_modes.get(m, 0)} |" for m in names]
    return out


def _links(d: ItemDiff, c: Comparison, link: Link | None) -> str:
    if link is None:
        return "—"
    parts = []
    for label, side, item in (("A", c.a.name, d.a), ("B", c.b.name, d.b)):
        url = link(side, item)
        if url:
            parts.append(f"[{label}]({url})")
    return " ".join(parts) or "—"


def items_table(title: str, rows: list[ItemDiff], c: Comparison, link: Link | None) -> list[str]:
    if not rows:
        return []
    out = [
        "",
        f"### {title} ({len(rows)})",
        "",
        "| item | baseline output | candidate output | candidate failure | traces |",
        "|---|---|---|---|---|",
    ]
    for d in rows[:MAX_ROWS]:
        out.append(
            f"| `{cell(d.key, 80)}` | {cell(d.a.output if d.a.error is None else d.a.error)} "
            f"| {cell(d.b.output if d.b.error is None else d.b.error)} | {cell(d.b.failure_mode, 60)} "
            f"| {_links(d, c, link)} |"
        )
    if len(rows) > MAX_ROWS:
        out.append(f"\n({len(rows) - MAX_ROWS} more not shown; `--format json` lists them all)")
    return out


def comparison_markdown(c: Comparison, link: Link | None = None, heading: str = "## Baseline vs candidate") -> str:
    """The figures table, failure modes and the items that regressed, improved or changed."""
    out = [heading, "", *figures_table(c), *_modes(c)]
    if c.paired:
        out += items_table("Regressed: passed in the baseline, fail in the candidate", c.regressed, c, link)
        out += items_table("Improved: failed in the baseline, pass in the candidate", c.improved, c, link)
        out += items_table("Changed output, same verdict", c.changed, c, link)
    return "\n".join(out) + "\n"


def gate_markdown(result: GateResult, link: Link | None = None) -> str:
    """The verdict, one line per rule with ✅/❌/⚠️, then the comparison."""
    v = result.verdict
    out = [
        f"# {MARKS[v]} Release gate: {TITLES[v]}",
        "",
        "| rule | verdict | detail |",
        "|---|---|---|",
    ]
    for r in result.rules:
        out.append(f"| `{r.rule}` | {MARKS[r.verdict]} {TITLES.get(r.verdict, r.verdict)} | {cell(r.detail, 400)} |")
    out.append("")
    return "\n".join(out) + "\n" + comparison_markdown(result.comparison, link)


def append_summary(text: str, path: str | None) -> str | None:
    """Append `text` to the job summary file `path` (GitHub Actions: $GITHUB_STEP_SUMMARY);
    returns why it could not, or None."""
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as e:
        return f"cannot write the job summary to {path}: {e}"
    return None
