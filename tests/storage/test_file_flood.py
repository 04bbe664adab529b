"""One request of spans spread over thousands of hours makes a bounded number of files
(issue 14, item 3), and every span stays readable once, in its own hour: through the lake's
views, the trace list and the reports of a real collector, before and after compaction folds
the late-arrival area (storage.late), on a local lake and on S3."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanlake.collector.decode import decode_spans
from spanlake.storage.compact import compact
from spanlake.storage.late import FOLD_MIN_ROWS, LATE_DIR, MAX_HOUR_FILES
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.retention import apply_retention
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span

HOUR = timedelta(hours=1)
HOUR_NS = 3600 * 10**9
N = 5000
LLM = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1", "gen_ai.usage.input_tokens": 3}


def hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def flood_body(top: datetime) -> bytes:
    """N LLM spans, each its own trace, one per UTC hour: top - 1 h, top - 2 h, …, 10 min past the hour."""
    first = int((top - N * HOUR).timestamp()) * 10**9 + 600 * 10**9
    spans = [make_span(f"call-{i}", start_ns=first + i * HOUR_NS, attributes=LLM) for i in range(N)]
    return make_request(spans, {"service.name": "flood"}).SerializeToString()


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def post(c: RunningCollector, body: bytes) -> None:
    r = httpx.post(f"{c.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text


def api(c: RunningCollector, path: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(f"{c.http}{path}", params=params, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def check_every_span_once_in_its_hour(c: RunningCollector, top: datetime) -> None:
    lake = c.lake
    (row,) = lake.query(
        "SELECT count(*) AS n, count(DISTINCT (date, hour)) AS hours, "
        "count(*) FILTER (WHERE date = CAST(start_time AS DATE) AND hour = hour(start_time)) AS right_hour "
        "FROM spans WHERE service_name = 'flood'"
    ).to_pylist()
    assert row == {"n": N, "hours": N, "right_hour": N}
    since, until = (top - N * HOUR).isoformat(), top.isoformat()
    # A one-hour window (the trace list reads only that hour's partitions, plus the late area).
    hour = top - 1234 * HOUR
    one = api(c, "/api/v1/traces", since=hour.isoformat(), until=(hour + HOUR).isoformat(), limit=10)
    assert one["total"] == 1 and one["traces"][0]["name"] == f"call-{N - 1234}"
    assert api(c, "/api/v1/traces", since=since, until=until, limit=1)["total"] == N
    # The cost report by hour: every hour once, with its one call.
    rows = api(c, "/api/v1/reports/cost", since=since, until=until, group_by="hour", source="raw")["rows"]
    by_hour = {r["hour"]: r["calls"] for r in rows if r["calls"]}
    assert len(by_hour) == N and set(by_hour.values()) == {1}
    expected = {(top - i * HOUR).strftime("%Y-%m-%dT%H") for i in range(1, N + 1)}
    assert {h[:13] for h in by_hour} == expected


def test_a_request_over_5000_hours_makes_a_bounded_number_of_files(tmp_path: Path) -> None:
    c, stop = start_collector(tmp_path / "data", compaction=False)
    try:
        top = hour_floor(datetime.now(UTC))
        body = flood_body(top)
        post(c, body)
        c.flush()
        lake = DataDir(tmp_path / "data").lake
        files = parquet_files(lake)
        assert len(files) <= MAX_HOUR_FILES + 1, len(files)  # 24 hour partitions and one late file
        assert len([f for f in files if LATE_DIR in f.parts]) == 1
        check_every_span_once_in_its_hour(c, top)

        post(c, body)  # the exporter retries: every span arrives twice
        c.flush()
        assert len(parquet_files(lake)) <= 2 * (MAX_HOUR_FILES + 1)
        assert c.query("SELECT count(*) AS n FROM spans_raw")[0]["n"] == 2 * N
        check_every_span_once_in_its_hour(c, top)

        result = compact(DataDir(tmp_path / "data"), min_age_s=0)
        assert result.rows_out == N and result.late_hours_folded == 0  # sparse hours stay in the late area
        files = parquet_files(lake)
        assert len(files) <= MAX_HOUR_FILES + 1, len(files)
        assert c.query("SELECT count(*) AS n FROM spans_raw")[0]["n"] == N  # duplicates dropped for good
        check_every_span_once_in_its_hour(c, top)
    finally:
        stop()


def test_spans_outside_the_configured_window_are_rejected(tmp_path: Path) -> None:
    c, stop = start_collector(tmp_path / "data", max_past_s=3600, max_future_s=60)
    try:
        now = time.time_ns()
        spans = [make_span("ok", start_ns=now), make_span("old", start_ns=now - 2 * HOUR_NS)]
        spans.append(make_span("future", start_ns=now + 120 * 10**9))
        r = httpx.post(
            f"{c.http}/v1/traces",
            content=make_request(spans).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert r.status_code == 200
        partial = ExportTraceServiceResponse.FromString(r.content).partial_success
        assert partial.rejected_spans == 2 and "too far in the past" in partial.error_message
        c.flush()
        assert [r["name"] for r in c.query("SELECT name FROM spans")] == ["ok"]
    finally:
        stop()


# The lake level, local and on S3: folding into partitions, exactly once across the late
# area and the hour partitions, retention of late rows.

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


def _write(dd: DataDir, stem: str, spans: list[Any], max_hours: int) -> None:
    w = LakeWriter(dd, max_hour_files=max_hours)
    w.write_batch(SPANS, decode_spans(make_request(spans), time.time_ns()), stem)
    w.mark_flushed(stem.rsplit("-", 1)[0])


def _counts(lake: Lake) -> dict[str, Any]:
    (row,) = lake.query(
        "SELECT count(*) AS n, count(*) FILTER (WHERE hour = hour(start_time) AND date = CAST(start_time AS DATE)) "
        "AS right_hour, (SELECT count(*) FROM spans_raw) AS raw FROM spans"
    ).to_pylist()
    return row


def _fold_and_expire(dd: DataDir) -> None:
    lake = Lake(dd)
    dense = [make_span(f"d{i}", start_ns=T0_NS + 5 * HOUR_NS + i * 10**6) for i in range(FOLD_MIN_ROWS)]
    big = [make_span(f"b{i}", start_ns=T0_NS + 9 * HOUR_NS + i * 10**6) for i in range(FOLD_MIN_ROWS + 1)]
    sparse = [make_span(f"s{i}", start_ns=T0_NS + (20 + i) * HOUR_NS) for i in range(30)]
    # One hour partition per write: `big` gets hour 9; hour 5 (dense) and the sparse hours go late.
    _write(dd, "seg1-0000", big + dense + sparse, max_hours=1)
    # A re-send of a span already in hour 9's partition arrives late: counted once all the same.
    _write(dd, "seg2-0000", [big[0], make_span("x", start_ns=T0_NS + 400 * HOUR_NS), *sparse[:2]], max_hours=1)
    spans = 2 * FOLD_MIN_ROWS + 32
    assert _counts(lake) == {"n": spans, "right_hour": spans, "raw": spans + 3}

    result = compact(dd, min_age_s=0)
    assert result.late_hours_folded == 2  # hour 5 (dense) and hour 9 (has a partition); the sparse stay
    assert _counts(lake) == {"n": spans, "right_hour": spans, "raw": spans + 1}  # hour 9's copy until merged
    rels = sorted(e.rel for e in dd.store.list_files("", ".parquet"))
    assert len([r for r in rels if r.startswith(LATE_DIR)]) == 1
    assert any("hour=05" in r for r in rels) and not any("hour=20" in r for r in rels)
    compact(dd, min_age_s=0)  # hour 9's two files merged; nothing else to do
    assert _counts(lake)["raw"] == spans

    # Keep only what starts from T0 + 25 h: hours 5 and 9 go, sparse hours 20-24 go row by row.
    apply_retention(dd, {"*": 1}, now=T0 + timedelta(hours=25) + timedelta(days=1))
    assert _counts(lake) == {"n": 26, "right_hour": 26, "raw": 26}
    (row,) = lake.query("SELECT min(start_time) AS first FROM spans").to_pylist()
    assert row["first"] == T0 + timedelta(hours=25)


def test_compaction_folds_late_rows_into_hours_and_retention_expires_them(tmp_path: Path) -> None:
    _fold_and_expire(DataDir(tmp_path / "data").create())


def test_the_same_on_object_storage(tmp_path: Path, s3_lake: str) -> None:
    _fold_and_expire(DataDir(tmp_path / "data", s3_lake).create())


@pytest.mark.parametrize("max_hours", [None, 3])
def test_a_late_file_and_its_hour_partition_count_a_span_once(tmp_path: Path, max_hours: int | None) -> None:
    """A compacted partition (read without de-duplication) whose hour has late rows is de-duplicated."""
    dd = DataDir(tmp_path / "data").create()
    spans = [make_span(f"s{i}", start_ns=T0_NS + i * HOUR_NS) for i in range(5)]
    _write(dd, "a-0000", spans, max_hours=None)
    compact(dd, min_age_s=0)  # five partitions, each one compacted file
    _write(dd, "b-0000", [*spans, make_span("new", start_ns=T0_NS + 100 * HOUR_NS)], max_hours=max_hours)
    assert _counts(Lake(dd))["n"] == 6
