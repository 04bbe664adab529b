"""Ingest end to end with and without an online evaluation rule run by the server.

Pairs of runs on the same requests (bench/ingest_throughput.py's measurement): a collector
without evaluators, then one whose data directory declares two code evaluators (a regex on the
answer, a latency threshold) and a rule sampling `--sample` of the traces, evaluated every
`--interval` seconds once a trace has been quiet for `--quiet`. The figure is the ratio of
visible spans/s, with the rule over without (issue 16: within 5 %). The evaluation runs in the
server's evaluation child process; its CPU is in the collector's children's CPU. The results
written by the end of a run (judge labels in the lake) are printed beside it.

    python bench/ingest_with_evaluators.py --spans 600000 --pairs 3 --sample 0.1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import Ingest, paired_ratios, request_bodies

from spanlake.storage.reader import Lake


def declare(sample: float, quiet: str) -> Callable[[Path], None]:
    def write(data_dir: Path) -> None:
        (data_dir / "evaluators.toml").write_text(f"""
[settings]
quiet_period = "{quiet}"

[[evaluator]]
name = "ships"
project = "bench"
kind = "regex"
pattern = "ships"

[[evaluator]]
name = "fast_enough"
project = "bench"
kind = "threshold"
metric = "latency_ms"
max = 800

[[rule]]
name = "sample"
project = "bench"
evaluators = ["ships", "fast_enough"]
sample = {sample}
""")

    return write


def results(run: Ingest) -> str:
    try:
        n = Lake(run.data_dir).query("SELECT count(*) AS n FROM labels WHERE source = 'judge'").column("n")[0].as_py()
    except Exception as e:  # no labels table yet: nothing was evaluated
        return f", no results yet ({type(e).__name__})"
    return f", {n} evaluator results in the lake"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=600_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--sample", type=float, default=0.1, help="the rule's sampling rate")
    ap.add_argument("--interval", type=float, default=5.0, help="SPANLAKE_EVAL_INTERVAL of the run with the rule")
    ap.add_argument("--quiet", default="2s", help="the quiet period after which a trace is complete")
    args = ap.parse_args()
    bodies, per_body = request_bodies(args.spans)
    ratios = paired_ratios(bodies, per_body, args.clients, args.pairs, {"SPANLAKE_EVAL_INTERVAL": "0"},
                           {"SPANLAKE_EVAL_INTERVAL": str(args.interval)}, declare(args.sample, args.quiet),
                           results)  # fmt: skip
    print(f"ratio with/without    {statistics.mean(ratios):.3f} (pairs: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"machine               {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end")
    print(f"reproduce             python bench/ingest_with_evaluators.py --spans {args.spans} --pairs {args.pairs} "
          f"--sample {args.sample:g} --interval {args.interval:g} --quiet {args.quiet}")  # fmt: skip


if __name__ == "__main__":
    main()
