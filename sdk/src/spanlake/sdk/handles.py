"""Handles: what `with marker as h` gives while a marked span runs (and what current() returns).

Every method is safe to call at any time: on a span that is not recording (no setup, or a
failed start) it does nothing, and an internal failure is logged, never raised.
Content (messages, queries, documents' text, tool arguments and results) is recorded only
when content capture is on (setup(capture_content=True) or
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from spanlake.sdk import _content
from spanlake.sdk import attributes as A
from spanlake.sdk._scope import MISSING, Active
from spanlake.sdk._state import internal_error

T = TypeVar("T")
SUCCESS, FAILURE = A.TASK_OUTCOMES


def error_type(exc: BaseException) -> str:
    """`error.type`: the exception's fully qualified class name (builtins unqualified)."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def record_error(span: Span, exc: BaseException) -> None:
    """Record the app's exception on the span the OTel way: event, ERROR status, error.type."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute(A.ERROR_TYPE, error_type(exc))


class Marked(Active):
    """A marked span while it runs. `span` is the underlying OpenTelemetry span."""

    __slots__ = ("_capture", "span")

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        self._ctx = self._token = self._task = None
        self._marked = self
        self.span = span
        self._capture = capture

    @property
    def capture_content(self) -> bool:
        """True when this span records message content."""
        return self._capture

    def set_attribute(self, key: str, value: Any) -> None:
        """Set any attribute on the span (OTel value types only)."""
        try:
            self.span.set_attribute(key, value)
        except Exception:
            internal_error("set_attribute")

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        try:
            self.span.set_attributes(attributes)
        except Exception:
            internal_error("set_attributes")

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        try:
            self.span.add_event(name, attributes)
        except Exception:
            internal_error("add_event")

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        """Subclass hook, before the span ends: set what the outcome implies."""

    def _close(self, exc: BaseException | None, result: Any = MISSING) -> None:
        try:
            self._finish(exc, result)
        except Exception:
            internal_error("finish")
        try:
            if exc is not None and not isinstance(exc, GeneratorExit):
                record_error(self.span, exc)
            self.span.end()
        except Exception:
            internal_error("end")


class Task(Marked):
    """A unit of user-visible work. Outcome: explicit succeed()/fail(); an exception fails it;
    neither means success (see docs/sdk.md)."""

    __slots__ = ("_inherited", "_outcome", "_reason", "_stamped")

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._task = self
        self._outcome: str | None = None
        self._reason: str | None = None
        self._inherited: Mapping[str, Any] | None = None  # scope attributes the span started with
        self._stamped: set[str] | None = None

    @property
    def outcome(self) -> str | None:
        """The outcome set so far (`success`, `failure`), or None."""
        return self._outcome

    @property
    def outcome_reason(self) -> str | None:
        """The reason or note given with the outcome so far, or None."""
        return self._reason

    def succeed(self, note: str | None = None) -> None:
        """Mark the task successful, with an optional note (stored as the outcome reason)."""
        self._outcome, self._reason = SUCCESS, note

    def fail(self, reason: str | None = None) -> None:
        """Mark the task failed, and why. Does not raise and does not set an ERROR status."""
        self._outcome, self._reason = FAILURE, reason

    def _stamp(self, attrs: Mapping[str, Any]) -> None:
        """Give the task attributes of a prompt()/session() scope opened inside it (first wins)."""
        inherited = self._inherited or {}
        stamped = self._stamped if self._stamped is not None else set()
        new = {k: v for k, v in attrs.items() if k not in inherited and k not in stamped}
        if new:
            self.span.set_attributes(new)
            self._stamped = stamped | new.keys()

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if exc is not None and not isinstance(exc, GeneratorExit):
            outcome = FAILURE
            reason = self._reason if self._outcome == FAILURE and self._reason else f"{type(exc).__name__}: {exc}"
        else:
            outcome, reason = self._outcome or SUCCESS, self._reason
        if reason is None:
            self.span.set_attribute(A.TASK_OUTCOME, outcome)
        else:
            self.span.set_attributes({A.TASK_OUTCOME: outcome, A.TASK_OUTCOME_REASON: str(reason)})


class LlmCall(Marked):
    """A model call made without an auto-instrumentation: messages, usage, time to first chunk."""

    __slots__ = ("_chunks", "_first", "_has_output", "_t0")

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._t0 = time.perf_counter()
        self._first = False
        self._has_output = False
        self._chunks: list[str] | None = None

    def set_input(self, messages: Any, system: Any = None) -> None:
        """Messages sent (a string, or OpenAI-style / OTel-style message dicts); content only."""
        if not self._capture:
            return
        try:
            attrs = {A.GEN_AI_INPUT_MESSAGES: _content.input_messages(messages)}
            if system is not None:
                attrs[A.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.to_json(_content._parts(system))
            self.span.set_attributes(attrs)
        except Exception:
            internal_error("set_input")

    def set_output(self, messages: Any, finish_reason: str | None = None) -> None:
        """The answer (a string or message dicts). The finish reason is kept even without capture."""
        try:
            self._has_output = True
            if finish_reason is not None:
                self.span.set_attribute(A.GEN_AI_RESPONSE_FINISH_REASONS, [finish_reason])
            if self._capture:
                self.span.set_attribute(A.GEN_AI_OUTPUT_MESSAGES, _content.output_messages(messages, finish_reason))
        except Exception:
            internal_error("set_output")

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        """Token usage, OTel meaning: input includes cached tokens, output includes reasoning."""
        attrs: dict[str, int] = {}
        try:
            if input_tokens is not None:
                attrs[A.GEN_AI_USAGE_INPUT_TOKENS] = int(input_tokens)
            if output_tokens is not None:
                attrs[A.GEN_AI_USAGE_OUTPUT_TOKENS] = int(output_tokens)
            if cached_tokens is not None:
                attrs[A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = int(cached_tokens)
            if cache_creation_tokens is not None:
                attrs[A.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = int(cache_creation_tokens)
            if reasoning_tokens is not None:
                attrs[A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = int(reasoning_tokens)
            self.span.set_attributes(attrs)
        except Exception:
            internal_error("set_usage")

    def set_response(
        self, model: str | None = None, response_id: str | None = None, finish_reasons: Sequence[str] | None = None
    ) -> None:
        """What the provider answered with: the model that answered, the response id, finish reasons."""
        attrs: dict[str, Any] = {}
        if model is not None:
            attrs[A.GEN_AI_RESPONSE_MODEL] = model
        if response_id is not None:
            attrs[A.GEN_AI_RESPONSE_ID] = response_id
        if finish_reasons is not None:
            attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = [str(r) for r in finish_reasons]
        self.set_attributes(attrs)

    def mark_first_chunk(self) -> None:
        """Record now as the first streamed chunk (`gen_ai.response.time_to_first_chunk`, seconds).
        Only the first call counts."""
        if self._first:
            return
        self._first = True
        ttfc = time.perf_counter() - self._t0
        self.set_attributes({A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: ttfc, A.GEN_AI_REQUEST_STREAM: True})

    def stream(self, chunks: Iterable[T]) -> Iterator[T]:
        """Pass a stream through, marking its first chunk (and, with capture, joining str chunks
        as the output when set_output() is not called)."""
        for chunk in chunks:
            self._on_item(chunk)
            yield chunk

    async def astream(self, chunks: AsyncIterable[T]) -> AsyncIterator[T]:
        """stream() for async iterables."""
        async for chunk in chunks:
            self._on_item(chunk)
            yield chunk

    def _on_item(self, item: Any) -> None:
        if not self._first:
            self.mark_first_chunk()
        if self._capture and isinstance(item, str):
            if self._chunks is None:
                self._chunks = []
            self._chunks.append(item)

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if not self._has_output and self._capture:
            if self._chunks:
                self.set_output("".join(self._chunks))
            elif isinstance(result, str):
                self.set_output(result)


class Retrieval(Marked):
    """A retrieval step. A decorated function returning a list records it as the documents."""

    __slots__ = ("_has_docs",)

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._has_docs = False

    def set_documents(self, documents: Iterable[Any]) -> None:
        """Documents as dicts {id, score, content, metadata}, (id, score, content) tuples, strings,
        or LangChain/LlamaIndex-like objects. Ids and scores always; content with capture only."""
        try:
            self._has_docs = True
            self.span.set_attributes(_content.documents(documents, self._capture))
        except Exception:
            internal_error("set_documents")

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if not self._has_docs and isinstance(result, list | tuple):
            self.set_documents(result)


class ToolCall(Marked):
    """A tool execution. A decorated function's arguments and return value are recorded (capture)."""

    __slots__ = ("_has_result",)

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._has_result = False

    def set_arguments(self, arguments: Any) -> None:
        if self._capture:
            self.set_attribute(A.GEN_AI_TOOL_CALL_ARGUMENTS, _safe_json(arguments))

    def set_result(self, result: Any) -> None:
        self._has_result = True
        if self._capture:
            self.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, _safe_json(result))

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if not self._has_result and result is not MISSING and exc is None:
            self.set_result(result)


