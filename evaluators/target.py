"""`Target`: what an evaluator looks at — a trace, one span of it, or a dataset item.

This is the documented object a Python evaluator (`kind = "python"`, `module:function`)
receives, and the source of an LLM judge's template variables (`TEMPLATE_VARIABLES`).
Built from a trace in the lake (`from_trace`, via analytics.traces.detail) or from a frozen
dataset version's example (`from_example`); many traces at once by `load_targets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
    `[{id, score, content, metadata}]` retrieved before the output; `tool_calls`:
    `[{name, arguments, span_id}]` (arguments parsed from JSON when they are JSON, else the
    text); `spans`: the trace's spans as dicts of storage.schema.SPANS columns (JSON
    columns parsed), in tree order — empty for dataset items.
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
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """(project, trace or item id, span id): what one result per evaluator version is counted on."""
        return (self.project, self.trace_id or self.item_id or "", self.span_id)
