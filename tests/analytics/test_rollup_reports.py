"""Every report read from rollups agrees with the same report over raw spans — exactly for
counts, sums and rates, within sketch.ALPHA for percentiles — on data designed to trap
mistakes (a retry, a duplicated span, a late root, an unpriced model, a task and a retry
across an hour boundary, a label arriving after the rollup), and with hand-worked numbers."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal, assert_series_equal

from spanlake.analytics import sketch
from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import compare, latency, retrieval, tasks, validation
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.rollups.state import fresh_hours
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.overview import overview
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, PartitionKey
from spanlake.storage.schema import LABELS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, judge_event, llm, span, tid, write, write_labels

H = 3_600_000  # ms
TASK, OUTCOME = "spanlake.task.name", "spanlake.task.outcome"
CHECK = "spanlake.validation.name"
PASSED = "spanlake.validation.passed"
ERRORS = "spanlake.validation.errors"
MSGS = ["field 'age' missing at line 3", "too long: 812 > 500"]
TOOL = {"gen_ai.operation.name": "execute_tool"}
KB = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}
STREAMED = {"gen_ai.response.time_to_first_chunk": 0.12}
DOCS = json.dumps([{"id": "a", "score": 0.9}, {"id": "b", "score": 0.5}])
PCT = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms")
ALL = Filters(since=T0, until=T0 + timedelta(hours=3))
WINDOWS = [
    ALL,
    Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)),
    Filters(since=T0 + timedelta(minutes=15), until=T0 + timedelta(hours=2, minutes=30)),  # ragged
    Filters(since=T0, until=T0 + timedelta(hours=3), model="acme-1", prompt_version="v1"),
]


def build(d: Path) -> None:
    """Six traces over hours 10, 11 and 12 (T0 = 10:00 UTC); trace 3's root arrives later (`late_root`)."""
    call_1 = span(1, 2, 1, at_ms=1, ms=50, name="chat", **llm("acme-1", 1000))
    write(
        d,
        [
            # 1: app success; a tool call fails and is retried; a passing check
            span(1, 1, at_ms=0, ms=100, name="A", **{TASK: "a", OUTCOME: "success"}),
            call_1,
            span(1, 3, 1, at_ms=10, ms=5, name="search", error=True, **TOOL),
            span(1, 4, 1, at_ms=20, ms=7, name="search", **TOOL),
            span(1, 5, 1, at_ms=60, ms=2, name="schema", **{CHECK: "schema", PASSED: True}),
            # 2: an unpriced model and a failed check → failure (validation), until a reviewer passes it
            span(2, 1, at_ms=20 * 60_000, ms=300, name="B", **{TASK: "b"}),
            span(2, 2, 1, at_ms=20 * 60_000 + 5, ms=80, name="chat", **llm("mystery-9", 100, "v2")),
            span(
                2, 3, 1, at_ms=20 * 60_000 + 90, ms=3, name="schema", **{CHECK: "schema", PASSED: False, ERRORS: MSGS}
            ),
            # 3: only the child so far (its root arrives late)
            span(3, 2, 1, at_ms=30 * 60_000 + 5, ms=40, name="chat", **llm("acme-1", 2000)),
            # 4: task span ERROR; a streamed call; a retrieval with two documents and an empty one
            span(4, 1, at_ms=H + 10 * 60_000, ms=2000, name="D", error=True, **{TASK: "d"}),
            span(4, 2, 1, at_ms=H + 10 * 60_000 + 5, ms=900, name="chat", **llm("acme-1", 500, **STREAMED)),
            span(4, 3, 1, at_ms=H + 10 * 60_000 + 950, ms=30, name="kb", **KB, **{"gen_ai.retrieval.documents": DOCS}),
            span(4, 4, 1, at_ms=H + 10 * 60_000 + 990, ms=10, name="kb", **KB, **{"gen_ai.retrieval.documents": "[]"}),
            # 5: a task starting at 10:59:59.9 whose call starts at 11:00:00.1
            span(5, 1, at_ms=H - 100, ms=400, name="E", **{TASK: "e", OUTCOME: "success"}),
            span(5, 2, 1, at_ms=H + 100, ms=200, name="chat", **llm("acme-1", 250)),
            # 6: a tool fails at 11:59:59.5 and is retried at 12:00:00.2
            span(6, 1, at_ms=2 * H - 1000, ms=3000, name="F", **{TASK: "f", OUTCOME: "failure"}),
            span(6, 2, 1, at_ms=2 * H - 500, ms=100, name="search", error=True, **TOOL),
            span(6, 3, 1, at_ms=2 * H + 200, ms=100, name="search", **TOOL),
        ],
    )
    write(d, [call_1])  # the exporter retried: the same call delivered twice


