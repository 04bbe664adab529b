"""A designed frozen dataset, designed traces and evaluators for the offline-run tests
(tests/evaluators/test_offline.py, tests/cli/test_evaluators.py), against a real server."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from spanlake.storage.datasets import EXAMPLE_SCHEMA, Version, freeze
from spanlake.storage.layout import DataDir
from tests.conftest import RunningCollector
from tests.factories import make_request, make_span

PROJECT = "shop"
DATASET = "answers"
SPAN5 = "00f067aa0ba902b7"

# (example id, actual output, expected output, the `contains` verdict worked by hand: does the
# actual output contain the expected one, case-sensitive; None: no expected output → n/a).
ITEMS: list[tuple[str, str, str | None, str | None]] = [
    (f"{1:032x}", "The order id is ORD-42.", "ORD-42", "pass"),
    (f"{2:032x}", "I could not find your order.", "ORD-77", "fail"),
    (f"{3:032x}", "your order is ord-9", "ORD-9", "fail"),  # case matters
    (f"{4:032x}", "Anything at all", None, None),  # no expected output: not applicable
    (f"{5:032x}:{SPAN5}", "Refund sent: 12.50 EUR", "12.50 EUR", "pass"),  # a span item labels the span
    (f"{6:032x}", "", "ORD-1", "fail"),  # empty output
    (f"{7:032x}", "ORD-3 and ORD-4", "ORD-4", "pass"),
]
APPLICABLE = [i for i in ITEMS if i[3] is not None]  # 6 items get a label

CONTAINS = f"""# the offline tests' evaluators
[[evaluator]]
name = "mentions_expected"
project = "{PROJECT}"
kind = "contains"
failure_mode = "format_error"

[[evaluator]]
name = "fast_enough"
project = "{PROJECT}"
kind = "threshold"
metric = "latency_ms"
max = 1000.0

[[evaluator]]
name = "picky"
project = "{PROJECT}"
kind = "python"
callable = "tests.evaluators.offline_helpers:picky"
"""


def picky(target: Any) -> bool:
    """A python evaluator that raises on outputs mentioning ORD-77 (an evaluator's own bug)."""
    if "ORD-77" in (target.expected_output or ""):
        raise RuntimeError("cannot judge ORD-77")
    return bool(target.output)


def key(example_id: str) -> tuple[str, str | None]:
    trace, _, span = example_id.partition(":")
    return trace, span or None


def freeze_dataset(data_dir: Path) -> Version:
    """Freeze ITEMS as answers@1 of project shop."""
    now = datetime.now(UTC)
    rows = []
    for example_id, actual, expected, _ in ITEMS:
        trace, span = key(example_id)
        rows.append({"example_id": example_id, "project": PROJECT, "dataset": DATASET, "trace_id": trace,
                     "span_id": span, "input": "where is my order?", "actual_output": actual,
                     "expected_output": expected, "added_at": now, "metadata": "{}",
                     "input_messages": json.dumps([{"role": "user", "content": "where is my order?"}])})  # fmt: skip
    table = pa.Table.from_pylist([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows], schema=EXAMPLE_SCHEMA)
    version, _ = freeze(DataDir(data_dir), PROJECT, DATASET, table, author="test")
    return version


def write_evaluators(data_dir: Path, text: str = CONTAINS) -> None:
    (data_dir / "evaluators.toml").write_text(text)


# Traces for the backfill: (service, duration ms). fast_enough (max 1000 ms) worked by hand:
# svc-a's 200 and 800 ms pass, 1500 and 3000 ms fail (too_slow); svc-b's are filtered out.
TRACES = [("svc-a", 200), ("svc-a", 1500), ("svc-a", 800), ("svc-a", 3000), ("svc-b", 100), ("svc-b", 5000)]


def send_traces(c: RunningCollector) -> dict[str, tuple[str, int]]:
    """One root span per trace (minutes ago), sent over OTLP/HTTP; {trace_id: (service, ms)}."""
    sent = {}
    start = time.time_ns() - 10 * 60 * 10**9
    for i, (service, ms) in enumerate(TRACES):
        trace = bytes.fromhex(f"{0xA0 + i:032x}")
        span = make_span("answer", trace_id=trace, start_ns=start + i * 10**9, duration_ns=ms * 10**6)
        req = make_request([span], {"service.name": service, "spanlake.project": PROJECT})
        r = httpx.post(f"{c.http}/v1/traces", content=req.SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        sent[trace.hex()] = (service, ms)
    c.flush()
    return sent


def judge_labels(c: RunningCollector, evaluator: str) -> list[dict[str, Any]]:
    """The lake's labels of `evaluator` (any version), one row per label event kept."""
    c.flush()
    return c.query(
        """SELECT trace_id, span_id, author, source, verdict, score, failure_mode, metadata FROM labels
           WHERE project = $p AND author LIKE $a ORDER BY trace_id, span_id""",
        {"p": PROJECT, "a": f"{evaluator}@v%"},
    )
