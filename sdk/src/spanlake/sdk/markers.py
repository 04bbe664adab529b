"""Markers: say what a piece of the app means. Each is a context manager (`with`,
`async with`) and a decorator (functions, coroutines, generators, async generators):

    @task("answer_ticket")
    def answer(ticket): ...

    with llm_call("gpt-4o-mini", "openai") as call:
        call.set_usage(input_tokens=120, output_tokens=30)

Each marked span carries `spanlake.span.category` and the GenAI / OpenInference names
where they exist, spanlake's own (`attributes.py`) otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from spanlake.sdk import _content
from spanlake.sdk import attributes as A
from spanlake.sdk._scope import Scope
from spanlake.sdk._state import ACTIVE_KEY, SCOPE_ATTRS_KEY, STATE, internal_error, tracer
from spanlake.sdk.handles import LlmCall, Marked, Policy, Retrieval, Task, ToolCall, Validation

H = TypeVar("H", bound=Marked)
Attrs = Mapping[str, Any] | None


class SpanMarker(Scope, Generic[H]):
    """A marker: opens a span of one kind per use. Build one with task(), llm_call(), ..."""

    def __init__(
        self,
        handle_cls: type[H],
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        extra: Attrs = None,
        content: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._handle_cls = handle_cls
        self._name = name
        self._kind = kind
        self._attrs = {**extra, **attributes} if extra else attributes
        self._content = content  # content attributes, computed only when capture is on

    if TYPE_CHECKING:  # typed handles for `with task(...) as t`; the runtime code is Scope's

        def __enter__(self) -> H: ...

        async def __aenter__(self) -> H: ...

    def _open(self) -> H:
        try:
            cur = context.get_current()
            capture = STATE.capture_content
            attrs = self._attrs
            if capture and self._content is not None:
                attrs = {**attrs, **_safe_content(self._content)}
            # prompt()/session() attributes go in at start (the processor skips our spans)
            scoped = cur.get(SCOPE_ATTRS_KEY) if STATE.scopes_used else None
            if scoped:
                attrs = {**scoped, **attrs}  # type: ignore[dict-item]
            span = tracer().start_span(self._name, cur, self._kind, attrs)
            handle = self._handle_cls(span, capture)
            if handle._task is None:
                parent = cur.get(ACTIVE_KEY)
                if parent is not None:
                    handle._task = parent._task  # type: ignore[attr-defined]
            else:
                handle._inherited = scoped  # type: ignore[attr-defined]
            handle._ctx = context.set_value(ACTIVE_KEY, handle, trace.set_span_in_context(span, cur))
            return handle
        except Exception:
            internal_error("start span")
            return self._handle_cls()


def _safe_content(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception:
        internal_error("content")
        return {}


class _ToolMarker(SpanMarker[ToolCall]):
    """tool_call() as a decorator records the call's arguments when none were given."""

    def __init__(self, *args: Any, record_call_args: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record_call_args = record_call_args
        self._sig: tuple[Callable[..., Any], inspect.Signature] | None = None

    def _open_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolCall:
        handle = self._open()
        if self._record_call_args and handle.capture_content:
            try:
                if self._sig is None or self._sig[0] is not fn:
                    self._sig = (fn, inspect.signature(fn))
                bound = self._sig[1].bind_partial(*args, **kwargs).arguments
                handle.set_arguments({k: v for k, v in bound.items() if k not in ("self", "cls")})
            except Exception:
                internal_error("tool arguments")
        return handle


def task(name: str, *, attributes: Attrs = None) -> SpanMarker[Task]:
    """A unit of user-visible work (`answer_ticket`). Outcome via succeed()/fail() on the
    handle or current_task(); an exception fails it; otherwise it succeeded."""
    return SpanMarker(Task, name, SpanKind.INTERNAL, {A.TASK_NAME: name, A.SPAN_CATEGORY: A.CATEGORY_TASK}, attributes)


def llm_call(
    model: str,
    provider: str,
    *,
    operation: str = "chat",
    messages: Any = None,
    system: Any = None,
    attributes: Attrs = None,
) -> SpanMarker[LlmCall]:
    """A model call the app makes itself (no auto-instrumentation). `provider` is an OTel
    `gen_ai.provider.name` (openai, anthropic, aws.bedrock, ...). Messages only with capture."""
    attrs = {
        A.GEN_AI_OPERATION_NAME: operation,
        A.GEN_AI_PROVIDER_NAME: provider,
        A.GEN_AI_REQUEST_MODEL: model,
        A.SPAN_CATEGORY: A.CATEGORY_LLM,
    }
    content = None
    if messages is not None or system is not None:

        def content() -> dict[str, Any]:
            c: dict[str, Any] = {}
            if messages is not None:
                c[A.GEN_AI_INPUT_MESSAGES] = _content.input_messages(messages)
            if system is not None:
                c[A.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.to_json(_content._parts(system))
            return c

    return SpanMarker(LlmCall, f"{operation} {model}", SpanKind.CLIENT, attrs, attributes, content)


def retrieval(
    query: str | None = None, data_source: str | None = None, *, attributes: Attrs = None
) -> SpanMarker[Retrieval]:
    """A retrieval step: the query (content, capture only) and data source id; documents via
    set_documents() or a decorated function's list return value."""
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: "retrieval",
        A.OI_SPAN_KIND: "RETRIEVER",
        A.SPAN_CATEGORY: A.CATEGORY_RETRIEVAL,
    }
    if data_source is not None:
        attrs[A.GEN_AI_DATA_SOURCE_ID] = data_source
    content = (lambda: {A.GEN_AI_RETRIEVAL_QUERY_TEXT: query}) if query is not None else None
    name = f"retrieval {data_source}" if data_source else "retrieval"
    return SpanMarker(Retrieval, name, SpanKind.CLIENT, attrs, attributes, content)


def tool_call(
    name: str,
    arguments: Any = None,
    *,
    call_id: str | None = None,
    tool_type: str | None = "function",
    attributes: Attrs = None,
) -> SpanMarker[ToolCall]:
    """A tool execution. Arguments and result are content (capture only); as a decorator the
    call's arguments and return value are recorded unless given."""
    attrs: dict[str, Any] = {
        A.GEN_AI_OPERATION_NAME: "execute_tool",
        A.GEN_AI_TOOL_NAME: name,
        A.SPAN_CATEGORY: A.CATEGORY_TOOL,
    }
    if call_id is not None:
        attrs[A.GEN_AI_TOOL_CALL_ID] = call_id
    if tool_type is not None:
        attrs[A.GEN_AI_TOOL_TYPE] = tool_type
    content = None
    if arguments is not None:
        args_json = _content.to_json(arguments)

        def content() -> dict[str, Any]:
            return {A.GEN_AI_TOOL_CALL_ARGUMENTS: args_json}

    return _ToolMarker(
        ToolCall,
        f"execute_tool {name}",
        SpanKind.INTERNAL,
        attrs,
        attributes,
        content,
        record_call_args=arguments is None,
    )


def validation(name: str, *, attributes: Attrs = None) -> SpanMarker[Validation]:
    """An output validation or guardrail check (`json_schema:TicketReply`, `no_pii`):
    passed()/failed(errors) on the handle, or a decorated function's bool return value."""
    attrs = {A.VALIDATION_NAME: name, A.SPAN_CATEGORY: A.CATEGORY_GUARDRAIL}
    return SpanMarker(Validation, f"validation {name}", SpanKind.INTERNAL, attrs, attributes)


def policy(name: str, decision: str | None = None, *, attributes: Attrs = None) -> SpanMarker[Policy]:
    """A policy decision (allow, block, redact, review), given here, via decide(), or as a
    decorated function's return value."""
    attrs = {A.POLICY_NAME: name, A.SPAN_CATEGORY: A.CATEGORY_GUARDRAIL}
    if decision is not None:
        attrs[A.POLICY_DECISION] = decision
    return SpanMarker(Policy, f"policy {name}", SpanKind.INTERNAL, attrs, attributes)


def fallback(reason: str, to: str, *, attributes: Attrs = None) -> SpanMarker[Marked]:
    """The flow fell back (to a bigger model, a template, search); wrap the fallback path."""
    attrs = {A.FALLBACK_REASON: reason, A.FALLBACK_TO: to, A.SPAN_CATEGORY: A.CATEGORY_CHAIN}
    return SpanMarker(Marked, f"fallback {to}", SpanKind.INTERNAL, attrs, attributes)


def escalation(reason: str, to: str, *, attributes: Attrs = None) -> SpanMarker[Marked]:
    """The flow escalated (to a human, another team); wrap the hand-off."""
    attrs = {A.ESCALATION_REASON: reason, A.ESCALATION_TO: to, A.SPAN_CATEGORY: A.CATEGORY_CHAIN}
    return SpanMarker(Marked, f"escalation {to}", SpanKind.INTERNAL, attrs, attributes)


_NOOP_TASK = Task()
_NOOP_LLM = LlmCall()
_NOOP = Marked()


def current() -> Marked:
    """The innermost marked span in this context (a no-op handle if there is none)."""
    active = context.get_value(ACTIVE_KEY)
    marked = getattr(active, "_marked", None)
    return marked if marked is not None else _NOOP


def current_task() -> Task:
    """The innermost task in this context, e.g. to call .fail() from a decorated function
    (a no-op handle if there is none, so calling it never breaks the app)."""
    active = context.get_value(ACTIVE_KEY)
    found = getattr(active, "_task", None)
    return found if found is not None else _NOOP_TASK


def current_llm_call() -> LlmCall:
    """The innermost marked span if it is an llm_call, else a no-op handle."""
    marked = current()
    return marked if isinstance(marked, LlmCall) else _NOOP_LLM
