"""CPU cost of redaction on the collector's ingest path, per span, with and without rules.

Times what `Ingestor.export` does before the write-ahead log append, on the same OTLP
request bodies (bench/loadgen.py: realistic GenAI traces, 498 spans per request):

- `no redactor`: the path as it was before redaction existed (parse, validate; the bytes
  received are stored as they are);
- `no rules`: a Redactor whose file does not exist (what every collector without a
  redaction.toml runs);
- `builtins`: email, api_key and card_number (parse, redact, validate, serialize again);
- `builtins + 2 patterns`: the same plus two custom regexes.

Two payloads: loadgen's spans as they are (small message content), and the same spans with
about `--content-bytes` of prompt text per chat span, some of it containing an email address or
a card number. The flusher's decode of the same request (decode_spans, the work that turns
the request into lake columns) is timed too, to put the overhead in proportion.

CPU time of this thread (time.thread_time), median over rounds; the variants alternate
within each round, so the load from other processes on a shared machine does not count.

    python bench/redaction_overhead.py [--requests 20] [--rounds 7] [--content-bytes 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector.decode import decode_spans
from spanlake.collector.ingest import TRACES, parse_request
from spanlake.collector.redact import Redactor, redact_request
from spanlake.collector.redact_rules import RuleSet, parse_rules
from spanlake.collector.validate import validate_traces

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import SPANS_PER_TRACE, build_request

TRACES_PER_REQUEST = 83  # 498 spans, as in bench/ingest_throughput.py
BUILTINS = '[projects."*"]\nbuiltin = ["email", "api_key", "card_number"]\n'
PATTERNS = BUILTINS + (
    'patterns = [{ name = "order", regex = "ORD-[0-9]{6}" },\n'
    '            { name = "password", regex = "(?i)password=\\\\S+" }]\n'
)
WORDS = ("the", "order", "arrived", "late", "and", "customer", "asked", "for", "a", "refund", "of", "shipping")


def with_content(req: ExportTraceServiceRequest, size: int, rng: random.Random) -> ExportTraceServiceRequest:
    """Give every chat span a prompt of about `size` bytes; 1 in 5 mentions an email, 1 in 10 a card."""
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    if kv.key != "gen_ai.input.messages":
                        continue
                    text = " ".join(rng.choice(WORDS) for _ in range(size // 5))
                    if rng.random() < 0.2:
                        text += " reach me at jane.doe@example.com"
                    if rng.random() < 0.1:
                        text += " my card is 4111 1111 1111 1111"
                    kv.value.string_value = f'[{{"role":"user","parts":[{{"type":"text","content":"{text}"}}]}}]'
    return req


def ingest_path(rules: Callable[[], RuleSet | None]) -> Callable[[bytes], None]:
    """The CPU work of Ingestor.export before the WAL append, for one protobuf body."""

    def run(body: bytes) -> None:
        found = rules()
        request = parse_request(body, "protobuf", TRACES)
        if found is not None:
            redact_request(request, "traces", found, None, "default")
        verdict = validate_traces(request, None)
        if verdict.rejected or found is not None:  # with rules the rewritten request is always stored
            request.SerializeToString()

    return run


def time_variants(variants: dict[str, Callable[[bytes], None]], bodies: list[bytes], rounds: int) -> dict[str, float]:
    """Median CPU seconds per pass over all bodies, for each variant."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.thread_time()
            for body in bodies:
                variants[name](body)
            times[name].append(time.thread_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20, help="request bodies per pass (498 spans each)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--content-bytes", type=int, default=2000, help="prompt size per chat span in the second payload")
    args = ap.parse_args()

    missing = Redactor(Path(tempfile.mkdtemp(prefix="spanlake-bench-")) / "redaction.toml")
    builtins, patterns = parse_rules(BUILTINS), parse_rules(PATTERNS)
    variants = {
        "no redactor": ingest_path(lambda: None),
        "no rules": ingest_path(missing.current),
        "builtins": ingest_path(lambda: builtins),
        "builtins + 2 patterns": ingest_path(lambda: patterns),
    }
    rng = random.Random(7)
    spans = args.requests * TRACES_PER_REQUEST * SPANS_PER_TRACE
    payloads = {
        "loadgen spans": [
            build_request(i * TRACES_PER_REQUEST, TRACES_PER_REQUEST).SerializeToString() for i in range(args.requests)
        ],
        f"+{args.content_bytes} B prompts": [
            with_content(
                build_request(i * TRACES_PER_REQUEST, TRACES_PER_REQUEST), args.content_bytes, rng
            ).SerializeToString()
            for i in range(args.requests)
        ],
    }
    load = os.getloadavg()
    print(f"machine   {os.cpu_count()} cores, {cpu_model()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"python    {platform.python_version()}; {args.requests} requests x 498 spans; median of {args.rounds}")
    for label, bodies in payloads.items():
        per_span = sum(map(len, bodies)) / spans
        medians = time_variants(variants, bodies, args.rounds)
        decode = time_variants({"decode": lambda b: decode_spans(b, time.time_ns())}, bodies, args.rounds)["decode"]
        base = medians["no redactor"]
        print(f"\n{label} ({per_span:,.0f} B per span)")
        print(f"  {'path':<24}{'µs/span':>9}{'vs no redactor':>16}{'vs ingest + decode':>20}")
        for name, t in medians.items():
            extra = t - base
            print(
                f"  {name:<24}{t / spans * 1e6:>9.2f}{f'{extra / base:+.1%}':>16}"
                f"{f'{extra / (base + decode):+.1%}':>20}"
            )
        print(f"  {'(decode_spans, flusher)':<24}{decode / spans * 1e6:>9.2f}")
    print(f"\nreproduce: python bench/redaction_overhead.py --requests {args.requests} --rounds {args.rounds} "
          f"--content-bytes {args.content_bytes}")  # fmt: skip


if __name__ == "__main__":
    main()
