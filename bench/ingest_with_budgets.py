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
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tomlkit
from budgets_eval import budgets
from ingest_throughput import Ingest, ingest_once
from loadgen import SPANS_PER_TRACE, build_request


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
    traces_per_req = max(1, 500 // SPANS_PER_TRACE)
    n_req = max(1, args.spans // (traces_per_req * SPANS_PER_TRACE))
    bodies = [build_request(i * traces_per_req, traces_per_req, seed=i).SerializeToString() for i in range(n_req)]
    per_body = traces_per_req * SPANS_PER_TRACE
    ratios = []
    for i in range(args.pairs):
        runs: dict[str, Ingest] = {}
        for name in ("without", "with"):
            if name == "with":
                run = ingest_once(bodies, per_body, args.clients, env={"SPANLAKE_BUDGET_INTERVAL": str(args.interval)},
                                  prepare=declare(args.budgets))  # fmt: skip
                cycles = run.data_dir / "alerts" / "readings.jsonl"
                evaluated = cycles.read_text().count("\n") // max(1, args.budgets) if cycles.exists() else 0
            else:
                run = ingest_once(bodies, per_body, args.clients, env={"SPANLAKE_BUDGET_INTERVAL": "0"})
            runs[name] = run
            rate = run.total / run.visible_at
            cpu = (run.main_cpu + run.kids_cpu) * 1e6 / run.total
            extra = f", {evaluated} evaluation cycle(s) of {args.budgets} budgets" if name == "with" else ""
            print(f"pair {i + 1} {name:8} {rate:9,.0f} spans/s visible ({run.visible_at:.1f} s), "
                  f"collector CPU {cpu:.1f} µs/span{extra}", flush=True)  # fmt: skip
            shutil.rmtree(run.data_dir, ignore_errors=True)
            time.sleep(2)
        ratios.append(
            (runs["with"].total / runs["with"].visible_at) / (runs["without"].total / runs["without"].visible_at)
        )
    print(f"ratio with/without    {statistics.mean(ratios):.3f} (pairs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"machine               {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")
    print(f"reproduce             python bench/ingest_with_budgets.py --spans {args.spans} --pairs {args.pairs} "
          f"--budgets {args.budgets} --interval {args.interval:g}")  # fmt: skip


if __name__ == "__main__":
    main()