def late_root(d: Path) -> None:
    write(d, [span(3, 1, at_ms=30 * 60_000, ms=700, name="C", **{TASK: "c"})])


def add_label(d: Path, trace: int, verdict: str, at: datetime) -> None:
    """A reviewer's verdict on a whole trace, written as the collector writes label events."""
    row = {c.name: None for c in LABELS.columns}
    row.update(label_id=uuid.uuid4().hex, trace_id=tid(trace).hex(), source="human", author="ana",
               created_at=at, verdict=verdict, ingested_at=at)  # fmt: skip
    key = PartitionKey(DEFAULT_PROJECT, at.date(), at.hour)
    LakeWriter(DataDir(d)).write_batch(LABELS, {key: {k: [v] for k, v in row.items()}}, uuid.uuid4().hex)


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    build(tmp_path)
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
    return Analytics(tmp_path, prices=book)


def agree(rolled: pl.DataFrame, raw: pl.DataFrame, keys: list[str]) -> None:
    """Same columns and rows; percentiles within ALPHA (or 1 µs), everything else equal."""
    assert rolled.height == raw.height
    if raw.height == 0:
        return
    assert rolled.columns == raw.columns
    if keys and raw.height:
        rolled, raw = rolled.sort(keys, nulls_last=True), raw.sort(keys, nulls_last=True)
    for c in raw.columns:
        if c in PCT:
            for a, b in zip(rolled[c].to_list(), raw[c].to_list(), strict=True):
                assert (a is None) == (b is None), c
                if b is not None:
                    assert abs(a - b) <= sketch.ALPHA * abs(b) + 1e-3, (c, a, b)
        else:
            assert_series_equal(rolled[c], raw[c], check_dtypes=False, rel_tol=1e-9, abs_tol=1e-15)


REPORTS: list[tuple[str, list[list[str]], Callable[..., pl.DataFrame]]] = [
    ("latency", [[], ["model"], ["hour"], ["name", "prompt_version"]], latency),
    ("tasks", [[], ["outcome_source"], ["outcome", "hour"], ["model", "task_name"]], tasks),
    ("validation", [["validator"], ["validator", "prompt_version"], ["validator", "day"]], validation),
    ("retrieval", [["data_source"], ["data_source", "model"]], retrieval),
]


def check_all(an: Analytics, windows: list[Filters], expect: str | None) -> None:
    for f in windows:
        for name, groupings, raw_fn in REPORTS:
            for g in groupings:
                rolled, source = run_report(an, name, f, g, source="auto")
                if expect:
                    assert source == (expect if f.since.minute == 0 else "rollups+raw"), (name, g, f)
                keys = [c for c in rolled.columns if c in ("level", "hour", "day", *g)]
                agree(rolled, raw_fn(an, f, g), keys)
        for by, a, b in (("prompt_version", "v1", "v2"), ("model", "acme-1", "mystery-9")):
            rolled, _ = run_report(an, "compare", f, by=by, a=a, b=b)
            raw = compare(an, f, by, a, b)
            agree(rolled.head(2), raw.head(2), [])


def test_every_report_agrees_with_raw_spans(an: Analytics) -> None:
    result = rollups.run(an)
    assert result.full_rebuild and result.hours_seen == 3
    assert set(result.rebuilt) == set(rollups.TABLES)
    check_all(an, WINDOWS, "rollups")


