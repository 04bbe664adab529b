"""`spanlake report`: JSON and CSV output, filters, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from spanlake.cli.main import cli
from tests.analytics.helpers import span, write

WINDOW = ["--since", "2025-06-02T09:00", "--until", "2025-06-02T11:00"]


def _lake(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    llm = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-1", "gen_ai.usage.input_tokens": 1000}
    write(d, [span(50, 1, name="T", ms=100, **{"spanlake.task.outcome": "success"}), span(50, 2, 1, name="c", **llm)])
    write(d, [span(51, 1, name="U", ms=300, error=True), span(51, 2, 1, name="c", **llm)])
    (d / "prices.toml").write_text('[[price]]\nmodel = "acme-1"\ninput_mtok = 2.0\noutput_mtok = 8.0\n')
    return d


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["report", *args], catch_exceptions=False)
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output  # stderr names the source


def test_cost_json_uses_prices_file_from_data_dir(tmp_path: Path) -> None:
    d = _lake(tmp_path)
    code, out = _run("cost", "--data-dir", str(d), *WINDOW, "--format", "json")
    assert code == 0, out
    (row,) = json.loads(out)
    # 2 calls x 1000 input tokens x $2/Mtok = $0.004; T succeeded, U failed (error) → 0.004 per success
    assert row["calls"] == 2 and abs(row["cost_usd"] - 0.004) < 1e-12
    assert (row["tasks"], row["successful_tasks"]) == (2, 1)
    assert abs(row["cost_per_successful_task"] - 0.004) < 1e-12


def test_tasks_csv_grouped_and_filtered(tmp_path: Path) -> None:
    d = _lake(tmp_path)
    code, out = _run("tasks", "--data-dir", str(d), *WINDOW, "-g", "outcome_source", "--format", "csv")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].split(",")[0] == '"outcome_source"'
    assert {line.split(",")[0] for line in lines[1:]} == {'"app"', '"error"'}
    code, out = _run(
        "latency", "--data-dir", str(d), *WINDOW, "--attr", "spanlake.task.outcome=success", "--format", "json"
    )
    assert code == 0, out
    task_row = next(r for r in json.loads(out) if r["level"] == "task")
    assert task_row["count"] == 1 and task_row["p50_ms"] == 100


def test_helpful_errors(tmp_path: Path) -> None:
    d = _lake(tmp_path)
    code, out = _run("cost", "--data-dir", str(d), "-g", "colour")
    assert code != 0 and "cannot group by 'colour'" in out
    code, out = _run("compare", "--data-dir", str(d))
    assert code != 0 and "--a and --b" in out
    code, out = _run("cost", "--data-dir", str(tmp_path / "nowhere"))
    assert code != 0 and "no lake" in out
    code, out = _run("cost", "--data-dir", str(d), "--attr", "novalue")
    assert code != 0 and "KEY=VALUE" in out
    code, out = _run("--help")
    assert code == 0 and "per successful task" in out and "Examples" in out


def test_cost_from_rollups_matches_raw(tmp_path: Path) -> None:
    from spanlake.cli.report import analytics

    d = _lake(tmp_path)
    hours = ["--since", "2025-06-02T09:00", "--until", "2025-06-02T11:00", "--format", "json", "-g", "model"]
    result = CliRunner().invoke(cli, ["report", "cost", "--data-dir", str(d), "--update-rollups", *hours])
    assert result.exit_code == 0, result.output
    assert "hours rebuilt: calls 1, tasks 1, steps 1" in result.stderr and "source: rollups" in result.stderr
    from_rollups = json.loads(result.stdout)
    code, out = _run("cost", "--data-dir", str(d), "--source", "raw", *hours)
    assert code == 0 and json.loads(out) == from_rollups
    code, out = _run("cost", "--data-dir", str(d), "--source", "rollups", *hours)
    assert code == 0 and json.loads(out) == from_rollups
    # not whole hours: the partial hour comes from raw spans
    ragged = ["--since", "2025-06-02T09:30", "--until", "2025-06-02T11:00", "--format", "json"]
    code, out = _run("cost", "--data-dir", str(d), "--source", "rollups", *ragged)
    raw = _run("cost", "--data-dir", str(d), "--source", "raw", *ragged)[1]
    assert code == 0 and json.loads(out) == json.loads(raw)
    # attribute filters: rollups cannot answer
    code, out = _run("tasks", "--data-dir", str(d), "--source", "rollups", "--attr", "a=b", *hours)
    assert code != 0 and "--source raw" in out
    for report in ("latency", "tasks", "validation", "retrieval"):
        code, out = _run(report, "--data-dir", str(d), *hours)
        raw = json.loads(_run(report, "--data-dir", str(d), "--source", "raw", *hours)[1])
        assert code == 0 and len(json.loads(out)) == len(raw), report
        for got, want in zip(json.loads(out), raw, strict=True):  # percentiles within 1 %, the rest equal
            pct = {k for k in want if re.fullmatch(r"(ttft_)?p\d+_ms", k)}
            assert {k: v for k, v in got.items() if k not in pct} == {k: v for k, v in want.items() if k not in pct}
            assert all(abs(got[k] - want[k]) <= 0.01 * want[k] for k in pct if want[k] is not None)
    result = CliRunner().invoke(analytics, ["run", "--data-dir", str(d)])
    assert result.exit_code == 0 and "hours rebuilt: calls 0, tasks 0" in result.stderr
