"""The lake on S3-compatible object storage (a real moto server): the same views and results
as a local lake, exactly-once flushes and replays, compaction, retention and the lease."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import spanlake.storage.objectstore as objectstoremod
from spanlake.collector.decode import decode_logs, decode_spans
from spanlake.storage.compact import JOURNAL_DIR, LEASE, compact, exclusive
from spanlake.storage.layout import DataDir
from spanlake.storage.objectstore import S3Store
from spanlake.storage.reader import Lake, is_vanished_file_error
from spanlake.storage.retention import apply_retention
from spanlake.storage.schema import LOGS, SPANS
from spanlake.storage.writer import LakeWriter
from tests.collector.test_recovery import SPANS_PER_REQUEST, new_flusher, write_segment
from tests.conftest import start_collector
from tests.factories import any_value, make_logs_request, make_request, make_span

HOUR_NS = 3600 * 10**9
NOW_NS = (time.time_ns() // HOUR_NS) * HOUR_NS + 60 * 10**9


def spans(*names: str, hour: int = 0) -> list[Any]:
    """Spans of one trace with ids derived from their names (the same name is the same span)."""
    return [
        make_span(
            name,
            trace_id=b"\x07" * 16,
            span_id=name.encode().ljust(8, b"_")[:8],
            parent_span_id=b"" if name == "root" else b"root____",
            start_ns=NOW_NS - hour * HOUR_NS + sum(name.encode()) * 1000,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7, "gen_ai.request.model": "m"},
        )
        for name in names
    ]


def fill(data_dir: DataDir) -> None:
    """The same rows in any lake: two projects, three hours, re-sent spans, logs."""
    w = LakeWriter(data_dir)
    for stem, items, project in (
        ("s1", spans("root", "a", "b"), "alpha"),
        ("s2", spans("a", "c"), "alpha"),
        ("s3", spans("x", hour=1), "beta"),
        ("s4", spans("z", "y", hour=2), "beta"),
    ):
        w.write_batch(SPANS, decode_spans(make_request(items, resource={"spanlake.project": project}), NOW_NS), stem)
        w.mark_flushed(stem)
    records = [LogRecord(time_unix_nano=NOW_NS + i, body=any_value(b)) for i, b in enumerate(["hi", "yo", "hi"])]
    w.write_batch(LOGS, decode_logs(make_logs_request(records), NOW_NS), "s5")


QUERIES = (
    "SELECT * EXCLUDE (ingested_at) FROM spans ORDER BY ALL",
    "SELECT * FROM traces ORDER BY project, trace_id",
    "SELECT * EXCLUDE (ingested_at) FROM logs ORDER BY record_id",
    "SELECT project, date, hour, count(*) AS n FROM spans_raw GROUP BY ALL ORDER BY ALL",
    "SELECT request_model, attr(attributes, 'gen_ai.operation.name') AS op, count(*) AS n FROM spans "
    "WHERE project = 'alpha' GROUP BY ALL",
)


def results(lake: Lake) -> list[list[dict[str, Any]]]:
    return [lake.query(q).to_pylist() for q in QUERIES]


def test_s3_lake_reads_like_a_local_lake(tmp_path: Path, s3_lake: str) -> None:
    local = DataDir(tmp_path / "local").create()
    remote = DataDir(tmp_path / "remote", s3_lake).create()
    empty = Lake(DataDir(tmp_path / "empty", s3_lake + "-empty"))
    assert empty.query("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 0}]  # typed, empty

    fill(local)
    fill(remote)
    assert remote.is_remote and not (tmp_path / "remote" / "lake").exists(), "nothing of the lake on local disk"
    keys = {e.rel for e in remote.store.list_files("")}
    assert {k.split("/")[0] for k in keys} == {"spans", "logs", "_flushed"}
    assert all(k.endswith(".parquet") for k in keys if not k.startswith("_flushed/"))

    assert results(Lake(remote)) == results(Lake(local))
    assert Lake(remote).query("SELECT count(*) AS n FROM spans_raw").to_pylist() == [{"n": 8}]
    assert Lake(remote).query("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 7}]

    con = Lake(remote).connect()
    try:  # partition keys and projections reach the Arrow scan
        plan = "\n".join(str(r[1]) for r in con.sql("EXPLAIN SELECT name FROM spans_raw WHERE hour = 1").fetchall())
    finally:
        con.close()
    assert "ARROW_SCAN" in plan.upper() and "hour" in plan


def test_a_listed_object_deleted_before_the_read_is_retried(tmp_path: Path, s3_lake: str) -> None:
    dd = DataDir(tmp_path / "d", s3_lake)
    fill(dd)
    con = Lake(dd).connect()
    try:
        (victim,) = [e.rel for e in dd.store.list_files("spans", ".parquet") if e.name == "s3.parquet"]
        dd.store.delete([victim])
        with pytest.raises(duckdb.Error) as err:
            con.sql("SELECT count(*) FROM spans_raw").fetchall()
        assert is_vanished_file_error(err.value)
    finally:
        con.close()
    assert Lake(dd).query("SELECT count(*) AS n FROM spans_raw").to_pylist() == [{"n": 7}]  # a fresh listing


def test_flush_to_s3_is_exactly_once_across_a_crash(
    tmp_path: Path, s3_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spanlake.collector.flusher as flushermod

    monkeypatch.setattr(flushermod, "PART_ROWS", 40)  # several objects per segment
    dd = DataDir(tmp_path / "data", s3_lake).create()
    segment = write_segment(dd)
    saved = segment.read_bytes()

    real = S3Store.publish
    calls = {"n": 0}

    def dying(self: S3Store, rel: str, data: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies while uploading the third object
        real(self, rel, data)

    monkeypatch.setattr(S3Store, "publish", dying)
    with pytest.raises(KeyboardInterrupt):
        new_flusher(dd).flush_segment(segment)
    monkeypatch.setattr(S3Store, "publish", real)
    assert len(dd.store.list_files("spans", ".parquet")) == 2 and not dd.store.list_files("_flushed")

    new_flusher(dd).flush_segment(segment)  # restart: replay overwrites the same objects
    lake = Lake(dd)
    counts = lake.query("SELECT count(*) AS n, count(DISTINCT (trace_id, span_id)) AS d FROM spans_raw").to_pylist()
    assert counts == [{"n": 30 * SPANS_PER_REQUEST, "d": 30 * SPANS_PER_REQUEST}]
    assert dd.store.exists(f"_flushed/{segment.stem}")

    # Crash after the marker, before the segment was deleted; meanwhile compaction merged.
    segment.write_bytes(saved)
    assert compact(dd, min_age_s=0, in_flight=set()).files_in > 0
    new_flusher(dd).flush_segment(segment)
    assert not segment.exists()
    assert lake.query("SELECT count(*) AS n FROM spans_raw").to_pylist() == [{"n": 30 * SPANS_PER_REQUEST}]


def test_compaction_on_s3_merges_dedups_and_recovers_from_a_crash(
    tmp_path: Path, s3_lake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spanlake.storage.compact as compactmod

    dd = DataDir(tmp_path / "d", s3_lake)
    fill(dd)
    late = make_request(spans("late"), resource={"spanlake.project": "alpha"})
    LakeWriter(dd).write_batch(SPANS, decode_spans(late, NOW_NS), "unmarked-0000")
    lake = Lake(dd)
    before = results(lake)

    real_remove = compactmod._remove
    monkeypatch.setattr(compactmod, "_remove", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # merged object published, sources not yet deleted
        compact(dd, min_age_s=0)
    monkeypatch.setattr(compactmod, "_remove", real_remove)
    assert [e.rel for e in dd.store.list_files(JOURNAL_DIR, ".json")]
    assert results(lake)[:3] == before[:3]

    result = compact(dd, min_age_s=0)  # finishes the interrupted one first
    assert not result.skipped_busy
    files = [e.name for e in dd.store.list_files("spans/project=alpha", ".parquet")]
    assert len([f for f in files if f.startswith("compacted-")]) == 1
    assert "unmarked-0000.parquet" in files, "a segment not marked flushed is left alone"
    assert lake.query("SELECT (SELECT count(*) FROM spans_raw) - (SELECT count(*) FROM spans) AS d").to_pylist() == [
        {"d": 0}
    ]
    after = results(lake)
    assert after[:3] == before[:3] and after[4] == before[4]  # the deduplicated views never change
    assert not dd.store.list_files(JOURNAL_DIR, ".json")


def test_the_compaction_lease_admits_one_holder(tmp_path: Path, s3_lake: str) -> None:
    dd = DataDir(tmp_path / "d", s3_lake)
    fill(dd)
    other = {"holder": "another-host/1/abc", "expires": time.time() + 600}
    dd.store.put_bytes(LEASE, json.dumps(other).encode())
    assert compact(dd, min_age_s=0).skipped_busy
    assert apply_retention(dd, {"*": 1}).skipped_busy

    other["expires"] = time.time() - 1  # its holder died: the lease expired
    dd.store.put_bytes(LEASE, json.dumps(other).encode())
    with exclusive(dd) as held:
        assert held
        with exclusive(dd) as second:  # the same process, e.g. `spanlake compact` in a thread
            assert not second
        assert json.loads(dd.store.get_bytes(LEASE) or b"{}")["holder"] != other["holder"]
    assert not dd.store.exists(LEASE), "released on exit"


def test_retention_on_s3_deletes_only_expired_partitions(tmp_path: Path, s3_lake: str) -> None:
    dd = DataDir(tmp_path / "d", s3_lake)
    fill(dd)
    now = datetime.fromtimestamp(NOW_NS / 1e9, UTC)
    seen: list[str] = []
    result = apply_retention(dd, {"beta": 1}, now=now + timedelta(days=1), progress=lambda p, n: seen.append(p))
    # beta's hours 1 and 2 ago ended more than a day before `now + 1 day`; its hour 0 did not.
    assert result.partitions == 2 and len(seen) == 2
    rows = Lake(dd).query("SELECT DISTINCT project, name FROM spans ORDER BY ALL").to_pylist()
    assert {r["project"] for r in rows} == {"alpha"}
    assert apply_retention(dd, {}, now=now + timedelta(days=30)).partitions == 0  # no rule: keep forever


def test_collector_writes_its_lake_to_s3(tmp_path: Path, s3_lake: str) -> None:
    running, stop = start_collector(tmp_path / "data", lake=s3_lake)
    try:
        body = make_request(spans("root", "a"), resource={"spanlake.project": "alpha"}).SerializeToString()
        r = httpx.post(
            f"{running.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10
        )
        assert r.status_code == 200
        running.flush()
        lake = Lake(tmp_path / "data", lake=s3_lake)
        assert lake.query("SELECT name FROM spans ORDER BY name").to_pylist() == [{"name": "a"}, {"name": "root"}]
    finally:
        stop()
    assert not any((tmp_path / "data" / "wal").iterdir())
    assert objectstoremod.is_remote_url(s3_lake)


def test_cli_query_compact_and_retention_on_an_s3_lake(tmp_path: Path, s3_lake: str) -> None:
    from click.testing import CliRunner

    from spanlake.cli.main import cli

    dd = DataDir(tmp_path / "d", s3_lake)
    fill(dd)
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "cli"), "--lake", s3_lake]
    q = runner.invoke(cli, ["query", *base, "--format", "json", "SELECT count(*) AS n FROM spans"])
    assert q.exit_code == 0, q.output
    assert json.loads(q.output) == [{"n": 7}]
    c = runner.invoke(cli, ["compact", *base, "--min-age", "0"])
    assert c.exit_code == 0, c.output
    assert "duplicates dropped: 1" in c.output
    r = runner.invoke(cli, ["retention", *base, "--project", "beta", "--days", "1", "--dry-run"])
    assert r.exit_code == 0 and "0 partition(s)" in r.output, r.output
    assert Lake(dd).query("SELECT count(*) AS n FROM spans_raw").to_pylist() == [{"n": 7}]
