"""Comparing two 10,000-item experiments: every statistic a comparison and a gate read.

Two sides of `--items` items (seeded): a baseline, and a candidate that saw the same items
(paired by key) with other outcomes, costs and durations. One comparison, from the two Sides
to the figures: the success rate difference (Newcombe), the flipped items, and bootstrap
ratio intervals for cost per task, cost per successful task, mean, p50 and p95 latency,
paired (the experiments' case) and unpaired (production's). The figure is the median wall
time of `--rounds` comparisons (target: well under 2 s for 10,000 items paired).

    python bench/experiment_compare.py [--items 10000] [--resamples 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from spanlake.experiments.sides import Item, Side
from spanlake.experiments.stats import STATISTICS, bootstrap_ratio, paired_flips, rate_difference


def sides(n: int, seed: int = 0) -> tuple[Side, Side]:
    """A baseline and a candidate over the same n items: the candidate is ~10 % cheaper, a
    little slower, and flips a few items each way; 2 % of costs are unknown (unpriced)."""
    rng = np.random.default_rng(seed)
    cost_a = rng.lognormal(-6, 1, n)
    cost_b = cost_a * 0.9 * rng.lognormal(0, 0.2, n)
    cost_a[rng.random(n) < 0.02] = math.nan
    dur_a = rng.lognormal(7, 0.6, n)
    dur_b = dur_a * rng.lognormal(0.02, 0.1, n)
    win_a = rng.random(n) < 0.8
    win_b = np.where(rng.random(n) < 0.05, ~win_a, win_a)

    def side(name: str, cost: np.ndarray, dur: np.ndarray, win: np.ndarray) -> Side:
        items = [
            Item(f"item-{i:06d}", bool(w), None if math.isnan(c) else float(c), float(d))
            for i, (c, d, w) in enumerate(zip(cost, dur, win, strict=True))
        ]
        return Side(name, items)

    return side("baseline", cost_a, dur_a, win_a), side("candidate", cost_b, dur_b, win_b)


def compare(a: Side, b: Side, paired: bool, resamples: int) -> dict[str, tuple[float, ...]]:
    """Every figure of a comparison, from the two sides (item alignment included)."""
    if paired:
        by_key = {i.key: i for i in b.items}
        pairs = [(i, by_key[i.key]) for i in a.items if i.key in by_key]
        items_a, items_b = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        items_a, items_b = list(a.items), list(b.items)

    def column(items: list[Item], field: str) -> list[float]:
        return [math.nan if getattr(i, field) is None else getattr(i, field) for i in items]

    wins_a, wins_b = [i.success is True for i in items_a], [i.success is True for i in items_b]
    out: dict[str, tuple[float, ...]] = {
        "success_rate": rate_difference(sum(wins_a), len(wins_a), sum(wins_b), len(wins_b))
    }
    cost_a, cost_b = column(items_a, "cost_usd"), column(items_b, "cost_usd")
    dur_a, dur_b = column(items_a, "duration_ms"), column(items_b, "duration_ms")
    out["cost_per_task"] = bootstrap_ratio(cost_a, cost_b, "mean", paired=paired, n_resamples=resamples)
    for stat in STATISTICS:
        if stat == "cost_per_success":
            out[stat] = bootstrap_ratio(cost_a, cost_b, stat, paired=paired, successes_a=wins_a,
                                        successes_b=wins_b, n_resamples=resamples)  # fmt: skip
        else:
            out[f"latency_{stat}"] = bootstrap_ratio(dur_a, dur_b, stat, paired=paired, n_resamples=resamples)
    if paired:
        regressed, improved = paired_flips(
            {i.key: bool(i.success) for i in items_a if i.key is not None},
            {i.key: bool(i.success) for i in items_b if i.key is not None},
        )
        out["flips"] = (len(regressed), len(improved))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    a, b = sides(args.items)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    print(f"# {args.items:,} items per side, {args.resamples} resamples, median of {args.rounds} rounds")
    for paired in (True, False):
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            figures = compare(a, b, paired, args.resamples)
            times.append(time.perf_counter() - t0)
        print(f"{'paired' if paired else 'unpaired':>9}: {statistics.median(times):.3f} s per comparison")
        for name, fig in figures.items():
            if name == "flips":
                print(f"           {'regressed, improved':<20} {fig[0]:,}, {fig[1]:,}")
            else:
                print(f"           {name:<20} {fig[0]:8.4f}  [{fig[1]:.4f}, {fig[2]:.4f}]")
    print(f"reproduce: {sys.executable} bench/experiment_compare.py --items {args.items} "
          f"--resamples {args.resamples} --rounds {args.rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
