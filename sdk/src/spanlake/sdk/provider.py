"""setup(): connect the app's OpenTelemetry tracing to spanlake in one call.

- If the app (or `opentelemetry-instrument`, or an instrumentation library) already set a
  global SDK TracerProvider, spanlake *adds* its span processor to it: existing exporters,
  samplers and auto-instrumentations keep working, and spanlake receives the same spans.
- Otherwise it creates a TracerProvider (resource from service_name/project plus
  OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, sampler from OTEL_TRACES_SAMPLER) and sets
  it as the global one.

`project` is a *resource* attribute (`spanlake.project`), because the collector routes
spans to a project by their resource. With a provider of our own it is in its resource;
with the app's provider it is added only to the copy spanlake exports (the app's other
exporters see its resource unchanged). A span attribute would not route anything, and
would leak into the app's other backends. An API key, once the collector maps keys to
projects, decides the project over either.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.re import parse_env_headers

from spanlake.sdk import attributes as A
from spanlake.sdk._state import CAPTURE_ENV, STATE, TRACER_NAME, VERSION, env_flag, internal_error, logger
from spanlake.sdk.export import SafeExporter, SpanlakeProcessor

DEFAULT_TIMEOUT_S = 5.0  # per export request (retries included) and for flush/shutdown
DEFAULT_SCHEDULE_DELAY_MS = 1000
DEFAULT_MAX_QUEUE_SIZE = 2048
DEFAULT_MAX_BATCH = 512
TRACES_PATH = "/v1/traces"


class Spanlake:
    """What setup() returns: the provider spans go through, and flush()/shutdown()."""

    # What feedback() reuses: the collector's base URL, the export headers, the project.
    base_endpoint: str | None = None
    headers: dict[str, str] | None = None
    project: str | None = None

    def __init__(
        self, provider: Any, processor: SpanlakeProcessor | None, owns_provider: bool, endpoint: str | None
    ) -> None:
        self.provider = provider
        self.processor = processor
        self.owns_provider = owns_provider
        self.endpoint = endpoint

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send what is queued now; returns False if it did not finish in time (never raises)."""
        if self.processor is None:
            return True
        ms = int((timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S) * 1000)
        return self.processor.force_flush(ms)

    def shutdown(self) -> None:
        """Flush (bounded) and stop exporting. The provider itself is left to its owner."""
        global _current
        if self.processor is not None:
            self.processor.shutdown()
        if _current is self:
            _current = None
            STATE.tracer = None


_current: Spanlake | None = None


