"""The lake's tables, declared once.

Every other part of spanlake imports from here: the collector builds rows keyed by these
column names, the writer uses the Arrow schemas, the reader derives its DuckDB views, and
docs/schema.md is generated from the docstrings (a test keeps it in sync).

Changing a table is a schema version step: bump SCHEMA_VERSION, append the column with
`added_in=SCHEMA_VERSION` (never reorder or retype), and describe the migration in
collector/schema_doc.py's MIGRATIONS (docs/schema.md). Files written under an older version
read with NULL in the new columns (storage.schema_steps), whoever reads them: the views,
compaction, retention. A normalized column appended so is filled by decode._span_row after
the stored ones (tests/test_contracts.py checks the layout).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 5
SCHEMA_VERSION_KEY = b"spanlake.schema_version"
TABLE_KEY = b"spanlake.table"

TIMESTAMP = pa.timestamp("us", tz="UTC")
JSON = pa.string()  # JSON text; query with DuckDB's json functions or the attr() macro


@dataclass(frozen=True)
class Column:
    """One column of a lake table.

    `normalized`: filled by collector.normalize from the span's attributes (whatever dialect
    sent them). `scanned`: carried by the span relation every report reads (analytics.spans);
    the others (JSON blobs, exact nanosecond times, ids only the trace view shows) are read
    only by queries that name them. `added_in`: the schema version that appended the column
    (files written before it lack it: storage.schema_steps reads them with NULL there).
    """

    name: str
    type: pa.DataType
    nullable: bool
    doc: str
    normalized: bool = False
    scanned: bool = False
    added_in: int = 1


@dataclass(frozen=True)
class Table:
    """A lake table: its stored columns and the hive partition keys in its path."""

    name: str
    columns: tuple[Column, ...]
    partitions: tuple[Column, ...]
    doc: str
    unique_key: tuple[str, ...]  # a row delivered twice has the same key: readers count it once
    order_by: tuple[str, ...]  # sort order within a file (time first, for row-group pruning)

    @property
    def arrow_schema(self) -> pa.Schema:
        """Schema of the Parquet files (partition keys live in the path, not the file)."""
        fields = [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns]
        return pa.schema(
            fields,
            metadata={SCHEMA_VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: self.name.encode()},
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return self.partitions + self.columns


PARTITIONS = (
    Column("project", pa.string(), False, "Project the row belongs to (path key `project=`).", scanned=True),
    Column("date", pa.date32(), False, "UTC date of the row's time: span start, log event time (path key `date=`)."),
    Column("hour", pa.int32(), False, "UTC hour of the row's time, 0-23 (path key `hour=`)."),
)

SPANS = Table(
    name="spans",
    doc="One row per span as received; the `spans` view counts each (project, trace_id, span_id) once.",
    partitions=PARTITIONS,
    unique_key=("trace_id", "span_id"),
    order_by=("start_time", "trace_id", "span_id"),
    columns=(
        Column("trace_id", pa.string(), False, "32 lowercase hex characters.", scanned=True),
        Column("span_id", pa.string(), False, "16 lowercase hex characters.", scanned=True),
        Column("parent_span_id", pa.string(), True, "Parent's span id; NULL for a root span.", scanned=True),
        Column("trace_state", pa.string(), True, "W3C tracestate, when sent."),
        Column("name", pa.string(), False, "Span name.", scanned=True),
        Column("kind", pa.string(), False, "UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER or CONSUMER."),
        Column("start_time", TIMESTAMP, False, "Start, UTC, microsecond precision.", scanned=True),
        Column("end_time", TIMESTAMP, False, "End, UTC, microsecond precision."),
        Column("start_time_unix_nano", pa.int64(), False, "Exact start as sent, ns since the epoch."),
        Column("duration_ns", pa.int64(), False, "Exact end minus start, ns.", scanned=True),
        Column("status_code", pa.string(), False, "UNSET, OK or ERROR.", scanned=True),
        Column("status_message", pa.string(), True, "Status description, when sent.", scanned=True),
        Column("service_name", pa.string(), True, "Resource attribute `service.name`.", scanned=True),
        Column("scope_name", pa.string(), True, "Instrumentation scope name."),
        Column("scope_version", pa.string(), True, "Instrumentation scope version."),
        Column(
            "category",
            pa.string(),
            False,
            "Normalized step type: llm, embedding, retrieval, rerank, tool, agent, chain, guardrail, task or other.",
            normalized=True,
            scanned=True,
        ),
        Column(
            "operation", pa.string(), True, "GenAI operation (`gen_ai.operation.name` or equivalent).", normalized=True
        ),
        Column(
            "provider",
            pa.string(),
            True,
            "GenAI provider (`gen_ai.provider.name` or equivalent).",
            normalized=True,
            scanned=True,
        ),
        Column("request_model", pa.string(), True, "Model requested.", normalized=True, scanned=True),
        Column("response_model", pa.string(), True, "Model that answered.", normalized=True, scanned=True),
        Column(
            "input_tokens",
            pa.int64(),
            True,
            "Input tokens, cached ones included (OTel meaning).",
            normalized=True,
            scanned=True,
        ),
        Column(
            "output_tokens",
            pa.int64(),
            True,
            "Output tokens, reasoning ones included (OTel meaning).",
            normalized=True,
            scanned=True,
        ),
        Column(
            "cache_read_tokens",
            pa.int64(),
            True,
            "Input tokens served from cache (subset of input).",
            normalized=True,
            scanned=True,
        ),
        Column(
            "cache_write_tokens",
            pa.int64(),
            True,
            "Input tokens written to cache (subset of input).",
            normalized=True,
            scanned=True,
        ),
        Column(
            "reasoning_tokens",
            pa.int64(),
            True,
            "Reasoning output tokens (subset of output).",
            normalized=True,
            scanned=True,
        ),
        Column("total_tokens", pa.int64(), True, "Total tokens as sent, else input + output.", normalized=True),
        Column("finish_reasons", pa.list_(pa.string()), True, "One finish reason per generation.", normalized=True),
        Column(
            "time_to_first_token_ms",
            pa.float64(),
            True,
            "Time to the first streamed chunk, ms.",
            normalized=True,
            scanned=True,
        ),
        Column("session_id", pa.string(), True, "Session or conversation id.", normalized=True),
        Column("user_id", pa.string(), True, "End user id.", normalized=True),
        Column("prompt_name", pa.string(), True, "Prompt or template name.", normalized=True, scanned=True),
        Column("prompt_version", pa.string(), True, "Prompt or template version.", normalized=True, scanned=True),
        Column(
            "error_type",
            pa.string(),
            True,
            "`error.type`, or the exception type of an error event.",
            normalized=True,
            scanned=True,
        ),
        Column(
            "task_name",
            pa.string(),
            True,
            "Set when the app marked this span as a task.",
            normalized=True,
            scanned=True,
        ),
        Column(
            "task_outcome",
            pa.string(),
            True,
            "Outcome the app recorded: success or failure.",
            normalized=True,
            scanned=True,
        ),
        Column(
            "task_outcome_reason", pa.string(), True, "Why the task failed, or a note.", normalized=True, scanned=True
        ),
        Column(
            "validation_name",
            pa.string(),
            True,
            "Set when the span is a validation or guardrail.",
            normalized=True,
            scanned=True,
        ),
        Column("validation_passed", pa.bool_(), True, "The validation's verdict.", normalized=True, scanned=True),
        Column("tool_name", pa.string(), True, "Tool called by this span.", normalized=True, scanned=True),
        Column(
            "reported_cost",
            pa.float64(),
            True,
            "Cost (USD) the instrumentation sent, if any.",
            normalized=True,
            scanned=True,
        ),
        Column("flags", pa.int64(), True, "OTLP span flags."),
        Column("attributes", JSON, False, "Every span attribute except message content, as a JSON object."),
        Column(
            "content",
            JSON,
            True,
            "Message-content attributes (prompts, completions, documents, tool I/O) as a JSON object; "
            "kept apart so metric scans never read it.",
        ),
        Column("events", JSON, True, "Span events: JSON list of {time_unix_nano, name, attributes}."),
        Column("links", JSON, True, "Span links: JSON list of {trace_id, span_id, trace_state, attributes}."),
        Column("resource_attributes", JSON, False, "Resource attributes as a JSON object."),
        Column("scope_attributes", JSON, True, "Instrumentation scope attributes as a JSON object."),
        Column("dropped_attributes_count", pa.int64(), True, "Attributes the sender dropped."),
        Column("dropped_events_count", pa.int64(), True, "Events the sender dropped."),
        Column("dropped_links_count", pa.int64(), True, "Links the sender dropped."),
        Column("ingested_at", TIMESTAMP, False, "When the collector made the span durable."),
        Column(
            "cache_write_1h_tokens",
            pa.int64(),
            True,
            "Cache writes with a 1-hour lifetime (part of cache_write_tokens, the rest 5-minute ones; "
            "priced at their own rate). NULL in files written before schema version 5.",
            normalized=True,
            scanned=True,
            added_in=5,
        ),
    ),
)

LOGS = Table(
    name="logs",
    doc="OTLP log records (GenAI events carry prompts and completions here), joined to spans by ids.",
    partitions=PARTITIONS,
    unique_key=("record_id",),
    order_by=("time", "record_id"),
    columns=(
        Column("record_id", pa.string(), False, "Hash of the record as sent; a re-sent record counts once."),
        Column("trace_id", pa.string(), True, "Trace the record belongs to, if any."),
        Column("span_id", pa.string(), True, "Span the record belongs to, if any."),
        Column("time", TIMESTAMP, False, "Event time (observed time when the event time is unset)."),
        Column("time_unix_nano", pa.int64(), False, "Exact event time as sent (0 when unset)."),
        Column("observed_time_unix_nano", pa.int64(), False, "Exact observed time as sent."),
        Column("severity_number", pa.int32(), True, "OTLP severity number."),
        Column("severity_text", pa.string(), True, "Severity text."),
        Column("event_name", pa.string(), True, "Event name (`event_name` field or `event.name` attribute)."),
        Column("body", JSON, True, "Record body as JSON."),
        Column("attributes", JSON, False, "Record attributes as a JSON object."),
        Column("resource_attributes", JSON, False, "Resource attributes as a JSON object."),
        Column("service_name", pa.string(), True, "Resource attribute `service.name`."),
        Column("scope_name", pa.string(), True, "Instrumentation scope name."),
        Column("scope_version", pa.string(), True, "Instrumentation scope version."),
        Column("flags", pa.int64(), True, "OTLP log record flags."),
        Column("dropped_attributes_count", pa.int64(), True, "Attributes the sender dropped."),
        Column("ingested_at", TIMESTAMP, False, "When the collector made the record durable."),
    ),
)

LABELS = Table(
    name="labels",
    doc=(
        "Label events on traces and spans: human reviews, end-user feedback, automated judges. "
        "Append-only: a correction is a new event, so history is kept; the latest event per "
        "(trace, span, source, author) is the current label."
    ),
    partitions=PARTITIONS,
    unique_key=("label_id",),
    order_by=("created_at", "label_id"),
    columns=(
        Column("label_id", pa.string(), False, "Unique id of this label event; a re-sent event counts once."),
        Column("trace_id", pa.string(), False, "Labelled trace."),
        Column("span_id", pa.string(), True, "Labelled span; NULL labels the whole trace."),
        Column("source", pa.string(), False, "human, user_feedback, judge or api."),
        Column("author", pa.string(), True, "Who set it: reviewer, end-user id, judge name."),
        Column("created_at", TIMESTAMP, False, "When the label was set (partitions the table)."),
        Column("verdict", pa.string(), True, "pass or fail."),
        Column("failure_mode", pa.string(), True, "Failure mode from the project's list (e.g. hallucination)."),
        Column("score", pa.float64(), True, "Numeric score."),
        Column("value", pa.string(), True, "End-user feedback: up or down."),
        Column("comment", pa.string(), True, "Free-text note or comment."),
        Column("expected_output", pa.string(), True, "The expected (corrected) output."),
        Column("metadata", JSON, True, "Anything else, as a JSON object."),
        Column("ingested_at", TIMESTAMP, False, "When the collector made the label durable."),
    ),
)

DATASET_EVENTS = Table(
    name="dataset_events",
    doc=(
        "Dataset membership events: a dataset is created, a trace or span is added to it or removed. "
        "Append-only like labels; a dataset's members are the items whose latest event is an add. "
        "Frozen versions of a dataset live apart, under `lake/datasets/` (see docs/datasets.md)."
    ),
    partitions=PARTITIONS,
    unique_key=("event_id",),
    order_by=("created_at", "event_id"),
    columns=(
        Column("event_id", pa.string(), False, "Unique id of this event; a re-sent event counts once."),
        Column("dataset", pa.string(), False, "Dataset name (unique within the project)."),
        Column("op", pa.string(), False, "create, add or remove."),
        Column("trace_id", pa.string(), True, "Trace added or removed; NULL for create."),
        Column("span_id", pa.string(), True, "Span added or removed; NULL for the whole trace."),
        Column("author", pa.string(), True, "Who did it."),
        Column("created_at", TIMESTAMP, False, "When it was done (partitions the table)."),
        Column("trace_start", TIMESTAMP, True, "Start of the trace, when the sender knew it (a read hint)."),
        Column("description", pa.string(), True, "create: what the dataset is for."),
        Column("metadata", JSON, True, "Anything else as a JSON object (e.g. the filter that selected the item)."),
        Column("ingested_at", TIMESTAMP, False, "When the collector made the event durable."),
    ),
)

METRICS = Table(
    name="metrics",
    doc=(
        "OTLP metric data points, one row per point (GenAI client metrics such as "
        "`gen_ai.client.token.usage` among them). Cumulative points are stored as sent, running "
        "totals included; readers take the latest point of a series (docs/analytics.md)."
    ),
    partitions=PARTITIONS,
    unique_key=("point_id",),
    order_by=("time", "point_id"),
    columns=(
        Column(
            "point_id",
            pa.string(),
            False,
            "Hash of the point with its metric, scope and resource; a re-sent point counts once.",
        ),
        Column("metric_name", pa.string(), False, "Metric name, e.g. `gen_ai.client.token.usage`."),
        Column("description", pa.string(), True, "Metric description, when sent."),
        Column("unit", pa.string(), True, "Metric unit (UCUM), e.g. `{token}`, `s`."),
        Column("kind", pa.string(), False, "gauge, sum, histogram, exponential_histogram or summary."),
        Column("temporality", pa.string(), True, "delta or cumulative (sums and histograms); NULL otherwise."),
        Column("monotonic", pa.bool_(), True, "Whether a sum only goes up; NULL for other kinds."),
        Column("start_time", TIMESTAMP, True, "Start of the point's aggregation window, UTC; NULL when unset."),
        Column("time", TIMESTAMP, False, "End of the point's window (its time), UTC; partitions the table."),
        Column("start_time_unix_nano", pa.int64(), False, "Exact start as sent (0 when unset)."),
        Column("time_unix_nano", pa.int64(), False, "Exact time as sent."),
        Column("value", pa.float64(), True, "Gauge or sum value (integers as doubles); NULL for other kinds."),
        Column("count", pa.int64(), True, "Histogram or summary: number of measurements."),
        Column("sum", pa.float64(), True, "Histogram or summary: sum of the measurements, when sent."),
        Column("min", pa.float64(), True, "Histogram: smallest measurement, when sent."),
        Column("max", pa.float64(), True, "Histogram: largest measurement, when sent."),
        Column("bucket_counts", pa.list_(pa.int64()), True, "Histogram: count per bucket (one more than the bounds)."),
        Column("explicit_bounds", pa.list_(pa.float64()), True, "Histogram: upper bounds of the buckets but the last."),
        Column(
            "exponential",
            JSON,
            True,
            "Exponential histogram buckets: {scale, zero_count, zero_threshold, positive: {offset, bucket_counts}, "
            "negative: {...}}.",
        ),
        Column("quantiles", JSON, True, "Summary: list of {quantile, value}."),
        Column("flags", pa.int64(), True, "OTLP data point flags (1: no recorded value)."),
        Column("exemplars", JSON, True, "Exemplars: list of {time_unix_nano, value, trace_id, span_id, attributes}."),
        Column("attributes", JSON, False, "The point's attributes as a JSON object."),
        Column("resource_attributes", JSON, False, "Resource attributes as a JSON object."),
        Column("service_name", pa.string(), True, "Resource attribute `service.name`."),
        Column("scope_name", pa.string(), True, "Instrumentation scope name."),
        Column("scope_version", pa.string(), True, "Instrumentation scope version."),
        Column("scope_attributes", JSON, True, "Instrumentation scope attributes as a JSON object."),
        Column("metric_metadata", JSON, True, "The metric's `metadata` key-values as a JSON object, when sent."),
        Column("ingested_at", TIMESTAMP, False, "When the collector made the point durable."),
    ),
)

TABLES = {t.name: t for t in (SPANS, LOGS, LABELS, DATASET_EVENTS, METRICS)}

# Columns the `spans` view derives on read (not stored).
SPANS_DERIVED = (
    Column("duration_ms", pa.float64(), False, "duration_ns / 1e6."),
    Column("is_root", pa.bool_(), False, "True when parent_span_id is NULL or the parent is remote (flags bit 9)."),
)

TRACES_COLUMNS = (
    Column("project", pa.string(), False, "Project."),
    Column("trace_id", pa.string(), False, "Trace id."),
    Column("root_span_id", pa.string(), True, "Root span's id; NULL while the root has not arrived."),
    Column("root_name", pa.string(), True, "Root span's name."),
    Column("service_name", pa.string(), True, "Root span's service (else any span's)."),
    Column("start_time", TIMESTAMP, False, "Earliest span start."),
    Column("end_time", TIMESTAMP, False, "Latest span end."),
    Column("duration_ms", pa.float64(), False, "Root span's duration, else end_time - start_time."),
    Column("span_count", pa.int64(), False, "Distinct spans received so far."),
    Column("llm_calls", pa.int64(), False, "Spans of category llm; a call traced twice counts once."),
    Column("input_tokens", pa.int64(), False, "Sum of input tokens of llm and embedding spans (each call once)."),
    Column("output_tokens", pa.int64(), False, "Sum of output tokens of llm and embedding spans (each call once)."),
    Column("total_tokens", pa.int64(), False, "Sum of total tokens of llm and embedding spans (each call once)."),
    Column("has_error", pa.bool_(), False, "True when any span has status ERROR."),
    Column("is_complete", pa.bool_(), False, "True once the root span has arrived."),
)

# Verdicts that decide task outcomes, as reports read them (analytics.runner, analytics.task_outcomes:
# the latest reviewer verdict on a task span wins, else the latest deciding judge's).
TASK_LABELS_COLUMNS = (
    Column("project", pa.string(), True, "Project."),
    Column("trace_id", pa.string(), True, "Trace id."),
    Column("span_id", pa.string(), True, "The task span."),
    Column("outcome", pa.string(), True, "success, failure or unknown."),
    Column("labeled_at", TIMESTAMP, True, "When the label was set."),
    Column("outcome_source", pa.string(), True, "label (a reviewer; also when NULL) or judge (a deciding evaluator)."),
)
TASK_LABELS_SCHEMA = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in TASK_LABELS_COLUMNS])

CATEGORIES = ("llm", "embedding", "retrieval", "rerank", "tool", "agent", "chain", "guardrail", "task", "other")
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")


class _Names:
    """Attribute access to column names, so a typo is an AttributeError, not a silent miss."""

    def __init__(self, table: Table) -> None:
        for c in table.all_columns:
            setattr(self, c.name, c.name)


S = _Names(SPANS)  # e.g. S.input_tokens == "input_tokens"
L = _Names(LOGS)
M = _Names(METRICS)
