"""A command that changes state through the server returns once the change is readable:
`spanlake dataset add` followed at once by `spanlake dataset export`, against a real
`spanlake up`, exports the items just added (the write endpoint waits for the flusher)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from spanlake.cli.main import cli
from spanlake.storage.reader import Lake
from tests.server.test_app import spans
from tests.server.up_helpers import Up, wait_for

PROJECT = "shop"


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_dataset_add_then_export_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = Up(data)
    try:
        up.wait_started()
        url = up.address("OTLP/HTTP")
        sent = spans(["first", "second"], PROJECT)
        assert OTLPSpanExporter(endpoint=f"{url}/v1/traces").export(sent) == SpanExportResult.SUCCESS
        traces = sorted({f"{s.context.trace_id:032x}" for s in sent})
        lake = Lake(data)
        wait_for(lambda: lake.query("SELECT count(*) AS n FROM spans").to_pylist()[0]["n"] == 2, 30, "the spans")

        where = ["--project", PROJECT]
        run("dataset", "create", "support", *where, "--url", url)
        for trace in traces:  # each add is followed at once by an export that must hold it
            run("dataset", "add", "support", trace, *where, "--url", url, "--data-dir", str(data))
            out = tmp_path / f"after-{trace}.jsonl"
            run("dataset", "export", "support", "--format", "jsonl", "-o", str(out), *where, "--data-dir", str(data))
            exported = {json.loads(line)["trace_id"] for line in out.read_text().splitlines()}
            assert exported == set(traces[: traces.index(trace) + 1])
        removed = run("dataset", "remove", "support", traces[0], *where, "--url", url)
        assert "removed" in removed, removed
        shown = json.loads(run("dataset", "show", "support", "--format", "json", *where, "--data-dir", str(data)))
        assert [i["trace_id"] for i in shown["items"]] == [traces[1]]
    finally:
        assert up.stop() == 0, up.output()