class Validation(Marked):
    """An output validation or guardrail check. A decorated function returning a bool gives the verdict."""

    __slots__ = ("_verdict",)

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._verdict: bool | None = None

    def set_result(self, passed: bool, errors: str | Iterable[str] | None = None) -> None:
        """The verdict, with the messages of a failed check."""
        self._verdict = bool(passed)
        attrs: dict[str, Any] = {A.VALIDATION_PASSED: self._verdict}
        if errors:
            attrs[A.VALIDATION_ERRORS] = [errors] if isinstance(errors, str) else [str(e) for e in errors]
        self.set_attributes(attrs)

    def passed(self) -> None:
        self.set_result(True)

    def failed(self, errors: str | Iterable[str] | None = None) -> None:
        self.set_result(False, errors)

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if self._verdict is None and isinstance(result, bool):
            self.set_result(result)


class Policy(Marked):
    """A policy decision. A decorated function returning allow/block/redact/review gives the decision."""

    __slots__ = ("_decided",)

    def __init__(self, span: Span = trace.INVALID_SPAN, capture: bool = False) -> None:
        super().__init__(span, capture)
        self._decided = False

    def decide(self, decision: str) -> None:
        """One of allow, block, redact, review (other values are stored as given)."""
        self._decided = True
        self.set_attribute(A.POLICY_DECISION, str(decision))

    def _finish(self, exc: BaseException | None, result: Any) -> None:
        if not self._decided and isinstance(result, str) and result in A.POLICY_DECISIONS:
            self.decide(result)


def _safe_json(value: Any) -> str:
    try:
        return _content.to_json(value)
    except Exception:
        return repr(value)
