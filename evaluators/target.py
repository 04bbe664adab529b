"""`Target`: what an evaluator looks at — a trace, one span of it, or a dataset item.

This is the documented object a Python evaluator (`kind = "python"`, `module:function`)
receives, and the source of an LLM judge's template variables (`TEMPLATE_VARIABLES`).
Built from a trace in the lake (`from_detail`, via analytics.traces.detail) or from a frozen
dataset version's example (`from_example`); many traces at once by `load_targets` (three
queries for a batch of traces, not one read per trace: what the online rules and the offline
runs use).

Where the fields come from (a trace's input, output and documents as its dataset example's,
analytics.datasets.item_parts):

- a trace: input = the task's input, else the first model call's last user message; output =
  the task's output, else the conversation's last assistant message; latency, cost and tokens
  of the whole trace (each call once); task name and outcome of the trace's summary;
- a span: its own messages, input and output; documents retrieved before it (or by it);
  its own latency, cost and tokens; the trace's task name and outcome;
- tool calls: each call an LLM asked for (its output messages' `tool_calls`) matched to the
  tool span that ran it (by call id, else by tool name in order), plus tool spans no LLM
  asked for; a span target has the calls it asked for or ran;
- a dataset example: its columns (actual output → `output`, context → `documents`,
  expected output) and the figures its `metadata` recorded when it was frozen.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from spanlake.analytics.datasets import chat_messages, item_parts
from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.detail import TraceDetail, trace_details
from spanlake.analytics.traces.filters import HORIZON, SKEW
from spanlake.analytics.traces.messages import as_text, loads
from spanlake.storage.schema import CATEGORIES

# Variables an LLM judge's template may name ({input}, {output}, ...); anything else is refused
# when the evaluator file is read.
TEMPLATE_VARIABLES = (
    "input",  # the user's input (task input, or the span's last user message)
    "output",  # the final output (task output, or the span's answer)
    "conversation",  # the messages, one per line: "role: content"
    "documents",  # retrieved documents' text, numbered
    "tool_calls",  # tool calls: name(arguments), one per line
    "expected_output",  # the dataset item's expected output ("" in production)
    "model",
    "prompt_name",
    "prompt_version",
    "task_name",
)


@dataclass(frozen=True)
class Target:
    """One thing to evaluate.

    `span_id` None: the whole trace (its task); else that span. `trace_id` None: a dataset
    item not linked to a trace (`item_id` names it). Text fields are None when the trace did
    not record them. `messages`: `[{role, content, tool_calls?}]` in order; `documents`:
    `[{id, score, content, metadata, span_id}]` retrieved before the output; `tool_calls`:
    `[{name, arguments, id, span_id, llm_span_id, result}]` (arguments parsed from JSON when
    they are JSON, else the text; `span_id` the tool span that ran the call, `llm_span_id`
    the LLM span that asked for it, either None when there is none); `retrievals`: the
    retrieval spans in scope, `[{span_id, name, documents}]` (documents: how many it
    returned); `spans`: the trace's spans as dicts of storage.schema.SPANS columns (JSON
    columns parsed; plus TraceDetail's `depth`, `cost_usd`, `messages`, ...), in tree order —
    from load_targets only the columns of SPAN_FIELDS and analytics' DETAIL_COLUMNS, and
    `attributes` a read-only Mapping parsed when first read; empty for dataset items.
    `messages` falls back to the input (user) and output (assistant) text when the trace
    recorded no messages. Latency is in ms, cost in USD.
    """

    project: str
    trace_id: str | None
    span_id: str | None = None
    item_id: str | None = None
    input: str | None = None
    output: str | None = None
    messages: Sequence[Mapping[str, Any]] = ()
    documents: Sequence[Mapping[str, Any]] = ()
    tool_calls: Sequence[Mapping[str, Any]] = ()
    expected_output: str | None = None
    category: str | None = None  # the span's category (None for a trace)
    task_name: str | None = None
    outcome: str | None = None
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    service_name: str | None = None
    start_time: datetime | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    spans: Sequence[Mapping[str, Any]] = ()
    retrievals: Sequence[Mapping[str, Any]] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """(project, trace or item id, span id): what one result per evaluator version is counted on."""
        return (self.project, self.trace_id or self.item_id or "", self.span_id)


# the span columns a Target's `spans` keep when loaded by load_targets (with analytics'
# DETAIL_COLUMNS; the others — resource and scope attributes, links, exact end and ingest
# times, cache tokens, ... — are left out: converting them is most of a batch's cost)
SPAN_FIELDS = (
    *("request_model", "response_model", "provider", "operation", "total_tokens", "tool_name"),
    *("prompt_name", "prompt_version", "user_id", "error_type", "status_message"),
)
TARGETS = ("trace", *CATEGORIES)  # what a rule evaluates: the whole trace, or each span of a category
BATCH = 20_000  # traces read per batch of load_targets (each batch reads the window once)
TOOL_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
TOOL_RESULT_KEYS = ("gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
TOOL_CALL_ID = "gen_ai.tool.call.id"


def from_detail(detail: TraceDetail, span_id: str | None = None) -> Target:
    """The target of a trace (span_id None) or of one of its spans; LookupError when the trace
    has no span `span_id`."""
    summary = detail.summary()
    parts = item_parts(detail, span_id.lower() if span_id else None, summary, example=False)
    if parts is None:
        raise LookupError(f"trace {detail.trace_id} has no span {span_id}")
    head = parts["head"]
    spans = detail.spans_by_start
    calls = _tool_calls(spans)
    if span_id is None:
        conversation = chat_messages(detail.conversation)
        retrievals = [s for s in spans if s["category"] == "retrieval"]
        latency, cost = summary["duration_ms"], summary["cost_usd"]
        tokens_in, tokens_out = summary["input_tokens"], summary["output_tokens"]
        tokens = tokens_in + tokens_out
        start = detail.start_time
    else:
        sid = head["span_id"]
        conversation = chat_messages(head["messages"])
        calls = [c for c in calls if sid in (c["span_id"], c["llm_span_id"])]
        if head["category"] == "retrieval":
            retrievals = [head]
        else:
            t = head["start_time_unix_nano"]
            ended = (s for s in spans if s["start_time_unix_nano"] + s["duration_ns"] <= t)
            retrievals = [s for s in ended if s["category"] == "retrieval"]
        latency, cost = head["duration_ms"], head["cost_usd"]
        tokens_in, tokens_out = head["input_tokens"], head["output_tokens"]
        tokens = head["total_tokens"]
        if tokens is None and (tokens_in is not None or tokens_out is not None):
            tokens = (tokens_in or 0) + (tokens_out or 0)
        start = head["start_time"]
    found = {}
    for d in detail.documents:
        found[d["span_id"]] = found.get(d["span_id"], 0) + 1
    return Target(
        project=detail.project,
        trace_id=detail.trace_id,
        span_id=head["span_id"] if span_id is not None else None,
        input=parts["input"],
        output=parts["actual_output"],
        messages=conversation or _fallback_messages(parts["input"], parts["actual_output"]),
        documents=[_document(d) for d in parts["documents"]],
        tool_calls=[{k: v for k, v in c.items() if k != "at"} for c in calls],
        category=head["category"] if span_id is not None else None,
        task_name=summary["name"],
        outcome=summary["outcome"],
        model=parts["model"],
        prompt_name=parts["prompt_name"],
        prompt_version=parts["prompt_version"],
        service_name=parts["service_name"],
        start_time=start,
        latency_ms=float(latency) if latency is not None else None,
        cost_usd=cost,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        total_tokens=tokens,
        spans=detail.spans,
        retrievals=[
            {"span_id": s["span_id"], "name": s["name"], "documents": found.get(s["span_id"], 0)} for s in retrievals
        ],
        metadata=parts["metadata"],
    )


def _document(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: d.get(k) for k in ("id", "score", "content", "metadata", "span_id")}


def _fallback_messages(text_in: str | None, text_out: str | None) -> list[dict[str, Any]]:
    out = [{"role": "user", "content": text_in}] if text_in is not None else []
    return out + ([{"role": "assistant", "content": text_out}] if text_out is not None else [])


def _first(content: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((content[k] for k in keys if content.get(k) is not None), None)


def _tool_calls(spans: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The trace's tool calls (spans in start order): requested by an LLM, run by a tool span, or both."""
    calls: list[dict[str, Any]] = []
    for s in spans:
        if s["category"] == "llm" and s["duplicate_of"] is None:
            for m in s["messages"]:
                for c in m["tool_calls"] if m["direction"] == "output" else ():
                    call = {"name": c["name"], "arguments": loads(c["arguments"]), "id": c["id"]}
                    calls.append(call | {"span_id": None, "llm_span_id": s["span_id"], "result": None, "at": s})
    for s in spans:
        if s["category"] != "tool":
            continue
        name = s["tool_name"] or s["name"]
        call_id = as_text(s["attributes"].get(TOOL_CALL_ID))
        args, result = _first(s["content"], TOOL_ARGUMENT_KEYS), _first(s["content"], TOOL_RESULT_KEYS)
        open_calls = [c for c in calls if c["span_id"] is None and c["llm_span_id"] is not None]
        asked = [c for c in open_calls if call_id is not None and c["id"] == call_id]
        asked = asked or [
            c for c in open_calls if c["name"] == name and c["at"]["start_time_unix_nano"] <= s["start_time_unix_nano"]
        ]
        if asked:
            call = asked[0]
            if call["arguments"] is None:
                call["arguments"] = loads(args)
        else:
            call = {"name": name, "arguments": loads(args), "id": call_id, "llm_span_id": None, "at": s}
            calls.append(call)
        call.update(span_id=s["span_id"], result=loads(result))
    calls.sort(key=lambda c: c["at"]["start_time_unix_nano"])
    return calls


