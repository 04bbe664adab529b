"""The judges' own calls as OTel spans, sent to the collector like any app's.

Each judge call (with its retries) is one root span, exported by a TracerProvider of its own
(never the process's global one, so an app's settings and sampling do not apply) over
OTLP/HTTP. Its resource puts it in project `<project>-evaluators` with service
`spanlake-evaluators`, so judge traffic is priced and timed like anything else but stays
out of the app project's reports. Attributes: the GenAI ones the collector normalizes
(operation, provider, models, token usage, finish reasons) plus the evaluator and the
target it judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from spanlake.evaluators.target import Target
from spanlake.sdk import attributes as A
from spanlake.storage.layout import valid_project

SERVICE_NAME = "spanlake-evaluators"
PROJECT_SUFFIX = "-evaluators"
MAX_PROJECT = 64
EVALUATOR_NAME = "spanlake.evaluator.name"
EVALUATOR_VERSION = "spanlake.evaluator.version"
TARGET_TRACE_ID = "spanlake.evaluator.target.trace_id"
TARGET_SPAN_ID = "spanlake.evaluator.target.span_id"
TARGET_ITEM_ID = "spanlake.evaluator.target.item_id"
ATTEMPTS = "spanlake.evaluator.attempts"
EXPORT_TIMEOUT_S = 10


def evaluator_project(project: str) -> str:
    """The project the judge calls of `project`'s evaluators are traced into."""
    name = project[: MAX_PROJECT - len(PROJECT_SUFFIX)] + PROJECT_SUFFIX
    return name if valid_project(name) else "default" + PROJECT_SUFFIX


class JudgeTracer:
    """Starts judge-call spans and exports them to `endpoint` (e.g. http://host:port/v1/traces)."""

    def __init__(self, endpoint: str, project: str, headers: Mapping[str, str] | None = None) -> None:
        resource = Resource({A.SERVICE_NAME: SERVICE_NAME, A.RESOURCE_PROJECT: evaluator_project(project)})
        self._provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=EXPORT_TIMEOUT_S)
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("spanlake.evaluators.judge")

    def start(
        self, *, name: str, version: int, model: str, base_url: str, target: Target, provider: str, **request: float
    ) -> Span:
        """A root span for one judge call (an empty context: never a child of the app's span)."""
        url = urlsplit(base_url)
        attrs: dict[str, str | int | float] = {
            A.GEN_AI_OPERATION_NAME: "chat",
            A.GEN_AI_PROVIDER_NAME: provider,
            A.GEN_AI_SYSTEM: provider,
            A.GEN_AI_REQUEST_MODEL: model,
            EVALUATOR_NAME: name,
            EVALUATOR_VERSION: version,
            "server.address": url.hostname or "",
        }
        if url.port:
            attrs["server.port"] = url.port
        attrs.update({f"gen_ai.request.{k}": v for k, v in request.items()})
        for key, value in ((TARGET_TRACE_ID, target.trace_id), (TARGET_SPAN_ID, target.span_id)):
            if value:
                attrs[key] = value
        if target.item_id:
            attrs[TARGET_ITEM_ID] = target.item_id
        return self._tracer.start_span(f"chat {model}", context=Context(), kind=SpanKind.CLIENT, attributes=attrs)

    @staticmethod
    def finish(
        span: Span,
        *,
        response: Mapping[str, object] | None,
        usage: Mapping[str, int],
        attempts: int,
        error: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Record the answer's model, id, finish reasons and tokens (or the error), then end."""
        span.set_attribute(ATTEMPTS, attempts)
        if response is not None:
            if isinstance(model := response.get("model"), str):
                span.set_attribute(A.GEN_AI_RESPONSE_MODEL, model)
            if isinstance(rid := response.get("id"), str):
                span.set_attribute(A.GEN_AI_RESPONSE_ID, rid)
            choices = response.get("choices")
            if isinstance(choices, list):
                reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
                span.set_attribute(A.GEN_AI_RESPONSE_FINISH_REASONS, [r for r in reasons if isinstance(r, str)])
        keys = {
            "input_tokens": A.GEN_AI_USAGE_INPUT_TOKENS,
            "output_tokens": A.GEN_AI_USAGE_OUTPUT_TOKENS,
            "cache_read_tokens": A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            "reasoning_tokens": A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        }
        for field, key in keys.items():
            if field in usage:
                span.set_attribute(key, usage[field])
        if error is not None:
            span.set_attribute("error.type", error_type or "error")
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def flush(self, timeout_s: float = EXPORT_TIMEOUT_S) -> bool:
        """Export the spans ended so far; False when that did not finish in time."""
        return self._provider.force_flush(int(timeout_s * 1000))

    def close(self) -> None:
        self._provider.shutdown()
