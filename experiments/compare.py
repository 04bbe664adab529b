"""Two sides compared: each side's figures, their differences with confidence intervals, and,
when the sides are paired (two experiments over the same dataset items), item by item.

Figures follow `spanlake report compare` (analytics/reports/compare.py), so an offline run and
production traffic read the same way:

- success rate = successful items / items (undecided items count in the denominator), with a
  Wilson interval; the difference b - a with Newcombe's hybrid score interval;
- cost per task = total cost / items; cost per successful task = total cost / successful items
  (an item without a price counts 0, as `sum()` does in the report);
- p50 / p95 latency: linear-interpolation quantiles (DuckDB's `quantile_cont`) of the items'
  durations;
- cost and latency ratios b / a with bootstrap intervals over items, paired when both sides
  saw the same items.

Paired sides are cut to the items both have (an unfinished run then cannot skew the other).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from spanlake.experiments.sides import Item, Side
from spanlake.experiments.stats import bootstrap_ratio, paired_flips, rate_difference, wilson

Statistic = Literal["mean", "p50", "p95", "cost_per_success"]


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation quantile (DuckDB quantile_cont, numpy's default); None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Figures:
    """One side's aggregates."""

    name: str
    items: int
    successes: int
    failures: int
    undecided: int
    errors: int  # items whose app raised or timed out (counted as failures too)
    success_rate: float | None
    success_low: float | None
    success_high: float | None
    priced: int  # items with a cost
    total_cost: float | None
    cost_per_task: float | None
    cost_per_successful_task: float | None
    timed: int  # items with a duration
    p50_ms: float | None
    p95_ms: float | None
    failure_modes: dict[str, int] = field(default_factory=dict)


def side_figures(side: Side, confidence: float = 0.95) -> Figures:
    """Aggregates of one side (see the module docstring for each definition)."""
    items = list(side.items)
    n = len(items)
    successes = sum(i.success is True for i in items)
    failures = sum(i.success is False for i in items)
    low, high = wilson(successes, n, confidence) if n else (None, None)
    costs = [i.cost_usd for i in items if i.cost_usd is not None]
    total = math.fsum(costs) if costs else None
    durations = [i.duration_ms for i in items if i.duration_ms is not None]
    modes = Counter(i.failure_mode or "(unknown)" for i in items if i.success is False)
    return Figures(
        name=side.name,
        items=n,
        successes=successes,
        failures=failures,
        undecided=n - successes - failures,
        errors=sum(i.failure_mode in ("error", "timeout") for i in items),
        success_rate=successes / n if n else None,
        success_low=low,
        success_high=high,
        priced=len(costs),
        total_cost=total,
        cost_per_task=total / n if total is not None and n else None,
        cost_per_successful_task=total / successes if total is not None and successes else None,
        timed=len(durations),
        p50_ms=quantile(durations, 0.5),
        p95_ms=quantile(durations, 0.95),
        failure_modes=dict(modes.most_common()),
    )


@dataclass(frozen=True)
class Delta:
    """b compared with a: a difference (success rate, b - a) or a ratio (b / a), with its
    interval; `estimate` None when it cannot be computed (`note` says why)."""

    metric: str
    kind: Literal["difference", "ratio"]
    estimate: float | None
    low: float | None = None
    high: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class ItemDiff:
    """One dataset item in both runs."""

    key: str
    a: Item
    b: Item


@dataclass
class Comparison:
    """Baseline `a` against candidate `b`."""

    a: Figures
    b: Figures
    paired: bool
    confidence: float
    deltas: dict[str, Delta]
    only_in_a: int = 0  # paired: items left out because the other side lacks them
    only_in_b: int = 0
    regressed: list[ItemDiff] = field(default_factory=list)  # passed in a, fail in b
    improved: list[ItemDiff] = field(default_factory=list)  # failed in a, pass in b
    changed: list[ItemDiff] = field(default_factory=list)  # same verdict, different output
    sides: tuple[Side, Side] | None = None  # the sides as compared (paired: cut to common items)


