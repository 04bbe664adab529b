"""Tasks and outcomes: which spans are tasks, the outcome order, late roots, nested tasks, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import task_list, tasks
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.storage.schema import TASK_LABELS_SCHEMA
from tests.analytics.helpers import T0, human_event, judge_event, span, tid, write, write_labels

WINDOW = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
PRICES = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
TASK = "spanlake.task.name"
OUTCOME = "spanlake.task.outcome"


def _check(passed: bool, **kw: object) -> dict[str, object]:
    return {"spanlake.validation.name": "schema", "spanlake.validation.passed": passed, **kw}


def _llm(inp: int) -> dict[str, object]:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-1", "gen_ai.usage.input_tokens": inp}


def _build(d: Path, with_late_root: bool = True) -> None:
    write(
        d,
        [
            # A: app says success although a validation failed and the span errored → success (app)
            span(10, 1, name="A", error=True, **{TASK: "a", OUTCOME: "success"}),
            span(10, 2, 1, name="check", **_check(False)),
            # B: no app outcome, a failed validation, error status → failure (validation)
            span(11, 1, name="B", error=True, **{TASK: "b"}),
            span(11, 2, 1, name="check", **_check(False)),
            # C: validation passed, error status → failure (error)
            span(12, 1, name="C", error=True, **{TASK: "c"}),
            span(12, 2, 1, name="check", **_check(True)),
            # D: an unmarked root with nothing to judge → default
            span(13, 1, name="D"),
            span(13, 2, 1, name="chat", **_llm(10)),
            # E: marked task under an unmarked HTTP root; the failed check is its sibling, not inside it
            span(14, 1, name="GET /answer"),
            span(14, 2, 1, name="E", **{TASK: "e"}),
            span(14, 3, 1, name="check", **_check(False)),
            # F contains G; a check fails inside G (so inside F too); each call belongs to its innermost task
            span(15, 1, name="F", ms=50, **{TASK: "f"}),
            span(15, 2, 1, name="chat", **_llm(2000)),
            span(15, 3, 1, name="G", ms=20, **{TASK: "g"}),
            span(15, 4, 3, name="chat", **_llm(1000)),
            span(15, 5, 3, name="check", **_check(False)),
            # H (trace 16): the children arrive before the root
            span(16, 2, 1, at_ms=1, name="chat", **_llm(500)),
            span(16, 3, 1, at_ms=2, name="check", **_check(False)),
        ],
    )
    if with_late_root:
        write(d, [span(16, 1, name="H", ms=30)])


def _outcomes(df_rows: list[dict]) -> dict[str, tuple[str, str]]:
    return {r["task_name"]: (r["outcome"], r["outcome_source"]) for r in df_rows}


def test_outcome_order_and_task_selection(tmp_path: Path) -> None:
    _build(tmp_path)
    an = Analytics(tmp_path, prices=PRICES)
    got = _outcomes(task_list(an, WINDOW, limit=100).to_dicts())
    assert got == {
        "a": ("success", "app"),
        "b": ("failure", "validation"),
        "c": ("failure", "error"),
        "D": ("unknown", "default"),  # unmarked root: the task is named after the span
        "e": ("unknown", "default"),  # the HTTP root of trace 14 is not a task; its sibling check is not inside e
        "f": ("failure", "validation"),
        "g": ("failure", "validation"),
        "H": ("failure", "validation"),
    }
    (row,) = tasks(an, WINDOW).to_dicts()
    # 8 tasks: success a; failure b c f g H; unknown D e
    assert (row["tasks"], row["successful_tasks"], row["failed_tasks"], row["unknown_tasks"]) == (8, 1, 5, 2)
    assert (row["from_label"], row["from_app"], row["from_validation"], row["from_error"], row["from_default"]) == (
        0,
        1,
        4,
        1,
        2,
    )
    assert row["success_rate"] == pytest.approx(1 / 8)


def test_default_outcome_is_configurable(tmp_path: Path) -> None:
    _build(tmp_path)
    an = Analytics(tmp_path, prices=PRICES)
    (row,) = tasks(an, WINDOW, options=TaskOptions(default_outcome="success")).to_dicts()
    assert (row["successful_tasks"], row["unknown_tasks"], row["from_default"]) == (1 + 2, 0, 2)
    with pytest.raises(ValueError):
        TaskOptions(default_outcome="maybe")


def test_a_root_that_arrives_last_makes_its_trace_count_once(tmp_path: Path) -> None:
    _build(tmp_path, with_late_root=False)
    an = Analytics(tmp_path, prices=PRICES)
    assert "H" not in _outcomes(task_list(an, WINDOW, limit=100).to_dicts())
    assert tasks(an, WINDOW)["tasks"][0] == 7
    write(tmp_path, [span(16, 1, name="H", ms=30)])
    rows = {r["task_name"]: r for r in task_list(an, WINDOW, limit=100).to_dicts()}
    assert tasks(an, WINDOW)["tasks"][0] == 8
    assert rows["H"]["cost_usd"] == pytest.approx(500 / 1e6)  # the early child's call is now the task's


def test_nested_tasks_do_not_double_count_cost(tmp_path: Path) -> None:
    _build(tmp_path)
    an = Analytics(tmp_path, prices=PRICES)
    rows = {r["task_name"]: r for r in task_list(an, WINDOW, sort="cost", limit=3).to_dicts()}
    # acme-1 at $1/Mtok: f's own call 2000 → 0.002, g's 1000 → 0.001, H's 500 → 0.0005 (most expensive first)
    assert list(rows) == ["f", "g", "H"]
    assert rows["f"]["cost_usd"] == pytest.approx(2000 / 1e6)
    assert rows["g"]["cost_usd"] == pytest.approx(1000 / 1e6)
    # all tasks together: D 10 + f 2000 + g 1000 + H 500 = 3510 (not 4510)
    assert tasks(an, WINDOW)["task_cost_usd"][0] == pytest.approx(3510 / 1e6)


def test_latest_human_label_overrides_the_app(tmp_path: Path) -> None:
    _build(tmp_path)
    labels = pa.Table.from_pylist(
        [
            {
                "project": "default",
                "trace_id": tid(10).hex(),
                "span_id": "0000000000000001",
                "outcome": "success",
                "labeled_at": datetime(2025, 6, 3, tzinfo=UTC),
            },
            {
                "project": "default",
                "trace_id": tid(10).hex(),
                "span_id": "0000000000000001",
                "outcome": "failure",
                "labeled_at": datetime(2025, 6, 4, tzinfo=UTC),
            },
        ],
        schema=TASK_LABELS_SCHEMA,
    )
    an = Analytics(tmp_path, prices=PRICES, labels=lambda: labels)
    got = _outcomes(task_list(an, WINDOW, limit=100).to_dicts())
    assert got["a"] == ("failure", "label")
    (row,) = tasks(an, WINDOW).to_dicts()
    assert (row["successful_tasks"], row["from_label"], row["from_app"]) == (0, 1, 0)


def test_group_by_outcome_source_and_filters(tmp_path: Path) -> None:
    _build(tmp_path)
    an = Analytics(tmp_path, prices=PRICES)
    by_source = {r["outcome_source"]: r["tasks"] for r in tasks(an, WINDOW, ["outcome_source"]).to_dicts()}
    assert by_source == {"app": 1, "validation": 4, "error": 1, "default": 2}
    # task-level model filter: a task's model is its first LLM call's (D, f, g, H call acme-1)
    only_acme = Filters(since=WINDOW.since, until=WINDOW.until, model="acme-1")
    assert tasks(an, only_acme)["tasks"][0] == 4
    # attribute filter on the task span, value bound as a parameter (an injection attempt matches nothing)
    named = Filters(since=WINDOW.since, until=WINDOW.until, attributes={TASK: "b"})
    assert tasks(an, named)["tasks"][0] == 1
    evil = Filters(since=WINDOW.since, until=WINDOW.until, attributes={TASK: "b' OR '1'='1"})
    assert tasks(an, evil).height == 0 or tasks(an, evil)["tasks"][0] == 0


def test_orphans_belong_to_a_root_task_but_not_to_a_nested_one(tmp_path: Path) -> None:
    """A span whose parent has not arrived is still in its trace: a root task (the trace's only
    task) owns it; a task deeper in the trace only owns what hangs under it."""
    write(
        tmp_path,
        [
            span(60, 1, name="R", **{TASK: "root"}),
            span(60, 3, 2, name="chat", **_llm(700)),  # parent 2 has not arrived
            span(61, 1, name="GET /"),
            span(61, 2, 1, name="N", **{TASK: "nested"}),
            span(61, 4, 3, name="chat", **_llm(300)),  # parent 3 has not arrived
        ],
    )
    an = Analytics(tmp_path, prices=PRICES)
    rows = {r["task_name"]: r for r in task_list(an, WINDOW, limit=10).to_dicts()}
    assert rows["root"]["cost_usd"] == pytest.approx(700 / 1e6)
    assert rows["nested"]["cost_usd"] is None and rows["nested"]["llm_calls"] == 0


def test_a_deciding_judge_comes_after_people_and_before_the_app(tmp_path: Path) -> None:
    _build(tmp_path)
    t = [T0 + timedelta(minutes=10 + i) for i in range(4)]
    write_labels(
        tmp_path,
        [
            # A (app success): a deciding judge's fail on the task span decides → failure (judge)
            judge_event(10, t[0], "fail", span_id=1, decides=True),
            # B (validation failure): a deciding judge's pass on the whole trace (its root, the task)
            judge_event(11, t[0], "pass", decides=True),
            # C (error): a reviewer's pass beats a later deciding judge's fail → success (label)
            human_event(12, t[0], "pass", span_id=1),
            judge_event(12, t[1], "fail", span_id=1, decides=True),
            # D (default): a judge without the mark does not decide
            judge_event(13, t[0], "fail", decides=False),
            # f (validation failure): two versions decide; the latest (v2's pass) wins
            judge_event(15, t[0], "fail", span_id=1, version=1, decides=True),
            judge_event(15, t[1], "pass", span_id=1, version=2, decides=True),
            # g: v1 decided fail, then v1's newer label (no longer deciding) is current → validation
            judge_event(15, t[0], "pass", span_id=3, decides=True),
            judge_event(15, t[2], "fail", span_id=3, decides=False, label_id="regraded"),
            # H: a score without a verdict decides nothing
            judge_event(16, t[0], None, score=0.1, decides=True),
        ],
    )
    an = Analytics(tmp_path, prices=PRICES)
    got = _outcomes(task_list(an, WINDOW, limit=100).to_dicts())
    assert got == {
        "a": ("failure", "judge"),
        "b": ("success", "judge"),
        "c": ("success", "label"),
        "D": ("unknown", "default"),
        "e": ("unknown", "default"),
        "f": ("success", "judge"),
        "g": ("failure", "validation"),
        "H": ("failure", "validation"),
    }
    (row,) = tasks(an, WINDOW).to_dicts()
    # success b c f; failure a g H; unknown D e. Sources: judge a b f, label c, validation g H, default D e
    assert (row["successful_tasks"], row["failed_tasks"], row["unknown_tasks"]) == (3, 3, 2)
    assert (row["from_label"], row["from_judge"], row["from_app"], row["from_validation"]) == (1, 3, 0, 2)
    assert (row["from_error"], row["from_default"]) == (0, 2)
    # the trace list's outcome is its (first) task's, by the same rules (trace 15's f and g start together)
    rows = list_traces(an, TraceFilters(since=WINDOW.since, until=WINDOW.until)).rows.to_dicts()
    by_trace = {r["trace_id"]: r["outcome"] for r in rows}
    assert [by_trace[tid(n).hex()] for n in (10, 11, 12, 13)] == ["failure", "success", "success", "unknown"]