def test_hand_worked_numbers_from_rollups(an: Analytics) -> None:
    rollups.run(an)
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    # tasks a, b, d, e, f (c's root has not arrived): a, e success (app); f failure (app);
    # b failure (validation); d failure (error)
    assert (t["tasks"], t["successful_tasks"], t["failed_tasks"], t["unknown_tasks"]) == (5, 2, 3, 0)
    assert (t["from_app"], t["from_validation"], t["from_error"], t["from_label"]) == (3, 1, 1, 0)
    # acme-1 at $1/Mtok: a 1000 (delivered twice, counted once), d 500, e 250; b's mystery-9 unpriced;
    # trace 3's call has no task yet
    assert t["task_cost_usd"] == pytest.approx(1750 / 1e6) and t["task_unpriced_calls"] == 1
    assert t["cost_per_successful_task"] == pytest.approx(1750 / 1e6 / 2)
    lat = {r["level"]: r for r in run_report(an, "latency", ALL, source="rollups")[0].to_dicts()}
    # tool steps: 5, 7 (retry of 5), 100 (error), 100 (retry across 12:00)
    assert (lat["tool"]["count"], lat["tool"]["repeats"], lat["tool"]["retries"]) == (4, 2, 2)
    assert lat["tool"]["error_rate"] == 0.5
    # task durations 100, 300, 400, 2000, 3000: p50 = 400 (within 1 %), max exact
    assert lat["task"]["p50_ms"] == pytest.approx(400, rel=sketch.ALPHA) and lat["task"]["max_ms"] == 3000
    assert lat["llm"]["ttft_count"] == 1 and lat["llm"]["ttft_p50_ms"] == pytest.approx(120, rel=sketch.ALPHA)
    (kb,) = run_report(an, "retrieval", ALL, source="rollups")[0].to_dicts()
    assert (kb["queries"], kb["docs_per_query"], kb["empty_rate"]) == (2, 1.0, 0.5)
    assert kb["avg_top1_score"] == pytest.approx(0.9) and kb["mean_score"] == pytest.approx(0.7)
    (v,) = run_report(an, "validation", ALL, source="rollups")[0].to_dicts()
    assert (v["validator"], v["checks"], v["failures"], v["failure_rate"]) == ("schema", 2, 1, 0.5)


def test_a_late_root_rebuilds_its_hour(an: Analytics) -> None:
    rollups.run(an)
    late_root(an.lake.data_dir.root)
    assert 10 not in {h.hour for h in fresh_hours(an, rollups.TABLES["tasks"], ALL.since, ALL.until)}
    check_all(an, WINDOWS[:1], None)  # stale hours come from raw spans meanwhile
    result = rollups.run(an)
    assert result.rebuilt["calls"] == 1 and not result.full_rebuild
    check_all(an, [ALL, WINDOWS[2]], "rollups")
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    assert (t["tasks"], t["unknown_tasks"]) == (6, 1)  # c, decided by the default
    assert t["task_cost_usd"] == pytest.approx(3750 / 1e6)


def test_a_label_after_the_rollup_overrides_the_outcome(an: Analytics) -> None:
    rollups.run(an)
    add_label(an.lake.data_dir.root, 2, "pass", datetime(2025, 6, 3, 9, tzinfo=UTC))
    # the label's hour is not the trace's: the trace-id index finds trace 2 in hour 10
    assert {h.hour for h in fresh_hours(an, rollups.TABLES["tasks"], ALL.since, ALL.until)} == {11, 12}
    assert {h.hour for h in fresh_hours(an, rollups.TABLES["steps"], ALL.since, ALL.until)} == {10, 11, 12}
    rolled, source = run_report(an, "tasks", ALL, ["outcome_source"])
    assert source == "rollups+raw"
    agree(rolled, tasks(an, ALL, ["outcome_source"]), ["outcome_source"])
    result = rollups.run(an)
    assert result.labelled_hours == 1 and result.rebuilt["tasks"] == 1 and result.rebuilt["calls"] == 0
    check_all(an, [ALL], "rollups")
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    assert (t["successful_tasks"], t["from_label"], t["from_validation"]) == (3, 1, 0)
    o = overview(an, ALL, bucket="hour")
    assert o.source == "rollups" and (o.current["tasks"], o.current["successful_tasks"]) == (5, 3)


def test_a_deciding_judge_after_the_rollup_decides_the_outcome(an: Analytics) -> None:
    rollups.run(an)
    at = datetime(2025, 6, 3, 9, tzinfo=UTC)
    # trace 1 (a: app success) judged fail by an evaluator that decides; trace 6 (f: app failure)
    # judged pass by one that does not
    write_labels(
        an.lake.data_dir.root,
        [judge_event(1, at, "fail", decides=True), judge_event(6, at, "pass", name="h", decides=False)],
    )
    result = rollups.run(an)
    # hours of the labelled traces: 10 (trace 1); 11 and 12 (trace 6 runs across 12:00)
    assert result.labelled_hours == 3 and result.rebuilt["tasks"] == 3
    check_all(an, [ALL], "rollups")
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    # a fails now (judge); e success (app); f failure (app); b validation; d error
    assert (t["successful_tasks"], t["failed_tasks"], t["from_judge"], t["from_app"]) == (1, 4, 1, 2)
    o = overview(an, ALL, bucket="hour")
    assert o.source == "rollups" and (o.current["tasks"], o.current["successful_tasks"]) == (5, 1)


