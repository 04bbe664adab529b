"""Rollups agree with raw spans, and stay in agreement as late spans and new prices arrive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import cost
from spanlake.analytics.reports.cost import CALLS
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.reports.task_rollup import TASKS
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.rollups.read import can_answer
from spanlake.analytics.rollups.state import is_fresh
from spanlake.analytics.rollups.tables import CALL_KEYS
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.analytics.helpers import T0, llm, span, write

H = 3_600_000  # one hour in ms
TASK, OUTCOME = "spanlake.task.name", "spanlake.task.outcome"
GROUPINGS = [[], ["model"], ["hour"], ["day"], ["project", "service"], ["prompt_version", "provider"]]


def _build(d: Path) -> None:
    write(
        d,
        [
            span(1, 1, at_ms=0, name="A", **{TASK: "a", OUTCOME: "success"}),
            span(1, 2, 1, at_ms=1, name="chat", **llm("acme-1", 1000)),
            span(2, 1, at_ms=10, name="B", **{TASK: "b", OUTCOME: "failure"}),
            span(2, 2, 1, at_ms=11, name="chat", **llm("acme-1", 2000, "v2")),
            span(3, 1, at_ms=H + 5, name="C"),
            span(3, 2, 1, at_ms=H + 6, name="chat", **llm("acme-1", 500)),
            span(3, 3, 1, at_ms=H + 7, name="chat", **llm("mystery-9", 100)),
            span(4, 1, at_ms=2 * H + 5, name="D", **{TASK: "d", OUTCOME: "success"}),
            span(4, 2, 1, at_ms=2 * H + 6, name="chat", **llm("acme-1", 250, "v2")),
        ],
    )


def cost_from_rollups(an: Analytics, f: Filters, group_by: list[str] | None = None) -> pl.DataFrame:
    """The cost report from rollup files alone."""
    df, source = run_report(an, "cost", f, group_by or [], "rollups")
    assert source == "rollups"
    return df


def cost_auto(an: Analytics, f: Filters, group_by: list[str] | None = None) -> tuple[pl.DataFrame, str]:
    return run_report(an, "cost", f, group_by or [])


def _agree(an: Analytics, f: Filters, group_by: list[str]) -> None:
    raw = cost(an, f, group_by)
    rolled = cost_from_rollups(an, f, group_by)
    keys = [c for c in raw.columns if c in ("hour", "day", *CALL_KEYS)]
    raw, rolled = (df.sort(keys, nulls_last=True) if keys else df for df in (raw, rolled))
    assert_frame_equal(rolled, raw, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-15)


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    _build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


WINDOWS = [
    Filters(since=T0, until=T0 + timedelta(hours=3)),
    Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)),
    Filters(since=T0, until=T0 + timedelta(hours=3), model="acme-1", prompt_version="v2"),
]


def test_rollups_agree_with_raw(an: Analytics) -> None:
    result = rollups.run(an)
    assert (result.hours_seen, result.call_hours_rebuilt, result.task_hours_rebuilt) == (3, 3, 3)
    assert result.full_rebuild
    for f in WINDOWS:
        assert is_fresh(an, [CALLS, TASKS], f.since, f.until)
        for g in GROUPINGS:
            _agree(an, f, g)
    (row,) = cost_from_rollups(an, WINDOWS[0]).to_dicts()
    # acme-1 at $1/Mtok: 1000 + 2000 + 500 + 250 = 3750 tokens; mystery-9 unpriced;
    # tasks A (success), B (failure), C (unknown), D (success) → 0.00375 / 2 per success
    assert row["cost_usd"] == pytest.approx(3750 / 1e6) and row["unpriced_calls"] == 1
    assert (row["tasks"], row["successful_tasks"]) == (4, 2)
    assert row["cost_per_successful_task"] == pytest.approx(3750 / 1e6 / 2)


def test_late_spans_rebuild_the_hours_they_touch(an: Analytics) -> None:
    rollups.run(an)
    assert rollups.run(an).call_hours_rebuilt == 0  # nothing new
    # A failed check arrives late for task A (hour 10) and a late call for task B starts at 12:30.
    write(
        an.lake.data_dir.root,
        [
            span(
                1, 3, 1, at_ms=2, name="check", **{"spanlake.validation.name": "s", "spanlake.validation.passed": False}
            ),
            span(2, 3, 1, at_ms=2 * H + 1_800_000, name="chat", **llm("acme-1", 4000, "v2")),
        ],
    )
    f = WINDOWS[0]
    assert not is_fresh(an, [CALLS, TASKS], f.since, f.until)
    result = rollups.run(an)
    # calls: hours 10 and 12 changed; tasks: those hours and the hours their spans' traces are in (10)
    assert (result.call_hours_rebuilt, result.task_hours_rebuilt, result.full_rebuild) == (2, 2, False)
    for g in GROUPINGS:
        _agree(an, f, g)
    (row,) = cost_from_rollups(an, f).to_dicts()
    # A still succeeds (the app's outcome outranks a failed validation); B's late call adds 4000 tokens
    assert (row["tasks"], row["successful_tasks"]) == (4, 2)
    assert row["task_cost_usd"] == pytest.approx((3750 + 4000) / 1e6)


def test_a_new_price_rebuilds_everything(an: Analytics) -> None:
    rollups.run(an)
    an.prices.add_override(PriceOverride(model="mystery-9", input_mtok=10.0, output_mtok=10.0))
    assert not is_fresh(an, [CALLS, TASKS], WINDOWS[0].since, WINDOWS[0].until)
    assert rollups.run(an).full_rebuild
    (row,) = cost_from_rollups(an, WINDOWS[0]).to_dicts()
    assert row["cost_usd"] == pytest.approx((3750 + 100 * 10) / 1e6) and row["unpriced_calls"] == 0
    _agree(an, WINDOWS[0], ["model"])


def test_what_rollups_cannot_answer() -> None:
    aligned = Filters(since=T0, until=T0 + timedelta(hours=1))
    assert can_answer(aligned, ["model", "day"], None)
    # a ragged window can: its partial hours are computed from raw spans
    assert can_answer(Filters(since=T0 + timedelta(minutes=5), until=T0 + timedelta(hours=1)), [], None)
    assert not can_answer(aligned, ["attr:x"], None)
    assert not can_answer(aligned, ["minute"], None)
    assert not can_answer(Filters(since=T0, until=T0 + timedelta(hours=1), attributes={"k": "v"}), [], None)


def test_auto_reads_whole_hours_from_rollups_and_edges_raw(an: Analytics) -> None:
    ragged = Filters(since=T0 + timedelta(milliseconds=5), until=T0 + timedelta(hours=2, minutes=30))
    _, source = cost_auto(an, ragged)
    assert source == "raw"  # no rollups yet
    rollups.run(an)
    for g in GROUPINGS:
        auto, source = cost_auto(an, ragged, g)
        assert source == "rollups+raw"
        raw = cost(an, ragged, g)
        keys = [c for c in raw.columns if c in ("hour", "day", *CALL_KEYS)]
        auto, raw = (df.sort(keys, nulls_last=True) if keys else df for df in (auto, raw))
        assert_frame_equal(auto, raw, check_dtypes=False, rel_tol=1e-9, abs_tol=1e-15)
    # The window starts 5 ms after T0: task A (T0) and its call (T0 + 1 ms) fall outside it;
    # B (T0 + 10 ms), C and D are in: 3 tasks, and 4 calls (B's, C's two, D's).
    (row,) = cost_auto(an, ragged)[0].to_dicts()
    assert (row["tasks"], row["calls"]) == (3, 4)  # B, C, D; calls of B, C (two), D
