"""Budgets evaluated as the server does (evaluate.measure_all: rollup rows kept in memory,
edges from minute rows, analytics.rollups.row_cache) give the hand-worked figures of
test_budgets_measure, with and without hourly rollups; a second cycle over an unchanged lake
builds nothing from raw spans, and new spans rebuild only the hour they change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.budgets.evaluate import _CACHES, measure_all
from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from tests.analytics.helpers import T0, llm, span, write
from tests.analytics.test_budgets_measure import AT, HAND, MIN, PERCENTILE, TASK, budget, build, close

BOOK = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)


def lake(d: Path, rolled: bool) -> Analytics:
    build(d)
    an = Analytics(d, prices=BOOK)
    if rolled:
        rollups.run(an)
    return an


@pytest.mark.parametrize("rolled", [True, False], ids=["rollups", "no-rollups"])
def test_cached_figures_are_the_hand_values(tmp_path: Path, rolled: bool) -> None:
    an = lake(tmp_path, rolled)
    budgets = [budget(k) for k in HAND]
    ev = measure_all(an, budgets, AT)
    assert not ev.failures
    got = {r.budget.name: r for r in ev.readings}
    for key, (value, samples) in HAND.items():
        r = got[budget(key).name]
        assert (r.figure.since, r.figure.until) == (T0, AT)
        assert close(r.figure.value, value, key in PERCENTILE), (key, r.figure.value, value)
        assert r.figure.samples == samples, key
    cache = _CACHES[str(tmp_path)]
    assert cache.builds == (0 if rolled else 8)  # no rollups: minute rows of 10:00 and 11:00, four tables


def test_a_window_of_minutes_is_answered_from_minute_rows(tmp_path: Path) -> None:
    an = lake(tmp_path, rolled=True)
    # [10:05, 10:35): B (200 ms, failure) and C (400 ms, failure); A at 10:00 and D at 11:05 are out
    at = T0 + timedelta(minutes=35)
    ev = measure_all(an, [budget("success_rate", "30m"), budget("traffic", "30m"), budget("p50_latency", "30m")], at)
    r = {x.budget.metric: x.figure for x in ev.readings}
    assert (r["traffic"].value, r["success_rate"].value, r["success_rate"].source) == (2, 0.0, "rollups+raw")
    assert close(r["p50_latency"].value, 300.0, percentile=True)  # between 200 and 400


def test_only_changed_hours_are_built_again(tmp_path: Path) -> None:
    an = lake(tmp_path, rolled=False)
    traffic = budget("traffic")
    assert measure_all(an, [traffic], AT).readings[0].figure.value == 5
    cache = _CACHES[str(tmp_path)]
    first = cache.builds
    assert first == 2  # the tasks table's minute rows of 10:00 and 11:00
    assert measure_all(an, [traffic], AT).readings[0].figure.value == 5
    assert cache.builds == first  # nothing changed: nothing built
    # a new task at 11:40: the 11:00 hour is built again, 10:00 is not
    write(tmp_path, [
        span(40, 1, at_ms=100 * MIN, ms=50, name="H", **{TASK: "answer"}),
        span(40, 2, 1, at_ms=100 * MIN + 1, ms=10, name="chat", **llm("acme-1", 10)),
    ])  # fmt: skip
    assert measure_all(an, [traffic], AT).readings[0].figure.value == 6
    assert cache.builds == first + 1