LISTS = [
    ("unpriced", {}),
    ("validation-errors", {"limit": 1}),
    ("validation-errors", {}),
    ("retrieved-documents", {"limit": 1}),
    ("task-list", {"sort": "cost"}),
    ("task-list", {"sort": "duration", "outcome": "failure"}),
    ("task-list", {"sort": "start", "limit": 1}),
    ("task-list", {"sort": "duration", "limit": 1, "outcome": "success"}),
]


@pytest.mark.parametrize("top_n", [100, 1])
def test_list_reports_agree_with_raw_spans(an: Analytics, top_n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # With TOP_N = 1 each hour keeps only its first task per sort and outcome: still exact for limit 1.
    monkeypatch.setattr(importlib.import_module("spanlake.analytics.reports.tasks"), "TOP_N", top_n)
    rollups.run(an, full=True)
    for f in WINDOWS:
        for name, kw in LISTS:
            rolled, source = run_report(an, name, f, **kw)  # type: ignore[arg-type]
            raw, _ = run_report(an, name, f, source="raw", **kw)  # type: ignore[arg-type]
            too_many = kw.get("limit", 20) > top_n  # type: ignore[operator]
            if name == "task-list" and (f.model is not None or too_many):
                assert source == "raw", (name, kw, f)
            else:
                assert source == ("rollups" if f.since.minute == 0 else "rollups+raw"), (name, kw, f)
            assert_frame_equal(rolled, raw, check_dtypes=False)
    errors = run_report(an, "validation-errors", ALL)[0].to_dicts()
    assert [(e["pattern"], e["occurrences"]) for e in errors] == [("field '…' missing at line #", 1),
                                                                  ("too long: # > #", 1)]  # fmt: skip
    assert errors[0]["example"] == "field 'age' missing at line 3" and errors[0]["example_trace_id"] == tid(2).hex()
    assert run_report(an, "unpriced", ALL)[0].select("model", "calls").rows() == [("mystery-9", 1)]
    docs = run_report(an, "retrieved-documents", ALL)[0]
    assert docs.select("document_id", "retrievals").rows() == [("a", 1), ("b", 1)]
    top = run_report(an, "task-list", ALL, sort="duration", limit=1)[0]
    assert top["task_name"].to_list() == ["f"]  # 3000 ms


def test_overview_agrees_with_raw_spans(an: Analytics) -> None:
    late_root(an.lake.data_dir.root)
    rollups.run(an)
    for f in [*WINDOWS[:3], Filters(since=T0, until=T0 + timedelta(hours=3), model="acme-1")]:
        for bucket in ("hour", "day"):
            rolled, raw = overview(an, f, bucket=bucket), overview(an, f, bucket=bucket, source="raw")
            assert rolled.source == ("rollups" if f.since.minute == 0 else "rollups+raw")
            assert raw.source == "raw"
            for period in ("current", "previous"):
                a, b = rolled.__getattribute__(period), raw.__getattribute__(period)
                agree(pl.DataFrame([a]), pl.DataFrame([b]), [])
            agree(rolled.trend, raw.trend, ["bucket"])
    o = overview(an, ALL, bucket="hour")
    # a, b, c, d, e, f: a and e succeed; costs 1000 + 2000 + 500 + 250
    assert (o.current["tasks"], o.current["successful_tasks"]) == (6, 2)
    assert o.current["task_cost_usd"] == pytest.approx(3750 / 1e6)
    assert o.current["validation_failure_rate"] == 0.5 and o.current["error_rate"] == pytest.approx(1 / 6)


def test_what_rollups_cannot_answer_reads_raw(an: Analytics) -> None:
    rollups.run(an)
    assert run_report(an, "latency", ALL, ["attr:gen_ai.operation.name"])[1] == "raw"
    assert run_report(an, "latency", ALL, slow_ms=100)[1] == "raw"
    assert run_report(an, "tasks", ALL, ["minute"])[1] == "raw"
    assert run_report(an, "tasks", Filters(since=T0, until=ALL.until, attributes={TASK: "a"}))[1] == "raw"
    with pytest.raises(ValueError, match="rollups cannot answer"):
        run_report(an, "tasks", ALL, ["minute"], source="rollups")
    assert overview(an, Filters(since=T0, until=T0 + timedelta(hours=2)), bucket="minute").source == "raw"


def test_sketch_percentiles_are_within_alpha_of_exact() -> None:
    import duckdb
    import numpy as np

    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(4, 2, 20_000), [0.0, 0.0004, 1e7], rng.integers(1, 50, 500)])
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest($v)::DOUBLE AS x, (random() * 5)::INT AS g", {"v": values.tolist()})
    qs = [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999]
    hist = pl.from_arrow(
        con.sql(f"""SELECT * EXCLUDE (_h_d), {sketch.unpack_sql("d")} FROM (
        SELECT g, {sketch.agg_sql("x", "d")} FROM t GROUP BY g)""").to_arrow_table()
    )
    names = [f"q{i}" for i in range(len(qs))]
    got = sketch.quantiles(hist, ["g"], "d", qs, names).sort("g")
    exact = con.sql(f"SELECT g, quantile_cont(x, {qs}) AS q FROM t GROUP BY g ORDER BY g").fetchall()
    for row, (_, ex) in zip(got.iter_rows(named=True), exact, strict=True):
        for n, e in zip(names, ex, strict=True):
            assert abs(row[n] - e) <= sketch.ALPHA * e + 1e-3, (n, row[n], e)
    for x in (0.0005, 0.0011, 1.0, 17.3, 5e6):  # every value is within ALPHA of its bucket's representative
        assert abs(sketch.representative(sketch.bucket_of(x)) - x) <= sketch.ALPHA * x + 1e-3