def _ratio(
    metric: str,
    a: Sequence[Item],
    b: Sequence[Item],
    statistic: Statistic,
    paired: bool,
    confidence: float,
    n_resamples: int,
    seed: int,
) -> Delta:
    """A bootstrap ratio of a cost or latency statistic; costs count 0 when unpriced."""
    if statistic in ("mean", "cost_per_success"):
        if not any(i.cost_usd is not None for i in a) or not any(i.cost_usd is not None for i in b):
            return Delta(metric, "ratio", None, note="no priced items on a side")
        xa = [i.cost_usd or 0.0 for i in a]
        xb = [i.cost_usd or 0.0 for i in b]
    else:
        if paired:
            both = [(x, y) for x, y in zip(a, b, strict=True) if None not in (x.duration_ms, y.duration_ms)]
            a, b = [x for x, _ in both], [y for _, y in both]
        else:
            a = [i for i in a if i.duration_ms is not None]
            b = [i for i in b if i.duration_ms is not None]
        xa = [float(i.duration_ms) for i in a]  # type: ignore[arg-type]
        xb = [float(i.duration_ms) for i in b]  # type: ignore[arg-type]
    if not xa or not xb:
        return Delta(metric, "ratio", None, note="no items with a value on a side")
    kwargs: dict[str, Any] = {}
    if statistic == "cost_per_success":
        sa, sb = [i.success is True for i in a], [i.success is True for i in b]
        if not any(sa) or not any(sb):
            return Delta(metric, "ratio", None, note="no successful items on a side")
        kwargs = {"successes_a": sa, "successes_b": sb}
    base = {"mean": math.fsum(xa) / len(xa), "p50": quantile(xa, 0.5), "p95": quantile(xa, 0.95)}.get(statistic)
    if base == 0 or (statistic == "cost_per_success" and math.fsum(xa) == 0):
        return Delta(metric, "ratio", None, note="the baseline's value is 0")
    try:
        est, low, high = bootstrap_ratio(
            xa, xb, statistic, paired=paired, n_resamples=n_resamples, seed=seed, confidence=confidence, **kwargs
        )
    except (ValueError, ZeroDivisionError) as e:
        return Delta(metric, "ratio", None, note=str(e))
    return Delta(metric, "ratio", _finite(est), _finite(low), _finite(high))


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _paired_items(a: Side, b: Side) -> tuple[list[Item], list[Item], int, int]:
    ka = {i.key: i for i in a.items if i.key is not None}
    kb = {i.key: i for i in b.items if i.key is not None}
    common = [k for k in ka if k in kb]
    return [ka[k] for k in common], [kb[k] for k in common], len(ka) - len(common), len(kb) - len(common)


def compare_sides(
    a: Side,
    b: Side,
    *,
    paired: bool,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Figures of both sides, their deltas, and (paired) the items that changed."""
    only_a = only_b = 0
    if paired:
        ia, ib, only_a, only_b = _paired_items(a, b)
        a, b = Side(a.name, ia), Side(b.name, ib)
    fa, fb = side_figures(a, confidence), side_figures(b, confidence)
    deltas: dict[str, Delta] = {}
    if fa.items and fb.items:
        diff, low, high = rate_difference(fa.successes, fa.items, fb.successes, fb.items, confidence)
        deltas["success_rate"] = Delta("success_rate", "difference", diff, low, high)
    else:
        deltas["success_rate"] = Delta("success_rate", "difference", None, note="a side has no items")
    for metric, stat in (
        ("cost_per_task", "mean"),
        ("cost_per_successful_task", "cost_per_success"),
        ("p50_latency", "p50"),
        ("p95_latency", "p95"),
    ):
        deltas[metric] = _ratio(metric, a.items, b.items, stat, paired, confidence, n_resamples, seed)  # type: ignore[arg-type]
    out = Comparison(fa, fb, paired, confidence, deltas, only_a, only_b, sides=(a, b))
    if paired:
        by_a = {i.key: i for i in a.items}
        by_b = {i.key: i for i in b.items}
        decided_a = {k: i.success for k, i in by_a.items() if i.success is not None and k is not None}
        decided_b = {k: i.success for k, i in by_b.items() if i.success is not None and k is not None}
        regressed, improved = paired_flips(decided_a, decided_b)  # type: ignore[arg-type]
        out.regressed = [ItemDiff(k, by_a[k], by_b[k]) for k in regressed]
        out.improved = [ItemDiff(k, by_a[k], by_b[k]) for k in improved]
        flipped = set(regressed) | set(improved)
        out.changed = [
            ItemDiff(k, i, by_b[k])
            for k, i in by_a.items()
            if k is not None and k not in flipped and i.success == by_b[k].success and i.output != by_b[k].output
        ]
    return out


def comparison_dict(c: Comparison, link: Callable[[str, Item], str | None] | None = None) -> dict[str, Any]:
    """The comparison as JSON-safe values (`link(side_name, item)` gives a trace link)."""

    def item(side: str, i: Item) -> dict[str, Any]:
        row = {
            "success": i.success,
            "failure_mode": i.failure_mode,
            "output": i.output,
            "error": i.error,
            "cost_usd": i.cost_usd,
            "duration_ms": i.duration_ms,
            "trace_id": i.trace_id,
        }
        if link is not None:
            row["trace_url"] = link(side, i)
        return row

    def diffs(rows: list[ItemDiff]) -> list[dict[str, Any]]:
        return [{"item_id": d.key, "a": item(c.a.name, d.a), "b": item(c.b.name, d.b)} for d in rows]

    return {
        "a": c.a.__dict__,
        "b": c.b.__dict__,
        "paired": c.paired,
        "confidence": c.confidence,
        "deltas": {k: d.__dict__ for k, d in c.deltas.items()},
        "only_in_a": c.only_in_a,
        "only_in_b": c.only_in_b,
        "regressed": diffs(c.regressed),
        "improved": diffs(c.improved),
        "changed_output": diffs(c.changed),
    }
