"""The span processor setup() installs, and the exporter guard behind it.

`SpanlakeProcessor` does two things on the provider it is added to: in `on_start` it copies
prompt()/session() scope attributes onto every new span, and in `on_end` it hands finished
spans to a `BatchSpanProcessor` (bounded queue; spans beyond it are dropped, never waited
for). Export runs on the batch processor's background thread; shutdown and flush are
bounded in time, whatever the exporter does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanlake.sdk import attributes as A
from spanlake.sdk._state import SCOPE_ATTRS_KEY, STATE, TRACER_NAME, internal_error


def bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    """Run fn on a daemon thread and wait at most timeout_s; True if it finished truthy/None."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except Exception:
            internal_error("flush/shutdown")
            outcome.append(False)

    t = threading.Thread(target=run, name="spanlake-sdk-bounded", daemon=True)
    t.start()
    t.join(max(0.0, timeout_s))
    return bool(outcome) and outcome[0] is not False


class _WithResource:
    """A finished span seen with another resource (only the exported copy changes)."""

    __slots__ = ("_span", "resource")

    def __init__(self, span: ReadableSpan, resource: Resource) -> None:
        self._span = span
        self.resource = resource

    def __getattr__(self, name: str) -> Any:
        return getattr(self._span, name)


class SafeExporter(SpanExporter):
    """Wraps the OTLP exporter: never raises, and adds spanlake's resource attributes
    (`spanlake.project`, a missing `service.name`) to what it sends when the app's own
    provider's resource lacks them."""

    def __init__(self, inner: SpanExporter, project: str | None = None, service_name: str | None = None) -> None:
        self._inner = inner
        self._project = project
        self._service_name = service_name
        self._resources: dict[int, tuple[Resource, Resource | None]] = {}

    def _override(self, resource: Resource) -> Resource | None:
        """The resource to send instead of `resource`, or None to send it as is (cached)."""
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        extra: dict[str, Any] = {}
        attrs = resource.attributes
        if self._project and attrs.get(A.RESOURCE_PROJECT) != self._project:
            extra[A.RESOURCE_PROJECT] = self._project
        if self._service_name and str(attrs.get(A.SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
            extra[A.SERVICE_NAME] = self._service_name
        merged = resource.merge(Resource(extra, resource.schema_url)) if extra else None
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, merged)
        return merged

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            if self._project or self._service_name:
                out: list[Any] = []
                for s in spans:
                    r = self._override(s.resource)
                    out.append(s if r is None else _WithResource(s, r))
                spans = out
            return self._inner.export(spans)
        except Exception:
            internal_error("export")
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:
            internal_error("exporter shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:
            internal_error("exporter flush")
            return False


class SpanlakeProcessor(SpanProcessor):
    """Scope attributes on start; bounded batch export on end; bounded flush and shutdown."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        timeout_s: float,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
    ) -> None:
        self._batch = BatchSpanProcessor(
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
        )
        self._timeout_s = timeout_s
        self._closed = False

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        if not STATE.scopes_used:
            return
        try:
            if span.instrumentation_scope is not None and span.instrumentation_scope.name == TRACER_NAME:
                return  # a marker's span: it took the scope attributes at start
            attrs: Mapping[str, Any] | None = context.get_value(SCOPE_ATTRS_KEY, parent_context)  # type: ignore[assignment]
            if attrs:
                span.set_attributes(attrs)
        except Exception:
            internal_error("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self._closed:
            return
        try:
            self._batch.on_end(span)
        except Exception:
            internal_error("on_end")

    def shutdown(self) -> None:
        """Export what is queued, within the timeout; later spans are ignored."""
        if self._closed:
            return
        self._closed = True
        bounded(self._batch.shutdown, self._timeout_s)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export what is queued; gives up after min(timeout_millis, the setup timeout)."""
        if self._closed:
            return False
        return bounded(lambda: self._batch.force_flush(timeout_millis), min(timeout_millis / 1000, self._timeout_s))
