"""Ingest end to end with and without 100 budgets evaluated by the running server.

Runs bench/ingest_throughput.py's measurement in pairs on the same requests: a collector
without budgets, then one whose data directory declares `--budgets` budgets over the project
being ingested (bench/budgets_eval.py's mix of metrics, scopes and windows), evaluated every
`--interval` seconds (the default in production is 60; a shorter interval makes evaluation
cycles fall inside the run: the lake's newest hour changes between cycles, so each cycle
rebuilds its minute rows, the live cost). The figure is the ratio of visible spans/s, with
budgets over without, per pair and as the mean of the pairs; the budget evaluation's CPU
(in the collector's query worker) is in the collector's children's CPU.

    python bench/ingest_with_budgets.py --spans 600000 --pairs 3 --budgets 100 --interval 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tomlkit
from budgets_eval import budgets
from ingest_throughput import Ingest, paired_ratios, request_bodies


def declare(n: int) -> Callable[[Path], None]:
    def write(data_dir: Path) -> None:
        doc = tomlkit.document()
        doc["budget"] = [b.to_dict() for b in budgets(n)]
        (data_dir / "budgets.toml").write_text(tomlkit.dumps(doc))

    return write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=600_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--budgets", type=int, default=100)
    ap.add_argument("--interval", type=float, default=10.0, help="SPANLAKE_BUDGET_INTERVAL of the run with budgets")
    args = ap.parse_args()
    bodies, per_body = request_bodies(args.spans)

    def cycles(run: Ingest) -> str:
        readings = run.data_dir / "alerts" / "readings.jsonl"
        n = readings.read_text().count("\n") // max(1, args.budgets) if readings.exists() else 0
        return f", {n} evaluation cycle(s) of {args.budgets} budgets"

    ratios = paired_ratios(bodies, per_body, args.clients, args.pairs, {"SPANLAKE_BUDGET_INTERVAL": "0"},
                           {"SPANLAKE_BUDGET_INTERVAL": str(args.interval)}, declare(args.budgets), cycles)  # fmt: skip
    print(f"ratio with/without    {statistics.mean(ratios):.3f} (pairs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"machine               {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")
    print(f"reproduce             python bench/ingest_with_budgets.py --spans {args.spans} --pairs {args.pairs} "
          f"--budgets {args.budgets} --interval {args.interval:g}")  # fmt: skip


if __name__ == "__main__":
    main()
