"""What the online-evaluation tests share: an evaluators file, traces sent with the OTel SDK
exporter, and the lake's judge labels."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import Logger, LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from spanlake.evaluators.online import sampled
from spanlake.evaluators.rule_actions import queue_dataset
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


@contextlib.contextmanager
def otel_app(http: str, scope: str = "app.evals") -> Iterator[tuple[Tracer, Logger]]:
    """A tracer and a logger exporting through the real OTLP/HTTP exporters to `http` (project
    PROJECT); leaving the block flushes both (every span and record acknowledged)."""
    resource = Resource.create({"service.name": "svc", "spanlake.project": PROJECT})
    spans = TracerProvider(resource=resource)
    spans.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{http}/v1/traces")))
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{http}/v1/logs")))
    try:
        yield spans.get_tracer(scope, "1.0"), logs.get_logger(scope, "1.0")
    finally:
        spans.shutdown()
        logs.shutdown()


def evaluation(name: str | None, **fields: Any) -> dict[str, Any]:
    """The attributes of a `gen_ai.evaluation.result` event: `score` → score.value, `label` →
    score.label, `explanation`, `error` → error.type (None: left out)."""
    keys = {"score": "gen_ai.evaluation.score.value", "label": "gen_ai.evaluation.score.label",
            "explanation": "gen_ai.evaluation.explanation", "error": "error.type"}  # fmt: skip
    attrs = {keys[k]: v for k, v in fields.items()}
    return attrs if name is None else {"gen_ai.evaluation.name": name, **attrs}


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
