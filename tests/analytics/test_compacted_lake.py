"""Reports read the rows of compacted partitions without de-duplicating them again
(storage.reader.split_unique_files): the figures must be the same before compaction, after
it, and once a re-sent span lands next to a compacted file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import compare, cost, latency, task_list, tasks, validation
from spanlake.analytics.runner import Analytics
from spanlake.storage.compact import compact
from spanlake.storage.layout import DataDir
from tests.analytics.helpers import llm, span, write
from tests.analytics.test_rollup_reports import ALL, WINDOWS, build


def every_report(an: Analytics) -> list[pl.DataFrame]:
    out = []
    for f in WINDOWS:
        out += [
            latency(an, f, ["model"]),
            tasks(an, f, ["outcome_source"]),
            cost(an, f, ["model"]),
            task_list(an, f, sort="cost"),
            validation(an, f, ["validator"]),
            compare(an, f, "prompt_version", "v1", "v2"),
        ]
    return out


def same(now: list[pl.DataFrame], before: list[pl.DataFrame]) -> None:
    """Equal frames; sums may differ in the last bits (rows are added in another order)."""
    for a, b in zip(now, before, strict=True):
        assert_frame_equal(a, b, rel_tol=1e-12, abs_tol=1e-15)


def counts(an: Analytics) -> tuple[int, int, int]:
    (row,) = an.lake.query(
        "SELECT (SELECT count(*) FROM spans_raw_once), (SELECT count(*) FROM spans_raw), (SELECT count(*) FROM spans)"
    ).to_pylist()
    return tuple(row.values())  # type: ignore[return-value]


def test_reports_are_the_same_before_and_after_compaction_and_after_a_late_resend(tmp_path: Path) -> None:
    build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
    an = Analytics(tmp_path, prices=book)
    before = every_report(an)
    once, stored, distinct = counts(an)
    assert once == 0 and stored == distinct + 1  # the exporter's retry: one span stored twice

    result = compact(DataDir(tmp_path), min_age_s=0, min_files=1, settle_age_s=0)
    assert result.rows_in == stored and result.rows_out == distinct
    assert counts(an) == (distinct, distinct, distinct)  # every partition is one compacted file
    same(every_report(an), before)

    # The same call re-sent after the merge: its partition needs de-duplicating again.
    write(tmp_path, [span(1, 2, 1, at_ms=1, ms=50, name="chat", **llm("acme-1", 1000))])
    once, stored, distinct_now = counts(an)
    assert distinct_now == distinct and stored == distinct + 1 and once < distinct
    same(every_report(an), before)
    assert tasks(an, ALL)["tasks"].sum() == 5  # task 3's root has not arrived
