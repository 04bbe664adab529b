"""The experiment machinery's cost per item, the app excluded: tracing, scoring, result writing.

Starts `spanlake up` (no dashboard, no demo) on free loopback ports with a fresh data directory,
freezes a dataset of `--items` items there, and runs a no-op app (it returns the expected
output at once) over it with experiments/run.py as `spanlake experiment run` does: one SDK task
span per item exported over OTLP/HTTP to that spanlake, the `exact` check, the result lines
committed (spans flushed, lines appended and fsynced) every 0.2 s. The same loop calling the
app directly is subtracted. Both app kinds are measured: a sync function (run on a thread of
its own, as the runner runs every sync app) and an async one (on the runner's event loop).

The figure is the items phase (from the first item to the last committed line) per item,
minus the direct loop, median of `--rounds` runs; the bench process's CPU time per item is
shown too (the collector's is not counted). Then the run waits until the lake has every item's
trace and reads their cost and latency (every item must be there: no span was dropped); that
time, mostly the collector's flush cadence, is shown apart. Target: under 5 ms per item.

    python bench/experiment_overhead.py [--items 2000] [--rounds 3] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_throughput import cpu_model, start_collector

from spanlake.experiments.apps import FunctionApp
from spanlake.experiments.items import DatasetRef, load_items, resolve
from spanlake.experiments.run import Settings, run, start
from spanlake.experiments.scoring import make_scorers
from spanlake.experiments.store import Store
from spanlake.storage.datasets import EXAMPLE_SCHEMA, freeze
from spanlake.storage.layout import DataDir

PROJECT, DATASET = "bench", "noop"


def noop(input: str) -> str:
    return "answer " + input.rsplit(" ", 1)[-1]


async def anoop(input: str) -> str:
    return "answer " + input.rsplit(" ", 1)[-1]


def freeze_items(dd: DataDir, n: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "example_id": f"item-{i}",
            "project": PROJECT,
            "dataset": DATASET,
            "trace_id": f"{i:032x}",
            "input": f"question {i}",
            "input_messages": json.dumps([{"role": "user", "content": f"question {i}"}]),
            "expected_output": f"answer {i}",
            "added_at": now,
            "metadata": "{}",
        }
        for i in range(n)
    ]
    table = pa.Table.from_pylist([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows], schema=EXAMPLE_SCHEMA)
    freeze(dd, PROJECT, DATASET, table, author="bench")


def direct_ms(dd: DataDir, is_async: bool) -> float:
    """The same items through the app called directly, ms per item."""
    inputs = [i.input or "" for i in load_items(dd, resolve(dd, PROJECT, DatasetRef(DATASET, 1)))]
    t0 = time.perf_counter()
    if is_async:

        async def loop() -> None:
            for text in inputs:
                await anoop(text)

        asyncio.run(loop())
    else:
        for text in inputs:
            noop(text)
    return (time.perf_counter() - t0) * 1000 / len(inputs)


def one_run(dd: DataDir, endpoint: str, is_async: bool, concurrency: int) -> dict[str, float]:
    """One experiment over every item: items-phase wall and CPU ms per item, and the lake read."""
    store = Store(dd.root)
    settings = Settings(app="bench", checks=("exact",), endpoint=endpoint, concurrency=concurrency, wait_s=120)
    exp = start(store, dd, PROJECT, DatasetRef(DATASET, 1), settings)
    app = FunctionApp("anoop" if is_async else "noop", anoop if is_async else noop)
    marks: dict[str, float] = {}

    def on_start(total: int, done: int) -> None:
        marks["t0"], marks["cpu0"] = time.perf_counter(), time.process_time()

    def on_result(row: dict[str, object]) -> None:
        marks["t1"], marks["cpu1"] = time.perf_counter(), time.process_time()

    report = run(store, dd, exp, app, make_scorers(settings.checks), settings, on_start=on_start, on_result=on_result)
    n = report.ran
    assert n == report.total and report.errors == 0, report
    lines = exp.results_path.read_bytes().count(b"\n")
    assert lines == n, (lines, n)
    assert report.flushed and report.figures == n, report  # every item's trace reached the lake
    return {
        "wall_ms": (marks["t1"] - marks["t0"]) * 1000 / n,
        "cpu_ms": (marks["cpu1"] - marks["cpu0"]) * 1000 / n,
        "lake_s": report.seconds - (marks["t1"] - marks["t0"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, load {load}; {args.items:,} items, concurrency {args.concurrency}")
    with tempfile.TemporaryDirectory(prefix="spanlake-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, endpoint = start_collector(data_dir)
        try:
            dd = DataDir(data_dir)
            freeze_items(dd, args.items)
            for is_async in (False, True):
                kind = "async app" if is_async else "sync app (a thread per item)"
                runs = [one_run(dd, endpoint, is_async, args.concurrency) for _ in range(args.rounds)]
                direct = statistics.median(direct_ms(dd, is_async) for _ in range(args.rounds))
                wall = statistics.median(r["wall_ms"] for r in runs)
                cpu = statistics.median(r["cpu_ms"] for r in runs)
                lake = statistics.median(r["lake_s"] for r in runs)
                print(
                    f"{kind:>29}: {wall - direct:.3f} ms per item overhead (runner {wall:.3f} - direct {direct:.4f}); "
                    f"bench CPU {cpu:.3f} ms per item; then every trace in the lake and read within {lake:.1f} s"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(
        f"reproduce: {sys.executable} bench/experiment_overhead.py --items {args.items} "
        f"--rounds {args.rounds} --concurrency {args.concurrency}"
    )


if __name__ == "__main__":
    main()
