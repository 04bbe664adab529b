"""`Filters.task_name`: task-level figures keep the tasks of that name; span-level ones the
spans whose innermost task has it (analytics.task_outcomes). Hand-worked numbers, from raw
spans and from rollups (which answer only from tables keyed by task name)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.overview import overview
from spanlake.cli.main import cli
from tests.analytics.helpers import T0, llm, span, write

MIN = 60_000  # ms
H = 60 * MIN
TASK, OUTCOME = "spanlake.task.name", "spanlake.task.outcome"
TOOL = {"gen_ai.operation.name": "execute_tool"}
DOCS = json.dumps([{"id": "a", "score": 0.9}, {"id": "b", "score": 0.5}])
KB = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb", "gen_ai.retrieval.documents": DOCS}
W = Filters(since=T0, until=T0 + timedelta(hours=2))
RAGGED = Filters(since=T0 + timedelta(minutes=15), until=W.until)


def check(passed: bool, *errors: str) -> dict[str, object]:
    out: dict[str, object] = {"spanlake.validation.name": "schema", "spanlake.validation.passed": passed}
    return out | ({"spanlake.validation.errors": list(errors)} if errors else {})


def build(d: Path) -> None:
    """T0 = 10:00 UTC; the window W is 10:00-12:00."""
    write(
        d,
        [
            # 1 answer (success, app): a call of 1000 tokens, a tool, a retrieval, a passing check
            span(1, 1, at_ms=0, ms=100, name="A", **{TASK: "answer", OUTCOME: "success"}),
            span(1, 2, 1, at_ms=1, ms=40, name="chat", **llm("acme-1", 1000)),
            span(1, 3, 1, at_ms=50, ms=5, name="search", **TOOL),
            span(1, 4, 1, at_ms=60, ms=10, name="kb", **KB),
            span(1, 5, 1, at_ms=80, ms=2, name="check", **check(True)),
            # 2 answer (failure, validation): 500 tokens, an unpriced call, a failed check
            span(2, 1, at_ms=10 * MIN, ms=300, name="A", **{TASK: "answer"}),
            span(2, 2, 1, at_ms=10 * MIN + 1, ms=80, name="chat", **llm("acme-1", 500)),
            span(2, 3, 1, at_ms=10 * MIN + 90, ms=30, name="chat", **llm("mystery-9", 100)),
            span(2, 4, 1, at_ms=10 * MIN + 150, ms=2, name="check", **check(False, "too long: 812 > 500")),
            # 3 summarize (success, app): 2000 tokens, a tool, two passing checks
            span(3, 1, at_ms=20 * MIN, ms=200, name="S", **{TASK: "summarize", OUTCOME: "success"}),
            span(3, 2, 1, at_ms=20 * MIN + 1, ms=60, name="chat", **llm("acme-1", 2000)),
            span(3, 3, 1, at_ms=20 * MIN + 70, ms=7, name="search", **TOOL),
            span(3, 4, 1, at_ms=20 * MIN + 80, ms=2, name="check", **check(True)),
            span(3, 5, 1, at_ms=20 * MIN + 90, ms=2, name="check", **check(True)),
            # 4 answer (1000 ms) contains summarize (400 ms): the outer call (100) is answer's; the
            # inner call (300), tool and failed check are summarize's; both tasks fail (validation)
            span(4, 1, at_ms=30 * MIN, ms=1000, name="A", **{TASK: "answer"}),
            span(4, 2, 1, at_ms=30 * MIN + 1, ms=20, name="chat", **llm("acme-1", 100)),
            span(4, 3, 1, at_ms=30 * MIN + 100, ms=400, name="S", **{TASK: "summarize"}),
            span(4, 4, 3, at_ms=30 * MIN + 101, ms=30, name="chat", **llm("acme-1", 300)),
            span(4, 5, 3, at_ms=30 * MIN + 140, ms=9, name="search", **TOOL),
            span(4, 6, 3, at_ms=30 * MIN + 160, ms=2, name="check", **check(False, "field 'age' missing at line 3")),
            # 5 an unmarked root: the task is named after its span, "plain"
            span(5, 1, at_ms=40 * MIN, ms=50, name="plain"),
            span(5, 2, 1, at_ms=40 * MIN + 1, ms=10, name="chat", **llm("acme-1", 50)),
            # 6 answer started at 09:50, before W; its call at 10:05 is inside W
            span(6, 1, at_ms=-10 * MIN, ms=20 * MIN, name="A", **{TASK: "answer"}),
            span(6, 2, 1, at_ms=5 * MIN, ms=15, name="chat", **llm("acme-1", 700)),
            # 7 a call whose root has not arrived: in no task
            span(7, 2, 1, at_ms=50 * MIN, ms=25, name="chat", **llm("acme-1", 900)),
            # 8 answer (success, app) at 11:10
            span(8, 1, at_ms=H + 10 * MIN, ms=2000, name="A", **{TASK: "answer", OUTCOME: "success"}),
            span(8, 2, 1, at_ms=H + 10 * MIN + 1, ms=90, name="chat", **llm("acme-1", 250)),
        ],
    )


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


def named(f: Filters, name: str) -> Filters:
    return Filters(since=f.since, until=f.until, task_name=name)


def one(an: Analytics, report: str, f: Filters, source: str = "raw", **kw: object) -> dict:
    df, _ = run_report(an, report, f, source=source, **kw)  # type: ignore[arg-type]
    (row,) = df.to_dicts()
    return row


def levels(an: Analytics, f: Filters) -> dict[str, dict]:
    return {r["level"]: r for r in run_report(an, "latency", f, source="raw")[0].to_dicts()}


def test_task_level_figures_keep_the_tasks_of_that_name(an: Analytics) -> None:
    t = one(an, "tasks", named(W, "answer"))
    # answer tasks starting in W: 1, 2, 4 (outer), 8 (6 started before W)
    assert (t["tasks"], t["successful_tasks"], t["failed_tasks"]) == (4, 2, 2)
    assert (t["from_app"], t["from_validation"]) == (2, 2)
    # innermost attribution: 1000 + 500 + 100 + 250 tokens at $1/M (mystery-9 unpriced)
    assert t["task_cost_usd"] == pytest.approx(1850e-6) and t["task_unpriced_calls"] == 1
    assert t["cost_per_successful_task"] == pytest.approx(1850e-6 / 2)
    assert t["p50_ms"] == pytest.approx((300 + 1000) / 2)  # of 100, 300, 1000, 2000
    s = one(an, "tasks", named(W, "summarize"))
    assert (s["tasks"], s["successful_tasks"], s["task_cost_usd"]) == (2, 1, pytest.approx(2300e-6))
    assert one(an, "tasks", named(W, "plain"))["tasks"] == 1  # the root's span name
    lat = levels(an, named(W, "summarize"))
    assert (lat["task"]["count"], lat["task"]["p50_ms"]) == (2, 300.0)  # 200 and 400
    names = {r["task_name"] for r in run_report(an, "task-list", named(W, "summarize"))[0].to_dicts()}
    assert names == {"summarize"}
    assert run_report(an, "task-list", named(W, "summarize"))[0].height == 2


def test_span_level_figures_keep_the_spans_of_the_innermost_task(an: Analytics) -> None:
    lat = levels(an, named(W, "answer"))
    # calls under answer: 40 (1), 80 and 30 (2), 20 (4, outer), 15 (6, whose task began before W), 90 (8)
    assert lat["llm"]["count"] == 6 and lat["llm"]["p50_ms"] == pytest.approx((30 + 40) / 2)
    assert (lat["tool"]["count"], lat["tool"]["max_ms"]) == (1, 5.0)  # trace 4's search is summarize's
    assert (lat["retrieval"]["count"], lat["task"]["count"]) == (1, 4)
    lat = levels(an, named(W, "summarize"))
    assert (lat["llm"]["count"], lat["llm"]["max_ms"], lat["tool"]["count"]) == (2, 60.0, 2)
    assert "retrieval" not in lat
    c = one(an, "cost", named(W, "answer"))
    assert (c["calls"], c["input_tokens"], c["unpriced_calls"]) == (6, 2650, 1)
    assert c["cost_usd"] == pytest.approx(2550e-6) and c["tasks"] == 4
    assert one(an, "cost", named(W, "summarize"))["cost_usd"] == pytest.approx(2300e-6)
    assert one(an, "cost", W)["calls"] == 10  # every call, the orphan (7) included
    assert run_report(an, "unpriced", named(W, "answer"))[0]["model"].to_list() == ["mystery-9"]
    assert run_report(an, "unpriced", named(W, "summarize"))[0].height == 0
    v = one(an, "validation", named(W, "answer"))
    assert (v["checks"], v["failures"]) == (2, 1)
    v = one(an, "validation", named(W, "summarize"))
    assert (v["checks"], v["failures"]) == (3, 1)  # two passed in 3, one failed inside 4's summarize
    errors = run_report(an, "validation-errors", named(W, "summarize"))[0]
    assert errors["pattern"].to_list() == ["field '…' missing at line #"]
    r = one(an, "retrieval", named(W, "answer"))
    assert (r["queries"], r["docs_per_query"]) == (1, 2.0)
    assert run_report(an, "retrieval", named(W, "summarize"))[0].height == 0
    docs = run_report(an, "retrieved-documents", named(W, "answer"))[0]
    assert docs.select("document_id", "retrievals").rows() == [("a", 1), ("b", 1)]
    assert run_report(an, "cost", named(W, "nope"))[0]["calls"].to_list() in ([], [0])


def test_the_task_name_combines_with_other_filters(an: Analytics) -> None:
    f = Filters(since=W.since, until=W.until, task_name="answer", model="mystery-9")
    c = one(an, "cost", f)
    assert (c["calls"], c["unpriced_calls"]) == (1, 1)
    lat = levels(an, Filters(since=W.since, until=T0 + timedelta(minutes=15), task_name="answer"))
    assert (lat["task"]["count"], lat["llm"]["count"]) == (2, 4)  # tasks 1, 2; calls of 1, 2 (two) and 6


def test_rollups_answer_only_where_their_rows_carry_task_names(an: Analytics) -> None:
    rollups.run(an)
    for f, expect in ((W, "rollups"), (RAGGED, "rollups+raw")):
        for name in ("answer", "summarize"):
            g = named(f, name)
            rolled, source = run_report(an, "tasks", g)
            assert source == expect
            raw = run_report(an, "tasks", g, source="raw")[0]
            for col in ("tasks", "successful_tasks", "failed_tasks", "task_cost_usd", "cost_per_successful_task"):
                assert rolled[col].to_list() == pytest.approx(raw[col].to_list()), (col, name)
            rolled, source = run_report(an, "validation", g)
            assert source == expect
            raw = run_report(an, "validation", g, source="raw")[0]
            assert rolled.height == raw.height == (name == "summarize" or f is W)
            if raw.height:
                assert rolled.select("checks", "failures").rows() == raw.select("checks", "failures").rows()
            for report in ("latency", "cost", "retrieval", "task-list", "unpriced", "validation-errors"):
                assert run_report(an, report, g)[1] == "raw", report
            assert run_report(an, "cost", f)[1] == expect  # without a task name the rollups answer
    t = one(an, "tasks", named(RAGGED, "answer"), source="rollups")
    assert (t["tasks"], t["successful_tasks"]) == (2, 1)  # 4 (10:30) and 8 (11:10)
    with pytest.raises(ValueError, match="task name"):
        run_report(an, "latency", named(W, "answer"), source="rollups")


def test_overview_counts_traces_whose_task_has_the_name(an: Analytics) -> None:
    rollups.run(an)
    o = overview(an, named(W, "answer"), bucket="hour")
    # one task per trace, the first task span: 1, 2, 4, 8; a trace's cost is all of its calls
    assert o.source == "raw" and o.current["tasks"] == 4
    assert o.current["task_cost_usd"] == pytest.approx((1000 + 500 + 100 + 300 + 250) * 1e-6)
    assert overview(an, named(W, "plain"), bucket="hour").current["tasks"] == 1


def test_cli_task_option(an: Analytics) -> None:
    d = an.lake.data_dir.root
    (d / "prices.toml").write_text('[[price]]\nmodel = "acme-1"\ninput_mtok = 1.0\noutput_mtok = 1.0\n')
    args = ["report", "tasks", "--data-dir", str(d), "--since", W.since.isoformat(), "--until", W.until.isoformat()]
    got = CliRunner().invoke(cli, [*args, "--task", "summarize", "--format", "json", "--source", "raw"])
    assert got.exit_code == 0, got.output
    (row,) = json.loads(got.stdout)
    assert (row["tasks"], row["successful_tasks"]) == (2, 1)