def test_trace_id_index_finds_a_trace_for_a_bare_link(an: Analytics) -> None:
    from spanlake.analytics.traces.detail import trace_detail
    from spanlake.storage import trace_index

    dd = an.lake.data_dir
    assert trace_index.trace_hours(dd, tid(5).hex()) == []  # not indexed yet
    rollups.run(an)
    assert trace_index.index_dir(dd) == rollups.rollup_dir(dd) / "traces"  # the rollup job keeps the index
    hours = trace_index.trace_hours(dd, tid(5).hex().upper())
    assert hours == [T0, T0 + timedelta(hours=1)]  # root at 10:59:59.9, call at 11:00:00.1
    assert trace_index.trace_hours(dd, tid(5).hex(), project="elsewhere") == []
    d = trace_detail(an, tid(5).hex())
    assert d is not None and {s["name"] for s in d.spans} == {"E", "chat"}


def test_a_late_span_makes_only_its_traces_hours_stale(an: Analytics) -> None:
    rollups.run(an)
    # a late check of trace 6 at 12:30: hour 12 changed; trace 6 also has spans in hour 11, none in 10
    write(an.lake.data_dir.root, [span(6, 9, 1, at_ms=2 * H + 30 * 60_000, ms=4, name="schema",
                                       **{CHECK: "schema", PASSED: False})])  # fmt: skip
    hour = {h: T0 + timedelta(hours=h - 10) for h in (10, 11, 12)}
    assert fresh_hours(an, rollups.TABLES["calls"], ALL.since, ALL.until) == {hour[10], hour[11]}
    for table in ("tasks", "checks", "overview", "steps"):
        assert fresh_hours(an, rollups.TABLES[table], ALL.since, ALL.until) == {hour[10]}, table
    check_all(an, [ALL], None)  # hours 11 and 12 from raw spans meanwhile
    result = rollups.run(an)
    assert result.rebuilt["calls"] == 1 and result.rebuilt["tasks"] == 2 and not result.full_rebuild
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    assert (t["failed_tasks"], t["from_app"]) == (3, 3)  # f's app outcome outranks its failed check
    (v,) = run_report(an, "validation", ALL, source="rollups")[0].to_dicts()
    assert (v["checks"], v["failures"]) == (3, 2)


def test_compacted_label_files_rebuild_only_their_traces_hours(an: Analytics) -> None:
    from spanlake.storage.compact import compact

    rollups.run(an)
    d = an.lake.data_dir.root
    add_label(d, 4, "pass", datetime(2025, 6, 3, 9, 1, tzinfo=UTC))
    add_label(d, 4, "fail", datetime(2025, 6, 3, 9, 2, tzinfo=UTC))
    assert rollups.run(an).labelled_hours == 1  # trace 4 is in hour 11
    assert compact(an.lake.data_dir, min_age_s=0, settle_age_s=0).partitions >= 1  # label files merged
    result = rollups.run(an)
    # hour 10's span files were merged too (rebuilt with hour 11, which shares trace 5); not all hours
    assert not result.full_rebuild and result.labelled_hours == 1 and result.rebuilt["tasks"] == 2
    (t,) = run_report(an, "tasks", ALL, source="rollups")[0].to_dicts()
    assert (t["from_label"], t["failed_tasks"]) == (1, 3)  # d: the latest verdict, fail
