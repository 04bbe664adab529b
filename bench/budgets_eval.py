"""Time one evaluation cycle of 100 budgets over the 10M-span benchmark lake.

    python bench/analytics_lake.py --data-dir /tmp/bench-lake --spans 10000000 --days 7   # once
    python bench/budgets_eval.py --data-dir /tmp/bench-lake --budgets 100 --cycles 3

The budgets mix every metric over the lake's services, models and prompt versions, with
windows of 15 minutes to 24 hours ending at a ragged instant (minutes into an hour, so
every window has raw edges), a quarter of them relative to a baseline ("7d ago" is outside
the lake: no data; "previous 1h"). The cycle evaluates all of them as the server does
(`measure_all`: every distinct report run once) at the last day of the lake; rollups must
have been built (`analytics_lake.py` builds them). Prints the median cycle time.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spanlake.analytics.budgets.definition import budget_from_dict
from spanlake.analytics.budgets.evaluate import measure_all
from spanlake.analytics.budgets.metrics import METRICS
from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.runner import Analytics

START = datetime(2025, 6, 1, tzinfo=UTC)  # bench/analytics_lake.py's first trace


def budgets(n: int) -> list:
    """`n` budgets cycling through metrics, scopes and windows."""
    scopes = [{}, {"service": "api"}, {"service": "worker"}, {"model": "gpt-4o-2024-08-06"}, {"prompt_version": "v2"}]
    windows = ["15m", "1h", "6h", "24h"]
    out = []
    combos = itertools.cycle(itertools.product(METRICS, scopes, windows))
    for i in range(n):
        metric, scope, window = next(combos)
        spec = METRICS[metric]
        raw = {"name": f"b{i}", "project": "bench", "metric": metric, "window": window, **scope}
        if i % 4 == 3:
            raw["baseline"] = "previous 1h"
            raw["warning"] = 20
        elif spec.unit == "fraction":
            raw["warning"] = 0.1 if spec.worse == "higher" else 0.9
        else:
            raw["warning"] = 1000 if spec.worse == "higher" else 1
        if metric in ("ttft_p95", "retry_rate", "negative_feedback_share", "mean_feedback_score"):
            raw.pop("prompt_version", None)
        out.append(budget_from_dict(raw, "bench"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/bench-lake"))
    ap.add_argument("--budgets", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--days", type=int, default=7, help="the lake's length in days (analytics_lake.py --days)")
    args = ap.parse_args()
    an = Analytics(
        args.data_dir, prices=PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1, output_mtok=2)])
    )
    at = START + timedelta(days=args.days - 1, hours=14, minutes=37, seconds=13)
    found = budgets(args.budgets)
    times, levels = [], {}
    for _ in range(args.cycles):
        t0 = time.perf_counter()
        readings = measure_all(an, found, at).readings
        times.append(time.perf_counter() - t0)
        levels = {r.level: sum(1 for x in readings if x.level == r.level) for r in readings}
    print(f"budgets               {len(found)} ({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))})")
    print(f"cycle                 median {statistics.median(times):.3f} s over {args.cycles} (each: "
          f"{', '.join(f'{t:.3f}' for t in times)})")  # fmt: skip
    print(f"command               python bench/budgets_eval.py --data-dir {args.data_dir} --budgets {args.budgets}")


if __name__ == "__main__":
    main()