def from_example(project: str, example: Mapping[str, Any]) -> Target:
    """The target of one example of a frozen dataset version (a row of
    storage.datasets.EXAMPLE_SCHEMA, e.g. from read_examples(...).to_pylist())."""
    item_id = example["example_id"]
    tid, _, sid = item_id.partition(":")
    meta = _object(example.get("metadata"))
    messages = _list(example.get("input_messages"))
    docs = [d for d in _list(example.get("context_documents")) if isinstance(d, Mapping)]
    if not docs:
        docs = [{"content": c} for c in example.get("context") or []]
    span_id = example.get("span_id") or sid or None
    by_span: dict[str, int] = {}
    for d in docs:
        by_span[d.get("span_name") or "retrieval"] = by_span.get(d.get("span_name") or "retrieval", 0) + 1
    calls = [
        {"name": c.get("name"), "arguments": loads(c.get("arguments")), "id": c.get("id")}
        | {"span_id": None, "llm_span_id": None, "result": None}
        for m in messages
        if isinstance(m, Mapping)
        for c in m.get("tool_calls") or ()
        if isinstance(c, Mapping)
    ]
    tokens_in, tokens_out = _int(meta.get("input_tokens")), _int(meta.get("output_tokens"))
    total = (tokens_in or 0) + (tokens_out or 0) if tokens_in is not None or tokens_out is not None else None
    text_in, text_out = example.get("input"), example.get("actual_output")
    return Target(
        project=project,
        trace_id=example.get("trace_id") or tid or None,
        span_id=span_id,
        item_id=item_id,
        input=text_in,
        output=text_out,
        messages=[m for m in messages if isinstance(m, Mapping)] or _fallback_messages(text_in, text_out),
        documents=[_document(d) for d in docs],
        tool_calls=calls,
        expected_output=example.get("expected_output"),
        category=meta.get("category") if span_id else None,
        task_name=meta.get("trace_name" if span_id else "name"),
        outcome=meta.get("trace_outcome" if span_id else "outcome"),
        model=example.get("model"),
        prompt_name=example.get("prompt_name"),
        prompt_version=example.get("prompt_version"),
        service_name=example.get("service_name"),
        start_time=example.get("trace_start"),
        latency_ms=_float(meta.get("duration_ms")),
        cost_usd=_float(meta.get("cost_usd")),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        total_tokens=total,
        retrievals=[{"span_id": None, "name": name, "documents": n} for name, n in by_span.items()],
        metadata=meta,
    )