def _env(*names: str) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def _traces_endpoint(endpoint: str | None) -> str | None:
    """An explicit base URL gets /v1/traces appended; None leaves it to the OTEL_* variables."""
    if endpoint is None:
        return None
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def _headers(headers: Mapping[str, str] | None, api_key: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, then `headers`, then the API key as a bearer token."""
    merged = {
        k.lower(): v
        for k, v in parse_env_headers(
            _env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS") or "", liberal=True
        ).items()
    }
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    if api_key:
        merged["authorization"] = f"Bearer {api_key}"
    return merged


def _otlp_exporter(endpoint: str | None, headers: dict[str, str], timeout_s: float | None) -> SpanExporter:
    protocol = _env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol != "http/protobuf":
        logger.warning("spanlake sdk exports OTLP http/protobuf; ignoring OTEL_EXPORTER_OTLP_PROTOCOL=%s", protocol)
    return OTLPSpanExporter(endpoint=endpoint, headers=headers or None, timeout=timeout_s)  # type: ignore[arg-type]


def _int_env_or(name: str, default: int) -> int | None:
    """None (let the SDK read the standard variable) when it is set, else our default."""
    return None if os.environ.get(name) else default


def setup(
    endpoint: str | None = None,
    service_name: str | None = None,
    project: str | None = None,
    api_key: str | None = None,
    capture_content: bool | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    tracer_provider: Any = None,
    exporter: SpanExporter | None = None,
) -> Spanlake:
    """Send this process's traces to spanlake. Never raises: on a problem it logs and the
    app runs untraced.

    endpoint: collector base URL (`http://127.0.0.1:4318`; `/v1/traces` is appended) — default
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318.
    service_name: `service.name` (default OTEL_SERVICE_NAME).
    project: resource attribute `spanlake.project` (default SPANLAKE_PROJECT).
    api_key: sent as `Authorization: Bearer <key>` (default SPANLAKE_API_KEY).
    capture_content: record prompts, completions, documents, tool I/O (default
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, else False).
    headers: extra HTTP headers (merged over OTEL_EXPORTER_OTLP_HEADERS).
    timeout_s: per-export timeout including retries, and the bound on flush/shutdown
        (default OTEL_EXPORTER_OTLP_TIMEOUT, else 5 s).
    tracer_provider: attach to this SDK provider instead of the global one.
    exporter: export with this instead of OTLP/HTTP (tests, benchmarks).
    """
    global _current
    if capture_content is None:
        capture_content = env_flag(CAPTURE_ENV)
    STATE.capture_content = bool(capture_content)
    if _current is not None:
        _current.shutdown()
    if env_flag("OTEL_SDK_DISABLED"):
        logger.info("spanlake sdk: OTEL_SDK_DISABLED is set; not exporting")
        return Spanlake(trace.get_tracer_provider(), None, False, None)
    try:
        _current = _setup(endpoint, service_name, project, api_key, headers, timeout_s, tracer_provider, exporter)
    except Exception:
        internal_error("setup")
        return Spanlake(trace.get_tracer_provider(), None, False, None)
    return _current


def _setup(
    endpoint: str | None,
    service_name: str | None,
    project: str | None,
    api_key: str | None,
    headers: Mapping[str, str] | None,
    timeout_s: float | None,
    tracer_provider: Any,
    exporter: SpanExporter | None,
) -> Spanlake:
    project = project or os.environ.get("SPANLAKE_PROJECT") or None
    api_key = api_key or os.environ.get("SPANLAKE_API_KEY") or None
    env_timeout = _env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    export_timeout = timeout_s if timeout_s is not None else (None if env_timeout else DEFAULT_TIMEOUT_S)
    bound_s = export_timeout if export_timeout is not None else DEFAULT_TIMEOUT_S * 2

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    owns = False
    if not hasattr(provider, "add_span_processor"):
        # No SDK provider yet (the API's proxy), or one we cannot attach to: make our own.
        attrs: dict[str, Any] = {}
        if service_name:
            attrs[A.SERVICE_NAME] = service_name
        if project:
            attrs[A.RESOURCE_PROJECT] = project
        is_unset = isinstance(provider, trace.ProxyTracerProvider)
        if not is_unset:
            logger.warning("spanlake sdk: the global tracer provider is not an SDK one; using a private provider")
        provider = TracerProvider(resource=Resource.create(attrs))
        owns = True
        if is_unset:
            trace.set_tracer_provider(provider)

    traces_endpoint = _traces_endpoint(endpoint)
    merged_headers = _headers(headers, api_key)
    if exporter is None:
        exporter = _otlp_exporter(traces_endpoint, merged_headers, export_timeout)
    safe = SafeExporter(exporter) if owns else SafeExporter(exporter, project, service_name)
    processor = SpanlakeProcessor(
        safe,
        timeout_s=bound_s,
        max_queue_size=_int_env_or("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE),
        schedule_delay_millis=_int_env_or("OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS),
        max_export_batch_size=_int_env_or("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_MAX_BATCH),
    )
    provider.add_span_processor(processor)
    STATE.tracer = provider.get_tracer(TRACER_NAME, VERSION)
    handle = Spanlake(provider, processor, owns, traces_endpoint)
    handle.base_endpoint = endpoint.rstrip("/").removesuffix(TRACES_PATH) if endpoint else None
    handle.headers = merged_headers
    resource = getattr(provider, "resource", None)
    handle.project = project or (resource.attributes.get(A.RESOURCE_PROJECT) if resource is not None else None)
    atexit.register(handle.shutdown)  # bounded; harmless if the provider shuts it down first
    return handle


def flush(timeout_s: float | None = None) -> bool:
    """Send what is queued now (bounded; never raises). True if everything was handed over."""
    try:
        return _current.flush(timeout_s) if _current is not None else True
    except Exception:
        internal_error("flush")
        return False


def shutdown() -> None:
    """Flush (bounded) and stop exporting to spanlake."""
    try:
        if _current is not None:
            _current.shutdown()
    except Exception:
        internal_error("shutdown")
