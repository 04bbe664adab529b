"""What every instrumented process shares (tests/collector/instrumented_*.py, run by the
instrumentation tests through instrumented_runs.run_configurations): its command line, the OTel
SDK providers that export to the collector, the `scenario <name>` span around each scenario, and
its report on stdout: one JSON object with the library versions and each scenario's trace id.

The processes may run with the python of another virtualenv (.venv-llamaindex,
.venv-google-genai): this module imports nothing but the standard library at the top.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any


def runner_parser(
    config: str, choices: Iterable[str], url_help: str = "the fake server's base URL, ending in /v1", url: str = "--url"
) -> argparse.ArgumentParser:
    """The arguments every instrumented process takes: its configuration (`config`, one of
    `choices`), the fake server's URL, where to export (--otlp, --protocol) and the project."""
    parser = argparse.ArgumentParser()
    parser.add_argument(config, choices=sorted(choices))
    parser.add_argument(url, required=True, help=url_help)
    parser.add_argument("--otlp", required=True, help="collector endpoint: host:port (grpc) or http://host:port")
    parser.add_argument("--protocol", choices=("grpc", "http"), required=True)
    parser.add_argument("--project", required=True)
    return parser


def providers(endpoint: str, protocol: str, resource: dict[str, str]) -> tuple[Any, Any]:
    """(tracer provider, logger provider) exporting each span and log record at once over OTLP."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        spans, logs = (
            OTLPSpanExporter(endpoint=endpoint, insecure=True),
            OTLPLogExporter(endpoint=endpoint, insecure=True),
        )
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        spans, logs = (
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
            OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"),
        )
    res = Resource.create(resource)
    tracer_provider = TracerProvider(resource=res)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider(resource=res)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    return tracer_provider, logger_provider


def meter_provider(endpoint: str, protocol: str, resource: dict[str, str]) -> Any:
    """A meter provider exporting over OTLP on force_flush (and at shutdown)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        exporter = HttpExporter(endpoint=f"{endpoint}/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # exports on force_flush
    return MeterProvider(resource=Resource.create(resource), metric_readers=[reader])


@contextmanager
def scenario(tracer: Any, name: str) -> Iterator[str]:
    """The span `scenario <name>` around one scenario; gives its trace id (32 hex digits)."""
    with tracer.start_as_current_span(f"scenario {name}") as span:
        yield format(span.get_span_context().trace_id, "032x")


def report(packages: Iterable[str], traces: dict[str, str], *shutdown: Any, **more: Any) -> None:
    """Shut the providers in `shutdown` down in order (None: skipped), flushing what they hold;
    then print the process's result: the packages' versions, the scenarios' trace ids, `more`."""
    for provider in shutdown:
        if provider is not None:
            provider.shutdown()
    print(json.dumps({"versions": {p: version(p) for p in packages}, "traces": traces, **more}))