def _object(value: Any) -> dict[str, Any]:
    v = _parse(value)
    return dict(v) if isinstance(v, Mapping) else {}


def _list(value: Any) -> list[Any]:
    v = _parse(value)
    return list(v) if isinstance(v, list) else []


def _parse(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def iter_targets(
    an: Analytics,
    project: str,
    trace_ids: Iterable[str],
    target: str = "trace",
    around: datetime | tuple[datetime, datetime] | None = None,
    batch: int = BATCH,
) -> Iterator[list[Target]]:
    """The targets of the traces, a batch of traces at a time (each batch read in three queries).

    `target`: "trace" (one target per trace) or a span category (one per span of that
    category, in tree order; a second span of the same call, storage.call_pairs, is left out).
    `around`: when the traces started — an instant (spans from 5 min before to 1 h after it
    are read) or (earliest, latest) start; None reads the whole lake. Traces with no span
    found are left out."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    since = until = None
    if around is not None:
        first, last = around if isinstance(around, tuple) else (around, around)
        since, until = first - SKEW, last + HORIZON
    ids = list(dict.fromkeys(t.strip().lower() for t in trace_ids))
    try:
        for i in range(0, len(ids), batch):
            with _gc_paused():
                out = _batch(an, project, ids[i : i + batch], target, since, until)
            yield out
    finally:
        gc.unfreeze()  # nothing stays out of the collector's reach after the last batch


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is built: it makes hundreds of thousands of
    small acyclic dicts, and the collector's passes over them were a third of the time.
    Reference counting still frees everything; the pause lasts one batch."""
    was = gc.isenabled()
    gc.unfreeze()
    gc.disable()
    try:
        yield
    finally:
        if was:
            # What the batch built is kept by the caller for a while: out of the collector's
            # generations (freeze), so turning it back on does not start with a pass over all of
            # it. Reference counting still frees it; gc.unfreeze() at the next batch returns the
            # survivors to the oldest generation.
            gc.freeze()
            gc.enable()


def _batch(
    an: Analytics, project: str, ids: list[str], target: str, since: datetime | None, until: datetime | None
) -> list[Target]:
    details = trace_details(an, ids, project, since, until, SPAN_FIELDS, with_markers=False, lazy_attributes=True)
    out: list[Target] = []
    for tid in ids:
        d = details.get(tid)
        if d is None:
            continue
        if target == "trace":
            out.append(from_detail(d))
        else:
            spans = (s for s in d.spans if s["category"] == target and s["duplicate_of"] is None)
            out += [from_detail(d, s["span_id"]) for s in spans]
    return out


def load_targets(
    an: Analytics,
    project: str,
    trace_ids: Iterable[str],
    target: str = "trace",
    around: datetime | tuple[datetime, datetime] | None = None,
) -> list[Target]:
    """Every target of the traces (iter_targets, all batches)."""
    return [t for chunk in iter_targets(an, project, trace_ids, target, around) for t in chunk]
