"""LLM judge throughput: bounded by the endpoint's latency and the evaluator's concurrency cap.

Runs `--items` judgments through one JudgeClient against the demo's fake OpenAI-compatible
server (model judge-pass) that answers every request after `--latency` seconds, with 64 caller
threads, for each concurrency cap. With a cap of c and a latency of L, the bound is c / L
judgments per second; the figure is the measured rate as a share of that bound (1.0: only the
endpoint and the cap limit it). A last line runs without added latency and a cap of 32: the
rate is then the fake endpoint's own capacity plus the client's cost.

    python bench/judge_throughput.py --items 400 --latency 0.1 --caps 1,4,16
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import TemporaryDirectory

from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.judge import JudgeClient
from spanlake.evaluators.target import Target


def judge(base_url: str, cap: int) -> Evaluator:
    params = {
        "base_url": base_url,
        "model": "judge-pass",
        "template": "Question: {input}\nAnswer: {output}",
        "concurrency": cap,
        "timeout_s": 30,
        "input_usd_per_mtok": 0.15,
        "output_usd_per_mtok": 0.6,
    }
    return Evaluator(name="bench_judge", kind="llm_judge", project="bench", params=params, version=1)


def rate(base_url: str, data_dir: Path, cap: int, items: int) -> float:
    targets = [Target("bench", f"{i:032x}", input=f"question {i}", output=f"answer {i}") for i in range(items)]
    with JudgeClient(judge(base_url, cap), data_dir=data_dir) as client, ThreadPoolExecutor(64) as pool:
        start = time.perf_counter()
        results = list(pool.map(client.evaluate, targets))
        elapsed = time.perf_counter() - start
    assert all(r.verdict == "pass" for r in results)
    return items / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--latency", type=float, default=0.1, help="the endpoint's answer time, seconds")
    ap.add_argument("--caps", default="1,4,16", help="concurrency caps to run")
    args = ap.parse_args()
    with FakeOpenAI() as server, TemporaryDirectory() as tmp:
        for cap in (int(c) for c in args.caps.split(",")):
            server.delay_s = args.latency
            items = min(args.items, max(20, int(cap / args.latency * 5)))  # about 5 s per cap
            measured = rate(server.base_url, Path(tmp), cap, items)
            bound = cap / args.latency
            share = measured / bound
            print(f"cap {cap:3}  {measured:8.1f} judgments/s  bound {bound:7.1f}  share of bound {share:.2f}")
        server.delay_s = 0.0
        print(f"cap  32  {rate(server.base_url, Path(tmp), 32, args.items):8.1f} judgments/s  (no added latency: "
              "the fake endpoint's own capacity)")  # fmt: skip
    print(f"machine  {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"reproduce  python bench/judge_throughput.py --items {args.items} --latency {args.latency:g} "
          f"--caps {args.caps}")  # fmt: skip


if __name__ == "__main__":
    main()
