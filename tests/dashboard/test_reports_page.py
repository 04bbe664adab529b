"""The report registry is the one list of reports (CLI, API, dashboard), and the dashboard
shows report figures and the overview's cost readably — on the seeded lake, whose figures are
worked out by hand in tests/analytics/traces/seed.py."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from spanlake.analytics.reports.registry import REPORTS
from spanlake.cli.report import report as report_command
from spanlake.collector.decode import decode_spans
from spanlake.dashboard.components import formatted
from spanlake.server.api.app import mount_api
from spanlake.server.http import HttpParts, make_http_app
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.analytics.traces.seed import T0
from tests.factories import make_request, make_span

Open = Callable[..., AppTest]
PREFIX = "/api/v1/reports/"


def test_cli_api_and_dashboard_list_the_registry(open_app: Open, tmp_path: Path) -> None:
    names = list(REPORTS)
    assert names[:3] == ["latency", "cost", "unpriced"] and "compare" in names
    # the CLI: NAME's choices, and a line of help per report
    (name_arg,) = [p for p in report_command.params if p.name == "name"]
    assert list(name_arg.type.choices) == names  # type: ignore[attr-defined]
    help_text = CliRunner().invoke(report_command, ["--help"], terminal_width=200).output
    for r in REPORTS.values():
        assert f"{r.name:<20} {r.summary_for('cli')}" in help_text.replace("\n  ", "\n  ")
    # the API: one path per report, with the report's public parameters
    spec = make_http_app(HttpParts(DataDir(tmp_path), api=mount_api)).openapi()
    paths = [p[len(PREFIX) :] for p in spec["paths"] if p.startswith(PREFIX)]
    assert paths == names
    for r in REPORTS.values():
        op = spec["paths"][PREFIX + r.name]["get"]
        assert op["summary"] == r.summary_for("api")
        given = {p["name"] for p in op["parameters"]}
        assert {p.name for p in r.params if p.public} <= given
        assert not {p.name for p in r.params if not p.public} & given
    # the dashboard: the Reports page's choices
    at = open_app("reports")
    assert list(at.selectbox(key="reports_name").options) == names


def test_figures_are_formatted() -> None:
    df = pl.DataFrame(
        {
            "model": ["a", None],
            "p50_ms": [509.3232, None],
            "p95_ms": [12.345, 3.14159],
            "cost_usd": [0.00766, None],
            "task_cost_usd": [1234.5, 0.0],
            "error_rate": [0.25, None],
            "slow_share": [0.0, 1.0],
            "tasks": [1234, None],
            "unpriced_calls": [3, 0],
            "docs_per_query": [2.0, None],
        }
    )
    out = formatted(df).to_dicts()
    assert out[0] == {
        "model": "a",
        "p50_ms": "509 ms",
        "p95_ms": "12.3 ms",
        "cost_usd": "$0.00766",
        "task_cost_usd": "$1,234.50",
        "error_rate": "25.0%",
        "slow_share": "0.0%",
        "tasks": "1,234",
        "unpriced_calls": "3",
        "docs_per_query": "2.00",
    }
    assert out[1] == {
        "model": None,  # group keys are left as they are
        "p50_ms": "",
        "p95_ms": "3.14 ms",
        "cost_usd": "",
        "task_cost_usd": "$0.00",
        "error_rate": "",
        "slow_share": "100.0%",
        "tasks": "",
        "unpriced_calls": "0",
        "docs_per_query": "",
    }


def _table(at: AppTest) -> list[dict[str, object]]:
    return at.dataframe[0].value.to_dict("records")


def test_reports_table_shows_formatted_figures(open_app: Open) -> None:
    at = open_app("reports")
    at.selectbox(key="reports_name").set_value("cost").run()  # grouped by model
    rows = {r["model"]: r for r in _table(at)}
    # gpt-4o: trace 2, $0.0024, failed; gpt-4o-mini: traces 1 ($0.0002, success) and 3 ($0.00001, failure)
    assert (rows["gpt-4o"]["cost_usd"], rows["gpt-4o"]["success_rate"]) == ("$0.0024", "0.0%")
    assert rows["gpt-4o"]["cost_per_successful_task"] == ""  # no successful task: blank, not None
    mini = rows["gpt-4o-mini"]
    assert (mini["cost_usd"], mini["success_rate"], mini["cost_per_successful_task"]) == (
        "$0.00021",
        "50.0%",
        "$0.00021",
    )
    assert mini["input_tokens"] == "110"
    at.selectbox(key="reports_name").set_value("latency").run()
    rows = _table(at)
    (task,) = [r for r in rows if r["level"] == "task"]
    assert task["p50_ms"] == "1,000 ms" and task["max_ms"] == "3,000 ms"  # tasks of 1000, 3000 and 500 ms
    assert task["error_rate"] == "33.3%"
    assert not [v for r in rows for v in r.values() if v in (None, "None") or str(v) == "nan"]


@pytest.fixture
def unpriced_dir(seeded_dir: Path, tmp_path: Path) -> Path:
    """The seeded lake plus a task at T0 + 3 min whose two calls use a model without a price."""
    root = tmp_path / "data"
    shutil.copytree(seeded_dir, root, ignore=shutil.ignore_patterns("rollups"))
    trace, start = bytes.fromhex("77" * 16), int((T0 + timedelta(minutes=3)).timestamp() * 1e9)
    calls = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "mystery-9", "gen_ai.usage.input_tokens": 100}
    spans = [
        make_span("answer", trace, b"\x71" * 8, start_ns=start, attributes={"spanlake.task.name": "answer"}),
        make_span("chat", trace, b"\x72" * 8, b"\x71" * 8, start_ns=start + 1000, attributes=calls),
        make_span("chat", trace, b"\x73" * 8, b"\x71" * 8, start_ns=start + 2000, attributes=calls),
    ]
    rows = decode_spans(make_request(spans, {"service.name": "shop-api", "spanlake.project": "shop"}), ingested_at_ns=1)
    LakeWriter(DataDir(root)).write_batch(SPANS, rows, uuid.uuid4().hex)
    return root


def test_overview_cost_fits_with_unpriced_calls(
    open_app: Open, unpriced_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(unpriced_dir))
    at = open_app("overview")
    (cost,) = [m for m in at.metric if m.label == "Cost"]
    # traces 1, 2 and 3 as seeded ($0.0002 + $0.0024 + $0.00001); the new task's calls have no price
    assert cost.value == "$0.00261"
    assert any("2 unpriced calls" in c.value for c in at.caption)


def test_compare_table_keeps_numbers_and_formats_them(open_app: Open) -> None:
    at = open_app("reports")
    at.selectbox(key="reports_name").set_value("compare").run()
    at.selectbox(key="reports_compare_by").set_value("model").run()
    (table,) = at.dataframe
    assert table.value["tasks"].to_list() == [1, 2, 1]  # numbers (the `b - a` row is a difference)
    config = json.loads(table.proto.columns)
    assert config["success_rate"]["type_config"]["format"] == "percent"
    assert config["p50_ms"]["type_config"]["format"] == "%,.0f ms"
    # cost per task: gpt-4o $0.0024, gpt-4o-mini $0.00021 / 2 tasks = $0.000105 → three significant digits
    assert config["cost_per_task"]["type_config"]["format"] == "$%.6f"
