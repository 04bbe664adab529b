"""spanlake-sdk: mark what an LLM application's spans mean, on top of OpenTelemetry.

    import spanlake.sdk as sl

    sl.setup(endpoint="http://127.0.0.1:4318", service_name="support-bot", project="support")

    @sl.task("answer_ticket")
    def answer(ticket):
        with sl.prompt("answer", "v3"), sl.llm_call("gpt-4o-mini", "openai") as call:
            ...
            call.set_usage(input_tokens=120, output_tokens=30)
        if not ok:
            sl.current_task().fail("no grounded answer")

Depends only on opentelemetry-api, -sdk and the OTLP/HTTP exporter. See docs/sdk.md.
"""

from spanlake.sdk import attributes
from spanlake.sdk.feedback import afeedback, current_trace_id, feedback
from spanlake.sdk.handles import LlmCall, Marked, Policy, Retrieval, Task, ToolCall, Validation
from spanlake.sdk.markers import (
    SpanMarker,
    current,
    current_llm_call,
    current_task,
    escalation,
    fallback,
    llm_call,
    policy,
    retrieval,
    task,
    tool_call,
    validation,
)
from spanlake.sdk.provider import Spanlake, flush, setup, shutdown
from spanlake.sdk.scopes import ContextScope, prompt, session

__version__ = "0.1.0"

__all__ = [
    "ContextScope",
    "LlmCall",
    "Marked",
    "Policy",
    "Retrieval",
    "SpanMarker",
    "Spanlake",
    "Task",
    "ToolCall",
    "Validation",
    "afeedback",
    "attributes",
    "current",
    "current_llm_call",
    "current_task",
    "current_trace_id",
    "escalation",
    "fallback",
    "feedback",
    "flush",
    "llm_call",
    "policy",
    "prompt",
    "retrieval",
    "session",
    "setup",
    "shutdown",
    "task",
    "tool_call",
    "validation",
]
