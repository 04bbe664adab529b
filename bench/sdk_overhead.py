"""Per-span cost of spanlake-sdk markers vs the same spans written with bare OpenTelemetry.

Both sides use an identical export path: a TracerProvider with one BatchSpanProcessor
(same queue, batch and delay settings) feeding a no-op exporter, so the network is not
measured. The bare side sets the same attributes the marker sets.

The figure is the CPU time of the app's thread per span (time.thread_time: the export
thread does the same work on both sides, and other processes on a shared machine do not
count); wall time is shown too. Each round times both sides back to back (alternating
which goes first); the figure is the median of the per-round ratios.

    python bench/sdk_overhead.py [--spans 10000] [--rounds 21]

Target: markers cost < 10% more than bare OpenTelemetry.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

import spanlake.sdk as sl
from spanlake.sdk import attributes as A
from spanlake.sdk.provider import DEFAULT_MAX_BATCH, DEFAULT_SCHEDULE_DELAY_MS

# A queue big enough that neither side drops spans (dropping is cheaper than queueing and
# would skew the comparison); setup() reads it from the standard variable.
QUEUE_SIZE = 1_000_000
os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(QUEUE_SIZE)


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def bare_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            NoopExporter(),
            max_queue_size=QUEUE_SIZE,
            schedule_delay_millis=DEFAULT_SCHEDULE_DELAY_MS,
            max_export_batch_size=DEFAULT_MAX_BATCH,
        )
    )
    return provider


def workloads(tracer: Any) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    """name -> (bare OpenTelemetry, spanlake marker), each producing one equivalent span."""
    task_attrs = {A.TASK_NAME: "answer_ticket", A.SPAN_CATEGORY: "task"}
    llm_attrs = {
        A.GEN_AI_OPERATION_NAME: "chat",
        A.GEN_AI_PROVIDER_NAME: "openai",
        A.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        A.SPAN_CATEGORY: "llm",
    }
    usage = {A.GEN_AI_USAGE_INPUT_TOKENS: 120, A.GEN_AI_USAGE_OUTPUT_TOKENS: 30}

    def bare_task() -> None:
        with tracer.start_as_current_span("answer_ticket", attributes=task_attrs) as span:
            span.set_attribute(A.TASK_OUTCOME, "success")

    def sdk_task() -> None:
        with sl.task("answer_ticket") as t:
            t.succeed()

    def bare_llm() -> None:
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=llm_attrs) as span:
            span.set_attributes(usage)

    def sdk_llm() -> None:
        with sl.llm_call("gpt-4o-mini", "openai") as call:
            call.set_usage(input_tokens=120, output_tokens=30)

    prompt_attrs = {A.GEN_AI_PROMPT_NAME: "answer", A.GEN_AI_PROMPT_VERSION: "v3"}

    def bare_prompted() -> None:
        with tracer.start_as_current_span("answer_ticket", attributes={**task_attrs, **prompt_attrs}) as span:
            span.set_attribute(A.TASK_OUTCOME, "success")

    def sdk_prompted() -> None:  # the scope's attributes reach the span through on_start
        with sl.task("answer_ticket") as t:
            t.succeed()

    @tracer.start_as_current_span("answer_ticket", attributes=task_attrs)
    def bare_decorated() -> int:
        return 1

    @sl.task("answer_ticket")
    def sdk_decorated() -> int:
        return 1

    return {
        "task (with)": (bare_task, sdk_task),
        "llm_call (with)": (bare_llm, sdk_llm),
        "task (decorator)": (bare_decorated, sdk_decorated),  # type: ignore[dict-item]
        "task in prompt()": (bare_prompted, sdk_prompted),
    }


def per_span_us(fn: Callable[[], None], n: int) -> tuple[float, float]:
    """(wall, app-thread CPU) microseconds per call of fn."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - wall) / n * 1e6, (time.thread_time() - cpu) / n * 1e6


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10000, help="spans per round and side")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)

    bare = bare_provider()
    marked = TracerProvider()
    handle = sl.setup(tracer_provider=marked, exporter=NoopExporter())
    tracer = bare.get_tracer("bench")
    print(f"machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}")
    print(f"python {platform.python_version()}, {args.spans} spans x {args.rounds} rounds per side\n")
    print(f"{'workload':<18} {'bare OTel':>10} {'spanlake':>10} {'CPU ratio':>10} {'wall ratio':>11}")
    worst = 0.0
    scope = sl.prompt("answer", "v3")
    for name, (bare_fn, sdk_fn) in workloads(tracer).items():
        if name == "task in prompt()":  # from here on the processor copies scope attributes
            scope.__enter__()
        per_span_us(bare_fn, 2000)  # warm up
        per_span_us(sdk_fn, 2000)
        b_cpu, s_cpu, cpu_ratios, wall_ratios = [], [], [], []
        for r in range(args.rounds):  # paired rounds, alternating which side goes first
            if r % 2:
                s_wall, s_c = per_span_us(sdk_fn, args.spans)
                b_wall, b_c = per_span_us(bare_fn, args.spans)
            else:
                b_wall, b_c = per_span_us(bare_fn, args.spans)
                s_wall, s_c = per_span_us(sdk_fn, args.spans)
            b_cpu.append(b_c)
            s_cpu.append(s_c)
            cpu_ratios.append(s_c / b_c)
            wall_ratios.append(s_wall / b_wall)
        ratio = statistics.median(cpu_ratios)
        worst = max(worst, ratio)
        mb, ms, wall = statistics.median(b_cpu), statistics.median(s_cpu), statistics.median(wall_ratios)
        print(f"{name:<18} {mb:>8.2f}us {ms:>8.2f}us {ratio:>10.3f} {wall:>11.3f}")
    scope.__exit__(None, None, None)
    print(f"\nworst CPU ratio {worst:.3f} ({(worst - 1) * 100:+.1f}% vs bare OpenTelemetry; target < +10%)")
    handle.shutdown()
    bare.shutdown()
    marked.shutdown()
    return worst


if __name__ == "__main__":
    main()
