"""What the online-evaluation tests share: an evaluators file, traces sent with the OTel SDK
exporter, and the lake's judge labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanlake.evaluators.online import queue_dataset, sampled
from spanlake.storage.reader import Lake

PROJECT = "shop"
# Two code evaluators that always answer: `fast` passes every trace, `slow` fails every one,
# so each sampled trace gets one label of each and the two disagree (→ the rule's queue).
TWO_CHECKS = f"""
[settings]
quiet_period = "1s"

[[evaluator]]
name = "fast"
kind = "threshold"
project = "{PROJECT}"
metric = "latency_ms"
max = 1000000000.0

[[evaluator]]
name = "slow"
kind = "threshold"
project = "{PROJECT}"
metric = "latency_ms"
min = 1000000000.0

[[rule]]
name = "tenth"
project = "{PROJECT}"
evaluators = ["fast", "slow"]
sample = 0.1
task = "answer"
queue_when = "disagree"
"""


def write_evaluators(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "evaluators.toml").write_text(text)


def send_traces(http: str, n: int, task: str = "answer") -> list[str]:
    """`n` one-span traces of task `task` through the real OTLP/HTTP exporter; their ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "spanlake.project": PROJECT}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{http}/v1/traces")))
    tracer = provider.get_tracer("test")
    ids = []
    for _ in range(n):
        with tracer.start_as_current_span(task, attributes={"spanlake.task.name": task}) as span:
            ids.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()  # flushes: every span acknowledged
    return ids


def expected(rule: str, ids: list[str], rate: float) -> set[str]:
    """The traces a rule samples, computed as the plan says."""
    return {t for t in ids if sampled(rule, t, rate)}


def judge_labels(data_dir: Path, raw: bool = False) -> list[dict[str, Any]]:
    """(trace_id, author) of every judge label (`raw`: every event, duplicates too)."""
    view = "labels_raw" if raw else "labels"
    sql = f"SELECT trace_id, author, verdict, label_id FROM {view} WHERE source = 'judge' ORDER BY trace_id, author"
    return Lake(data_dir).query(sql).to_pylist()


def queued(data_dir: Path, rule: str) -> set[str]:
    sql = "SELECT DISTINCT trace_id FROM dataset_events WHERE dataset = $d AND op = 'add'"
    return {r["trace_id"] for r in Lake(data_dir).query(sql, {"d": queue_dataset(rule)}).to_pylist()}


def status(data_dir: Path) -> dict[str, Any]:
    try:
        return orjson.loads((data_dir / "evaluators" / "status.json").read_bytes())  # type: ignore[no-any-return]
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
