"""Analytics.run_many: several report queries on one connection, each bounded by its own window."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy, Params, SpanSource
from tests.analytics.helpers import T0, span, write


def test_run_many_keeps_each_window(tmp_path: Path) -> None:
    day = 24 * 3600 * 1000
    write(tmp_path, [span(1, 1, name="a"), span(2, 1, at_ms=2 * day, name="b"), span(3, 1, at_ms=2 * day, name="c")])
    write(tmp_path, [span(4, 1, at_ms=day, name="between")], resource={"service.name": "other"})
    an = Analytics(tmp_path, prices=PriceBook(use_database=False))

    def names(p: Params) -> str:
        return "_ AS (SELECT 1) SELECT list(name ORDER BY name) AS names FROM sp"

    first = Filters(since=T0, until=T0 + timedelta(hours=1))
    third = Filters(since=T0 + timedelta(days=2), until=T0 + timedelta(days=2, hours=1))
    jobs = [(SpanSource(first, GroupBy(), priced=False), names), (SpanSource(third, GroupBy()), names)]
    # one connection reads the partitions of days 1 to 3; each query still sees only its window
    got = [df["names"].to_list() for df in an.run_many(jobs)]
    assert got == [[["a"]], [["b", "c"]]]
    assert got == [an.run(src, body)["names"].to_list() for src, body in jobs]
