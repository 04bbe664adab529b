"""Contracts between the parts that share storage/schema.py, and between the CLI and README.

decode → writer → Parquet → DuckDB views must agree with the one schema declaration, column
for column and type for type; the column lists of normalization and of report scans derive
from it; docs/schema.md must be what the generator renders; every
CLI command must answer --help and be documented in README.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from spanlake.analytics.runner import lake_labels
from spanlake.analytics.spans import BASE_COLUMNS
from spanlake.cli.main import cli
from spanlake.collector import schema_doc
from spanlake.collector.decode import decode_logs, decode_spans
from spanlake.collector.decode_metrics import decode_metrics
from spanlake.collector.normalize import NORMALIZED_COLUMNS, normalize, normalize_reference
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import (
    LOGS,
    METRICS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    SPANS,
    SPANS_DERIVED,
    TABLE_KEY,
    TASK_LABELS_SCHEMA,
    TRACES_COLUMNS,
    Column,
    Table,
)
from spanlake.storage.trace_index import index_rows
from spanlake.storage.writer import LakeWriter, columns_to_table
from tests.factories import any_value, kvs, make_logs_request, make_metrics_request, make_request, make_span, make_sum

ROOT = Path(__file__).resolve().parents[1]
NOW = time.time_ns()

# Arrow type → the type DuckDB reports in DESCRIBE (stated here, not taken from reader.py).
DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.list_(pa.int64()): "BIGINT[]",
    pa.list_(pa.float64()): "DOUBLE[]",
}


def expected_view(columns: tuple[Column, ...]) -> list[tuple[str, str]]:
    return [(c.name, DUCKDB_TYPES[c.type]) for c in columns]


def span_request():
    root = make_span("answer_ticket", start_ns=NOW, attributes={"spanlake.task.name": "answer_ticket"})
    llm = make_span(
        "chat gpt-4o",
        trace_id=root.trace_id,
        parent_span_id=root.span_id,
        start_ns=NOW + 1_000,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.input.messages": '[{"role": "user", "parts": []}]',
        },
    )
    llm.events.add(time_unix_nano=NOW + 2_000, name="exception").attributes.extend(kvs({"exception.type": "E"}))
    llm.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    return make_request([root, llm], resource={"service.name": "svc", "spanlake.project": "shop"})


def logs_request():
    rec = LogRecord(time_unix_nano=NOW, event_name="gen_ai.client.inference.operation.details", severity_number=9)
    rec.body.CopyFrom(any_value({"content": "hi"}))
    rec.attributes.extend(kvs({"gen_ai.provider.name": "openai"}))
    return make_logs_request([rec, LogRecord(observed_time_unix_nano=NOW)])


def metrics_request():
    """One data point of each kind: sum, gauge, histogram, exponential histogram, summary."""
    counter = make_sum("gen_ai.client.token.usage", [(NOW - 1_000, NOW, 12, {"gen_ai.token.type": "input"})])
    counter.sum.data_points[0].exemplars.add(time_unix_nano=NOW, as_int=3, trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    gauge = make_sum("queue", [(0, NOW, 2.5, {})])
    gauge.gauge.data_points.extend(gauge.sum.data_points)
    hist = make_sum("h", [])
    hist.histogram.aggregation_temporality = 2
    hist.histogram.data_points.add(time_unix_nano=NOW, count=2, sum=3.0, bucket_counts=[1, 1], explicit_bounds=[1.0])
    exp = make_sum("e", [])
    p = exp.exponential_histogram.data_points.add(time_unix_nano=NOW, count=1, sum=1.0, scale=2)
    exp.exponential_histogram.aggregation_temporality = 1
    p.positive.bucket_counts.append(1)
    summary = make_sum("s", [])
    summary.summary.data_points.add(time_unix_nano=NOW, count=1, sum=4.0).quantile_values.add(quantile=0.5, value=4.0)
    return make_metrics_request([counter, gauge, hist, exp, summary], resource={"spanlake.project": "shop"})


@pytest.fixture
def lake_dir(tmp_path: Path) -> DataDir:
    """A data directory with one spans, one logs and one metrics file written by storage.writer."""
    dd = DataDir(tmp_path / "data")
    writer = LakeWriter(dd)
    writer.write_batch(SPANS, decode_spans(span_request(), NOW), "spans-1")
    writer.write_batch(LOGS, decode_logs(logs_request(), NOW), "logs-1")
    writer.write_batch(METRICS, decode_metrics(metrics_request(), NOW), "metrics-1")
    return dd


# --- decode ↔ schema ------------------------------------------------------------------------


def test_decoded_span_columns_are_the_schema_columns() -> None:
    batch = decode_spans(span_request(), NOW)
    assert batch
    for cols in batch.values():
        assert tuple(cols) == SPANS.names
        assert len({len(v) for v in cols.values()}) == 1  # every column has a value per row


def test_decoded_log_columns_are_the_schema_columns() -> None:
    batch = decode_logs(logs_request(), NOW)
    assert batch
    for cols in batch.values():
        assert tuple(cols) == LOGS.names
        assert len({len(v) for v in cols.values()}) == 1


def test_decoded_metric_columns_are_the_schema_columns() -> None:
    batch = decode_metrics(metrics_request(), NOW)
    (cols,) = batch.values()
    assert tuple(cols) == METRICS.names
    assert {len(v) for v in cols.values()} == {5}  # one row per data point
    columns_to_table(METRICS, cols)  # every value has its column's type
    assert cols["kind"] == ["sum", "gauge", "histogram", "exponential_histogram", "summary"]
    assert cols["value"][:2] == [12.0, 2.5] and cols["bucket_counts"][2] == [1, 1]
    assert len(set(cols["point_id"])) == 5


# --- writer ↔ schema ------------------------------------------------------------------------


@pytest.mark.parametrize("table", [SPANS, LOGS, METRICS], ids=lambda t: t.name)
def test_parquet_files_have_exactly_the_arrow_schema(lake_dir: DataDir, table: Table) -> None:
    files = sorted((lake_dir.lake / table.name).rglob("*.parquet"))
    assert files
    for f in files:
        schema = pq.read_schema(f)
        assert schema.names == list(table.names)
        assert [(fld.type, fld.nullable) for fld in schema] == [(c.type, c.nullable) for c in table.columns]
        assert schema.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
        assert schema.metadata[TABLE_KEY] == table.name.encode()
        assert schema.equals(table.arrow_schema, check_metadata=False)


# --- schema ↔ DuckDB views ------------------------------------------------------------------


def describe(lake: Lake, view: str) -> list[tuple[str, str]]:
    con = lake.connect()
    try:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {view}").fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("with_files", [True, False], ids=["with-files", "empty-lake"])
def test_views_expose_every_schema_column_with_its_type(lake_dir: DataDir, tmp_path: Path, with_files: bool) -> None:
    lake = Lake(lake_dir if with_files else DataDir(tmp_path / "empty"))
    spans_raw = expected_view(SPANS.all_columns)
    logs_raw = expected_view(LOGS.all_columns)
    assert describe(lake, "spans_raw") == spans_raw
    assert describe(lake, "spans") == spans_raw + expected_view(SPANS_DERIVED)
    assert describe(lake, "logs_raw") == logs_raw
    assert describe(lake, "logs") == logs_raw
    metrics_raw = expected_view(METRICS.all_columns)
    assert describe(lake, "metrics_raw") == metrics_raw
    assert describe(lake, "metrics") == metrics_raw
    assert describe(lake, "traces") == expected_view(TRACES_COLUMNS)


def test_views_read_back_what_was_written(lake_dir: DataDir) -> None:
    lake = Lake(lake_dir)
    spans = lake.query("SELECT name, project, category, input_tokens, finish_reasons FROM spans ORDER BY name")
    assert spans.to_pylist() == [
        {"name": "answer_ticket", "project": "shop", "category": "task", "input_tokens": None, "finish_reasons": None},
        {"name": "chat gpt-4o", "project": "shop", "category": "llm", "input_tokens": 10, "finish_reasons": ["stop"]},
    ]
    assert lake.query("SELECT count(*) AS n FROM logs").to_pylist() == [{"n": 2}]
    assert lake.query("SELECT metric_name, value FROM metrics WHERE kind = 'sum'").to_pylist() == [
        {"metric_name": "gen_ai.client.token.usage", "value": 12.0}
    ]
    assert lake.query("SELECT span_count, is_complete FROM traces").to_pylist() == [
        {"span_count": 2, "is_complete": True}
    ]


# --- column lists derived from the schema ----------------------------------------------------


def test_normalize_fills_the_schemas_normalized_columns_in_order() -> None:
    declared = tuple(c.name for c in SPANS.columns if c.normalized)
    assert declared == NORMALIZED_COLUMNS
    assert tuple(normalize_reference({}, [], 0, "UNSET")) == declared  # the reference, rule by rule
    assert tuple(normalize({}, [], 0, "UNSET")) == declared
    # decode._span_row relies on this layout: the version-1 normalized columns consecutive, the
    # ones schema version steps appended at the end, in order.
    appended = tuple(c.name for c in SPANS.columns if c.added_in > 1)
    assert appended and SPANS.names[-len(appended) :] == appended and set(appended) <= set(declared)
    first = SPANS.names.index(declared[0])
    v1 = declared[: len(declared) - len(appended)]
    assert SPANS.names[first : first + len(v1)] == v1 and declared[len(v1) :] == appended


def test_decoded_values_land_in_their_columns() -> None:
    (cols,) = decode_spans(span_request(), NOW).values()
    columns_to_table(SPANS, cols)  # every value has its column's type
    llm = cols["name"].index("chat gpt-4o")
    got = {name: cols[name][llm] for name in ("category", "operation", "input_tokens", "total_tokens", "error_type")}
    assert got == {"category": "llm", "operation": "chat", "input_tokens": 10, "total_tokens": 10, "error_type": None}
    assert cols["finish_reasons"][llm] == ["stop"] and cols["service_name"][llm] == "svc"
    assert cols["ingested_at"][llm] == NOW // 1000 and cols["start_time_unix_nano"][llm] == NOW + 1_000


def test_report_scans_read_the_schemas_scanned_columns(lake_dir: DataDir) -> None:
    assert tuple(c.name for c in SPANS.all_columns if c.scanned) == BASE_COLUMNS
    assert {"attributes", "content", "events", "links"}.isdisjoint(BASE_COLUMNS)  # no JSON blob in a metric scan
    views = dict(describe(Lake(lake_dir), "spans_raw"))
    assert set(BASE_COLUMNS) <= set(views)


def test_task_labels_query_gives_the_task_labels_schema(lake_dir: DataDir) -> None:
    labels = lake_labels(Lake(lake_dir))()
    assert labels.schema.names == TASK_LABELS_SCHEMA.names
    assert labels.cast(TASK_LABELS_SCHEMA).schema.equals(TASK_LABELS_SCHEMA)


def test_trace_index_rows(lake_dir: DataDir) -> None:
    rows = index_rows(Lake(lake_dir), None, None)
    assert rows.schema.names == ["hour", "project", "trace_id"]
    assert rows.schema.field("hour").type == pa.timestamp("us", tz="UTC")
    assert rows.num_rows == 1 and rows.column("project").to_pylist() == ["shop"]


# --- docs/schema.md ↔ storage/schema.py ------------------------------------------------------


def test_schema_doc_is_generated_from_the_schema() -> None:
    doc = (ROOT / "docs" / "schema.md").read_text()
    assert doc == schema_doc.render(), (
        "docs/schema.md is stale: python -m spanlake.collector.schema_doc > docs/schema.md"
    )


def test_schema_doc_covers_every_column_and_version() -> None:
    doc = schema_doc.render()
    for c in (*SPANS.all_columns, *LOGS.all_columns, *METRICS.all_columns, *SPANS_DERIVED, *TRACES_COLUMNS):
        assert f"| `{c.name}` |" in doc
    assert set(schema_doc.MIGRATIONS) == set(range(1, SCHEMA_VERSION + 1))
    assert "## Schema versions and migrations" in doc


def test_schema_doc_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "spanlake.collector.schema_doc"], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout == schema_doc.render()


# --- CLI ↔ README -----------------------------------------------------------------------------

CLI_CONTEXT = click.Context(cli)
COMMANDS = cli.list_commands(CLI_CONTEXT)  # the group loads each command's module on demand


def test_top_level_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {name}" in result.output or f"Usage: spanlake {name}" in result.output
    command = cli.get_command(CLI_CONTEXT, name)
    assert command is not None and (command.help or "").strip(), f"`spanlake {name}` has no help text"


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_is_in_readme(name: str) -> None:
    assert f"spanlake {name}" in (ROOT / "README.md").read_text()
