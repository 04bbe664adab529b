"""Dataset examples from labelled traces and spans, and the items a filter selects.

An example is built from the trace as stored (analytics.traces.detail.trace_detail):

- a trace: input = the task's (or root's) input, else the last user message of the first
  model call; input messages = that call's input; output = the task's output, else the last
  assistant message of the conversation; context = every retrieved document of the trace;
- a span: its own input and output messages (or input/output attributes); context = the
  documents retrieved by spans that ended before it started (or by the span itself).

Prompt variables and template come from OpenInference's `llm.prompt_template.*` or
OpenLLMetry's `traceloop.prompt.template*`. Labels are the item's current labels (for a trace:
those on the trace or any of its spans); `expected_output` is the newest one a reviewer
(source `human`) set; verdict, failure mode, score and comment are the latest reviewer label's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import polars as pl
import pyarrow as pa

from spanlake.analytics.labels import current_labels, current_labels_sql
from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.detail import TraceDetail, trace_detail
from spanlake.analytics.traces.filters import MAX_PAGE, Page, TraceFilters
from spanlake.analytics.traces.messages import as_text, loads
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.datasets import (
    EXAMPLE_SCHEMA,
    Version,
    freeze,
    list_datasets,
    members,
    read_examples,
    read_version,
)

DASHBOARD_URL_ENV = "SPANLAKE_DASHBOARD_URL"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"
MAX_MATCHES = 10_000
INPUT_KEYS = ("gen_ai.task.input", "input.value", "traceloop.entity.input", "gen_ai.tool.call.arguments")
INPUT_KEYS += ("gen_ai.retrieval.query.text", "gen_ai.prompt")
OUTPUT_KEYS = ("gen_ai.task.output", "output.value", "traceloop.entity.output", "gen_ai.tool.call.result")
OUTPUT_KEYS += ("gen_ai.completion",)
VARIABLE_KEYS = ("llm.prompt_template.variables", "traceloop.prompt.template_variables")
TEMPLATE_KEYS = ("llm.prompt_template.template", "traceloop.prompt.template")
LABEL_FIELDS = ("source", "author", "created_at", "span_id", "verdict", "failure_mode", "score", "value", "comment")
LABEL_FIELDS += ("expected_output",)


def trace_url(project: str, trace_id: str, start: datetime | None, base: str | None = None) -> str:
    """Link to the trace in the dashboard ($SPANLAKE_DASHBOARD_URL, default http://127.0.0.1:8501)."""
    base = (base or os.environ.get(DASHBOARD_URL_ENV) or DEFAULT_DASHBOARD_URL).rstrip("/")
    query = {"trace": trace_id, "project": project} | ({"t": start.isoformat()} if start else {})
    return f"{base}/trace?{urlencode(query)}"


def _first(content: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for k in keys:
        if content.get(k) is not None:
            return as_text(content[k])
    return None


def chat_messages(msgs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as `{role, content?, tool_calls?, tool_call_id?}` (empty fields left out)."""
    keep = ("role", "content", "tool_calls", "tool_call_id")
    return [{k: m[k] for k in keep if m.get(k) not in (None, [])} | {"role": m["role"]} for m in msgs]


def _last(msgs: Sequence[Mapping[str, Any]], role: str) -> str | None:
    return next((m["content"] for m in reversed(msgs) if m["role"] == role and m["content"]), None)


def _variables(spans: Sequence[Mapping[str, Any]]) -> tuple[str | None, Any]:
    template, variables = None, None
    for s in spans:
        c = s["content"]
        if not c:
            continue
        template = template or _first(c, TEMPLATE_KEYS)
        if variables is None:
            v = next((loads(c[k]) for k in VARIABLE_KEYS if c.get(k) is not None), None)
            variables = v if isinstance(v, Mapping) else None
    return template, variables


def item_parts(
    d: TraceDetail, span_id: str | None, summary: Mapping[str, Any] | None = None, example: bool = True
) -> dict[str, Any] | None:
    """Input, output, context and metadata of the trace (span_id None) or one span of it (None
    when the trace has no such span): the example's columns, plus `head` (the task, root or
    chosen span) and `documents` (the retrieved documents in scope, as TraceDetail.documents).
    `summary`: d.summary(), when the caller has it already. `example` False leaves out the
    columns only a dataset example has (input messages, prompt template and variables, context)."""
    spans = d.spans_by_start
    llm = [s for s in spans if s["category"] == "llm" and s["messages"]]
    summary = summary if summary is not None else d.summary()
    if span_id is None:
        head = next((s for s in spans if s["category"] == "task" or s["task_name"]), None)
        head = head or next((s for s in spans if s["is_root"]), spans[0])
        first_in = [m for m in (llm[0]["messages"] if llm else []) if m["direction"] == "input"]
        inputs = first_in
        text_in = _first(head["content"], INPUT_KEYS) or _last(first_in, "user")
        outputs = [m for m in d.conversation if m["direction"] == "output"]
        text_out = _first(head["content"], OUTPUT_KEYS) or _last(outputs, "assistant")
        docs = d.documents
        scope = spans
        model_span = llm[-1] if llm else head
        meta = {k: v for k, v in summary.items() if k not in ("start_time",)}
    else:
        head = next((s for s in spans if s["span_id"] == span_id), None)
        if head is None:
            return None
        inputs = [m for m in head["messages"] if m["direction"] == "input"]
        outs = [m for m in head["messages"] if m["direction"] == "output"]
        text_in = _last(inputs, "user") or _first(head["content"], INPUT_KEYS)
        text_out = _last(outs, "assistant") or _first(head["content"], OUTPUT_KEYS)
        start = head["start_time_unix_nano"]
        before = {s["span_id"] for s in spans if s["start_time_unix_nano"] + s["duration_ns"] <= start}
        docs = [x for x in d.documents if x["span_id"] in before or x["span_id"] == span_id]
        scope = [head] + [s for s in spans if s["span_id"] != span_id]
        model_span = head
        meta = {
            "span_name": head["name"],
            "category": head["category"],
            "status_code": head["status_code"],
            "duration_ms": head["duration_ms"],
            "cost_usd": head["cost_usd"],
            "input_tokens": head["input_tokens"],
            "output_tokens": head["output_tokens"],
            "trace_name": summary["name"],
            "trace_outcome": summary["outcome"],
        }
    parts = {
        "input": text_in,
        "actual_output": text_out,
        "model": model_span["response_model"] or model_span["request_model"],
        "prompt_name": head["prompt_name"] or next((s["prompt_name"] for s in spans if s["prompt_name"]), None),
        "prompt_version": head["prompt_version"]
        or next((s["prompt_version"] for s in spans if s["prompt_version"]), None),
        "service_name": head["service_name"],
        "trace_start": d.start_time,
        "metadata": meta,
        "head": head,
        "documents": docs,
    }
    if example:
        if not inputs and text_in is not None:
            inputs = [{"role": "user", "content": text_in}]
        parts["input_messages"] = chat_messages(inputs)
        parts["prompt_template"], parts["prompt_variables"] = _variables(scope)
        parts["context"] = [x["content"] for x in docs if x["content"] is not None]
        keys = ("id", "score", "content", "metadata", "span_name")
        parts["context_documents"] = [{k: x.get(k) for k in keys} for x in docs]
    return parts


def _label_fields(labels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    human = sorted((r for r in labels if r["source"] == "human"), key=lambda r: r["created_at"], reverse=True)
    latest = human[0] if human else {}
    expected = next((r for r in human if r["expected_output"] is not None), None)
    return {
        "expected_output": expected["expected_output"] if expected else None,
        "verdict": latest.get("verdict"),
        "failure_mode": latest.get("failure_mode"),
        "score": latest.get("score"),
        "comment": latest.get("comment"),
        "labels": [{k: r.get(k) for k in LABEL_FIELDS} for r in sorted(labels, key=lambda r: r["created_at"])],
    }


def _json(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v, option=orjson.OPT_NAIVE_UTC, default=str).decode()


@dataclass
class BuildResult:
    """Examples built (EXAMPLE_SCHEMA), members whose trace was found, and those that were not."""

    examples: pa.Table
    missing: list[tuple[str, str | None]]
    carried: int = 0  # taken unchanged from the previous version (trace no longer in the lake)


def build_examples(
    an: Analytics,
    project: str,
    dataset: str,
    previous: pa.Table | None = None,
    progress: Callable[[int, int], None] | None = None,
    base_url: str | None = None,
) -> BuildResult:
    """The dataset's examples as of now. A member whose trace is gone from the lake (retention)
    keeps its row from `previous` (the last frozen version) if it has one."""
    items = members(an.lake, project, dataset).to_dicts()
    trace_ids = sorted({m["trace_id"] for m in items})
    labels = current_labels(an.lake, project=project, trace_ids=trace_ids).to_dicts() if trace_ids else []
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for r in labels:
        by_trace.setdefault(r["trace_id"], []).append(r)
    old = {r["example_id"]: r for r in previous.to_pylist()} if previous is not None else {}
    rows: list[dict[str, Any]] = []
    missing: list[tuple[str, str | None]] = []
    carried = 0
    details: dict[str, TraceDetail | None] = {}
    for i, m in enumerate(items):
        tid, sid = m["trace_id"], m["span_id"]
        example_id = tid if sid is None else f"{tid}:{sid}"
        if tid not in details:
            details[tid] = trace_detail(an, tid, project, m["trace_start"])
        d = details[tid]
        parts = item_parts(d, sid) if d is not None else None
        if parts is None:
            if example_id in old:
                rows.append(old[example_id])
                carried += 1
            else:
                missing.append((tid, sid))
            continue
        item_labels = [r for r in by_trace.get(tid, []) if sid is None or r["span_id"] == sid]
        lab = _label_fields(item_labels)
        rows.append(
            parts
            | lab
            | {
                "example_id": example_id,
                "project": project,
                "dataset": dataset,
                "trace_id": tid,
                "span_id": sid,
                "input_messages": _json(parts["input_messages"]),
                "prompt_variables": _json(parts["prompt_variables"]),
                "context_documents": _json(parts["context_documents"]),
                "labels": _json(lab["labels"]),
                "metadata": _json(parts["metadata"] | {"added_metadata": loads(m["metadata"])}),
                "trace_url": trace_url(project, tid, parts["trace_start"], base_url),
                "added_at": m["added_at"],
                "added_by": m["added_by"],
            }
        )
        if progress is not None:
            progress(i + 1, len(items))
    table = pa.Table.from_pylist([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows], schema=EXAMPLE_SCHEMA)
    return BuildResult(table, missing, carried)


# --- selecting items by filter ------------------------------------------------------------------


@dataclass(frozen=True)
class LabelFilter:
    """Which labels an item must have (current labels). `level` 'trace' adds whole traces
    (a label anywhere in the trace matches); 'span' adds each labelled span that matches."""

    labelled: bool = False
    source: str | None = None
    author: str | None = None
    verdict: str | None = None
    failure_mode: str | None = None
    has_expected_output: bool = False
    level: str = "trace"

    def __post_init__(self) -> None:
        if self.level not in ("trace", "span"):
            raise ValueError("level must be trace or span")

    @property
    def active(self) -> bool:
        return (
            self.labelled
            or self.level == "span"
            or any(v is not None for v in (self.source, self.author, self.verdict, self.failure_mode))
            or self.has_expected_output
        )


def _label_matches(an: Analytics, project: str | None, lf: LabelFilter) -> pl.DataFrame:
    """(project, trace_id, span_id) of current labels matching `lf` (span_id None at trace level)."""
    params: dict[str, Any] = {}
    preds = []
    for col, value in (
        ("source", lf.source),
        ("author", lf.author),
        ("verdict", lf.verdict),
        ("failure_mode", lf.failure_mode),
    ):
        if value is not None:
            params[col] = value
            preds.append(f"{col} = ${col}")
    if lf.has_expected_output:
        preds.append("expected_output IS NOT NULL")
    if lf.level == "span":
        preds.append("span_id IS NOT NULL")
    scope = "TRUE"
    if project is not None:
        params["project"] = project
        scope = "project = $project"
    span = "span_id" if lf.level == "span" else "CAST(NULL AS VARCHAR) AS span_id"
    # Current labels first, then the conditions (a later "pass" replaces an earlier "fail").
    sql = f"""SELECT DISTINCT project, trace_id, {span} FROM ({current_labels_sql(scope)})
      WHERE {" AND ".join(preds) or "TRUE"}"""
    return pl.from_arrow(an.lake.query(sql, params or None))  # type: ignore[return-value]


def match_items(
    an: Analytics, tf: TraceFilters, lf: LabelFilter | None = None, limit: int = MAX_MATCHES
) -> pl.DataFrame:
    """Items (project, trace_id, span_id, trace_start) whose trace matches `tf` (the trace list's
    filters: analytics.traces.trace_list.list_traces) and whose current labels match `lf`, oldest
    trace first, at most `limit`."""
    lf = lf or LabelFilter()
    wanted: dict[tuple[str, str], list[str | None]] | None = None
    if lf.active:
        wanted = {}
        for r in _label_matches(an, tf.project, lf).iter_rows(named=True):
            wanted.setdefault((r["project"], r["trace_id"]), []).append(r["span_id"])
    out: list[dict[str, Any]] = []
    offset = 0
    while len(out) < limit and (wanted is None or wanted):
        page = list_traces(an, tf, Page(sort="start_time", descending=False, limit=MAX_PAGE, offset=offset))
        for r in page.rows.select("project", "trace_id", "start_time").iter_rows(named=True):
            key = (r["project"], r["trace_id"])
            spans = [None] if wanted is None else wanted.pop(key, [])
            out += [
                {"project": key[0], "trace_id": key[1], "span_id": s, "trace_start": r["start_time"]} for s in spans
            ]
        if not page.has_next or not page.rows.height:
            break
        offset += page.rows.height
    schema = {
        "project": pl.String,
        "trace_id": pl.String,
        "span_id": pl.String,
        "trace_start": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(out[:limit], schema=schema)


@dataclass
class Frozen:
    """A frozen version, whether this call created it, and what the build could not include."""

    version: Version
    created: bool
    missing: list[tuple[str, str | None]]
    carried: int


def freeze_dataset(
    an: Analytics,
    project: str,
    dataset: str,
    author: str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Frozen:
    """Build the dataset's examples now and freeze them as the next version (or return the
    latest version when nothing changed since). Raises LookupError for an unknown dataset."""
    dd = an.lake.data_dir
    previous = read_version(dd, project, dataset)
    info = list_datasets(an.lake, project).filter(pl.col("dataset") == dataset)
    if previous is None and info.is_empty():
        raise LookupError(f"no dataset {dataset!r} in project {project!r}")
    old = read_examples(dd, previous) if previous is not None else None
    built = build_examples(an, project, dataset, old, progress)
    description = info["description"][0] if info.height else None
    version, created = freeze(dd, project, dataset, built.examples, author, description, force)
    return Frozen(version, created, built.missing, built.carried)
