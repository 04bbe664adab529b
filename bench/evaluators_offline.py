"""Code evaluators offline: targets loaded from the lake and judged, in traces per second.

    python bench/evaluators_offline.py --traces 20000

Writes a lake of `--traces` loadgen traces (bench/loadgen.py: a task root, retrieval, two
chat calls with messages, a tool call and a validation, 6 spans each) through the
collector's decoder and the lake writer into `--data-dir` (a fresh temporary folder by
default), then times the offline path end to end: `load_targets` (the spans, log records
and prices of each batch of traces in three queries, then one Target per trace) and two
code evaluators on every target (`threshold` on latency, `pii` on the output with the
collector's detectors). Prints traces per second for the whole and for each part.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import SPANS_PER_TRACE, build_request

from spanlake.analytics.runner import Analytics
from spanlake.collector.decode import decode_spans
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.run import evaluate
from spanlake.evaluators.target import load_targets
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter

PER_REQUEST = 500  # traces per written batch
EVALUATORS = (
    Evaluator(name="fast", kind="threshold", project="bench", params={"metric": "latency_ms", "max": 800}),
    Evaluator(name="no_pii", kind="pii", project="bench", params={"field": "output"}),
)


def write_lake(data_dir: Path, traces: int) -> list[str]:
    """`traces` loadgen traces in the lake of `data_dir`; their ids."""
    writer = LakeWriter(DataDir(data_dir).create())
    ids: list[str] = []
    for first in range(0, traces, PER_REQUEST):
        req = build_request(first, min(PER_REQUEST, traces - first))
        batch = decode_spans(req, ingested_at_ns=time.time_ns())
        writer.write_batch(SPANS, batch, uuid.uuid4().hex)
        ids += dict.fromkeys(s.trace_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans)
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temporary folder")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-evaluators-") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        t0 = time.perf_counter()
        ids = write_lake(data_dir, args.traces)
        written = time.perf_counter() - t0
        an = Analytics(data_dir)
        now = datetime.now(UTC)
        window = (now - timedelta(minutes=10), now)  # loadgen traces start within the last second
        totals, loads, cpus, verdicts = [], [], [], Counter[str]()
        for _ in range(args.runs):
            c0 = time.process_time()
            t0 = time.perf_counter()
            targets = load_targets(an, "bench", ids, around=window)
            t1 = time.perf_counter()
            verdicts.clear()
            for target in targets:
                for ev in EVALUATORS:
                    r = evaluate(ev, target)
                    verdicts[f"{ev.name}:{r.verdict if r else 'n/a'}"] += 1
            totals.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            loads.append(t1 - t0)
        if len(targets) != len(ids):
            raise SystemExit(f"loaded {len(targets)} targets of {len(ids)} traces")
        total, load = statistics.median(totals), statistics.median(loads)
        n = len(ids)
        print(f"lake                  {n} traces, {n * SPANS_PER_TRACE} spans (written in {written:.1f} s)")
        print(f"end to end            {n / total:,.0f} traces/s (median of {args.runs}: {total:.2f} s)")
        cpu = statistics.median(cpus)  # this process's CPU time (DuckDB's threads included)
        print(f"  per CPU second      {n / cpu:,.0f} traces/s ({cpu:.2f} CPU s: the figure on a busy machine)")
        print(f"  load_targets        {n / load:,.0f} traces/s ({load:.2f} s)")
        print(f"  2 code evaluators   {n / (total - load):,.0f} traces/s ({total - load:.2f} s)")
        print(f"results               {', '.join(f'{k} {v}' for k, v in sorted(verdicts.items()))}")
        print(f"command               python bench/evaluators_offline.py --traces {args.traces} --runs {args.runs}")


if __name__ == "__main__":
    main()
