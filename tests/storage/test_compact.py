"""Compaction: merges and deduplicates a partition's files, leaves young files and files of
unflushed WAL segments alone, survives a crash halfway, runs one at a time, and never
changes what the deduplicated views return."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import spanlake.storage.compact as compactmod
from spanlake.collector.decode import decode_logs, decode_spans
from spanlake.collector.flusher import Flusher
from spanlake.collector.wal import KIND_TRACES, Record, WriteAheadLog
from spanlake.storage.compact import COMPACTED_PREFIX, JOURNAL_DIR, compact, exclusive, merge_groups
from spanlake.storage.layout import DataDir
from spanlake.storage.objectstore import FileEntry
from spanlake.storage.reader import Lake
from spanlake.storage.schema import LOGS, SCHEMA_VERSION_KEY, SPANS, Table
from spanlake.storage.writer import LakeWriter
from tests.factories import any_value, make_logs_request, make_request, make_span

HOUR_NS = 3600 * 10**9
NOW_NS = (time.time_ns() // HOUR_NS) * HOUR_NS + 60 * 10**9  # one minute into the current hour
OLD = time.time() - 3600


def seg(n: int) -> str:
    """A WAL-segment-like name."""
    return f"{n:020d}-0123456789ab"


def spans(*names: str, hour: int = 0, trace: bytes = b"\x01" * 16) -> list[Any]:
    """Spans with ids derived from their names: the same name is the same span."""
    return [
        make_span(
            name,
            trace_id=trace,
            span_id=name.encode().ljust(8, b"_")[:8],
            parent_span_id=b"" if name == "root" else b"root____",
            start_ns=NOW_NS - hour * HOUR_NS + sum(name.encode()) * 1000,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7},
        )
        for name in names
    ]


def write_spans(
    data_dir: DataDir, stem: str, items: list[Any], project: str = "alpha", ingested: int = 0
) -> list[Path]:
    batch = decode_spans(make_request(items, resource={"spanlake.project": project}), NOW_NS + ingested)
    writer = LakeWriter(data_dir)
    paths = writer.write_batch(SPANS, batch, stem)
    writer.mark_flushed(stem.rsplit("-", 1)[0])  # as the flusher does once a segment is published
    for p in paths:
        os.utime(p, (OLD, OLD))
    return paths


def write_logs(data_dir: DataDir, stem: str, bodies: list[str]) -> list[Path]:
    records = [LogRecord(time_unix_nano=NOW_NS + sum(b.encode()), body=any_value(b)) for b in bodies]
    batch = decode_logs(make_logs_request(records), NOW_NS)
    writer = LakeWriter(data_dir)
    paths = writer.write_batch(LOGS, batch, stem)
    writer.mark_flushed(stem.rsplit("-", 1)[0])
    for p in paths:
        os.utime(p, (OLD, OLD))
    return paths


def snapshot(lake: Lake) -> dict[str, Any]:
    """What users see: every view, in a stable order (ingested_at aside)."""
    return {
        "spans": lake.query("SELECT * EXCLUDE (ingested_at) FROM spans ORDER BY ALL").to_pylist(),
        "traces": lake.query("SELECT * FROM traces ORDER BY project, trace_id").to_pylist(),
        "logs": lake.query("SELECT * EXCLUDE (ingested_at) FROM logs ORDER BY record_id").to_pylist(),
    }


def raw_duplicates(lake: Lake) -> int:
    (row,) = lake.query(
        "SELECT (SELECT count(*) FROM spans_raw) - (SELECT count(*) FROM spans) AS s, "
        "(SELECT count(*) FROM logs_raw) - (SELECT count(*) FROM logs) AS l"
    ).to_pylist()
    return row["s"] + row["l"]


def files_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("*.parquet"))


@pytest.fixture
def data_dir(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "data").create()


def test_compaction_merges_dedups_and_leaves_results_identical(data_dir: DataDir) -> None:
    p_files = [
        *write_spans(data_dir, f"{seg(1)}-0000", spans("root", "a", "b"), ingested=3),
        *write_spans(data_dir, f"{seg(2)}-0000", spans("a", "c"), ingested=1),  # `a` re-sent
        *write_spans(data_dir, f"{seg(3)}-0000", spans("a", "d"), ingested=2),
        *write_spans(data_dir, f"{seg(3)}-0001", spans("e")),
    ]
    q_files = [
        *write_spans(data_dir, f"{seg(1)}-0000", spans("x", hour=1), project="beta"),
        *write_spans(data_dir, f"{seg(2)}-0000", spans("x", "y", hour=1), project="beta"),
    ]
    (lonely,) = write_spans(data_dir, f"{seg(1)}-0000", spans("z", hour=2))
    write_logs(data_dir, f"{seg(1)}-0000", ["hello", "world"])
    write_logs(data_dir, f"{seg(2)}-0000", ["world", "again"])
    lake = Lake(data_dir)
    before = snapshot(lake)
    assert raw_duplicates(lake) == 2 + 1 + 1

    seen: list[tuple[Table, list[Path]]] = []
    result = compact(data_dir, progress=lambda table, files: seen.append((table, files)))

    assert (result.partitions, result.files_in, result.files_out) == (3, 4 + 2 + 2, 3)
    assert result.rows_in - result.rows_out == 4
    assert {t.name for t, _ in seen} == {"spans", "logs"} and sum(len(f) for _, f in seen) == 8
    assert snapshot(lake) == before
    assert raw_duplicates(lake) == 0
    for files in (p_files, q_files):
        (merged,) = files_in(files[0].parent)
        assert merged.startswith(COMPACTED_PREFIX)
    assert lonely.exists(), "a partition with a single file is left alone"

    (a,) = lake.query("SELECT ingested_at FROM spans_raw WHERE name = 'a'").to_pylist()
    assert a["ingested_at"].timestamp() * 10**9 == pytest.approx(NOW_NS + 1, abs=1000), "earliest delivery kept"
    merged_path = next(p_files[0].parent.glob(f"{COMPACTED_PREFIX}*"))
    schema = pq.read_schema(merged_path)
    assert schema.remove_metadata() == SPANS.arrow_schema.remove_metadata()
    assert schema.metadata[SCHEMA_VERSION_KEY] == SPANS.arrow_schema.metadata[SCHEMA_VERSION_KEY]
    times = pq.read_table(merged_path).column("start_time").to_pylist()
    assert times == sorted(times)

    assert not any((data_dir.lake / JOURNAL_DIR).glob("*.json"))
    assert compact(data_dir).partitions == 0  # nothing left to do


def test_young_files_are_left_alone(data_dir: DataDir) -> None:
    old = write_spans(data_dir, f"{seg(1)}-0000", spans("root", "a"))
    old += write_spans(data_dir, f"{seg(2)}-0000", spans("b"))
    (young,) = write_spans(data_dir, f"{seg(3)}-0000", spans("c"))
    os.utime(young, None)  # just written

    assert compact(data_dir, min_age_s=60).files_in == 2
    names = files_in(young.parent)
    assert young.name in names and len(names) == 2
    assert compact(data_dir, min_age_s=60).partitions == 0
    assert compact(data_dir, min_age_s=0).files_in == 2


def test_files_of_segments_still_in_the_wal_are_left_alone(data_dir: DataDir) -> None:
    for n, name in enumerate(("root", "a", "b", "c", "d", "e"), start=1):
        write_spans(data_dir, f"{seg(n)}-0000", spans(name))
    data_dir.wal.mkdir(exist_ok=True)
    (data_dir.wal / f"{seg(1)}.wal").write_bytes(b"")  # closed, not flushed yet
    (data_dir.wal / f"{seg(2)}.open").write_bytes(b"")  # open when a crash happened
    (data_dir.wal / f"{seg(3)}.failed").write_bytes(b"")  # set aside for an operator
    (data_dir.wal / f"{seg(4)}.notes").write_bytes(b"")  # not a segment

    result = compact(data_dir, min_age_s=0)
    assert result.files_in == 3
    names = files_in(next((data_dir.lake / "spans").glob("project=*/date=*/hour=*")))
    kept = sorted(n for n in names if not n.startswith(COMPACTED_PREFIX))
    assert kept == [f"{seg(n)}-0000.parquet" for n in (1, 2, 3)]


def segment_with(data_dir: DataDir, items: list[Any]) -> Path:
    closed: list[Path] = []
    wal = WriteAheadLog(data_dir.wal, segment_max_age_s=60, on_segment_closed=closed.append)
    wal.recover()
    wal.start()
    try:
        body = make_request(items, resource={"spanlake.project": "alpha"}).SerializeToString()
        wal.append(Record(KIND_TRACES, NOW_NS, None, body)).result(timeout=10)
        assert wal.rotate()
    finally:
        wal.close()
    return closed[0]


def replay(data_dir: DataDir, segment: Path) -> None:
    wal = WriteAheadLog(data_dir.wal)
    wal.recover()
    Flusher(wal, LakeWriter(data_dir)).flush_segment(segment)


def test_segment_that_appears_while_compaction_lists_files_is_not_merged(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector rotates a segment and publishes its first file after compaction began.
    Until the segment is deleted, a crash would replay it and rewrite that file: merging
    it would store its rows twice."""
    write_spans(data_dir, f"{seg(1)}-0000", spans("root"))
    write_spans(data_dir, f"{seg(2)}-0000", spans("a"))
    real_candidates = compactmod.candidates
    state: dict[str, Any] = {}

    def candidates_racing_the_flusher(*args: Any, **kw: Any) -> list[Any]:
        if "segment" not in state:
            segment = state["segment"] = segment_with(data_dir, spans("late"))
            saved = segment.read_bytes()
            replay(data_dir, segment)  # its file is published ...
            segment.write_bytes(saved)  # ... and the segment not yet deleted (the crash comes later)
        return real_candidates(*args, **kw)

    monkeypatch.setattr(compactmod, "candidates", candidates_racing_the_flusher)
    assert compact(data_dir, min_age_s=0).files_in == 2

    replay(data_dir, state["segment"])  # the restart after the crash
    lake = Lake(data_dir)
    assert raw_duplicates(lake) == 0
    assert lake.query("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 3}]


class Crash(BaseException):
    """The process dying at this point."""


def crash_on_first_call(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = getattr(compactmod, name)
    calls = {"n": 0}

    def dying(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Crash
        return real(*args, **kw)

    monkeypatch.setattr(compactmod, name, dying)


@pytest.mark.parametrize("finish_with", ["compact", "collector start"])
def test_crash_after_publishing_the_merged_file_is_finished_later(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch, finish_with: str
) -> None:
    files = write_spans(data_dir, f"{seg(1)}-0000", spans("root", "a"))
    files += write_spans(data_dir, f"{seg(2)}-0000", spans("a", "b"))
    lake = Lake(data_dir)
    before = snapshot(lake)
    crash_on_first_call(monkeypatch, "_remove")  # merged file published, sources not yet deleted
    with pytest.raises(Crash):
        compact(data_dir, min_age_s=0)
    assert all(f.exists() for f in files) and len(files_in(files[0].parent)) == 3
    assert snapshot(lake) == before  # the views were never wrong

    if finish_with == "compact":
        compact(data_dir, min_age_s=0)
    else:
        wal = WriteAheadLog(data_dir.wal)
        wal.recover()
        flusher = Flusher(wal, LakeWriter(data_dir))
        flusher.start()
        flusher.close()
    assert not any(f.exists() for f in files)
    assert files_in(files[0].parent)[0].startswith(COMPACTED_PREFIX)
    assert raw_duplicates(lake) == 0
    assert snapshot(lake) == before
    assert not any((data_dir.lake / JOURNAL_DIR).glob("*.json"))


def test_crash_before_publishing_the_merged_file_changes_nothing(
    data_dir: DataDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_spans(data_dir, f"{seg(1)}-0000", spans("root", "a"))
    files += write_spans(data_dir, f"{seg(2)}-0000", spans("a", "b"))
    lake = Lake(data_dir)
    before = snapshot(lake)
    crash_on_first_call(monkeypatch, "write_parquet")
    with pytest.raises(Crash):
        compact(data_dir, min_age_s=0)
    assert files_in(files[0].parent) == sorted(f.name for f in files)
    assert compact(data_dir, min_age_s=0).files_in == 2
    assert snapshot(lake) == before and raw_duplicates(lake) == 0


def test_one_compaction_at_a_time(data_dir: DataDir) -> None:
    for n in range(1, 7):
        write_spans(data_dir, f"{seg(n)}-0000", spans("root", f"s{n}", f"s{n + 1}"))
    lake = Lake(data_dir)
    before = snapshot(lake)

    with exclusive(data_dir) as acquired:  # e.g. `spanlake compact` while the collector compacts
        assert acquired
        result = compact(data_dir, min_age_s=0)
    assert result.skipped_busy and result.partitions == 0
    assert len(files_in(next((data_dir.lake / "spans").glob("project=*/date=*/hour=*")))) == 6

    errors: list[BaseException] = []
    results = []

    def run() -> None:
        try:
            results.append(compact(data_dir, min_age_s=0))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sum(r.files_in for r in results) == 6
    assert raw_duplicates(lake) == 0 and snapshot(lake) == before


def test_merges_are_bounded_in_size(data_dir: DataDir) -> None:
    """A partition's files are merged in groups of at most max_merge_bytes (an hour of millions
    of spans merged at once held 13 GB); files of half that size or more are left alone."""
    files = [
        write_spans(data_dir, f"{seg(n)}-0000", spans(f"s{n}a", f"s{n}b", "dup"), ingested=n)[0] for n in range(1, 7)
    ]
    folder = files[0].parent
    sizes = [f.stat().st_size for f in files]
    limit = max(sizes) * 2 + min(sizes) // 2  # two files fit in a group, a third does not
    assert all(s * 2 <= limit < s * 3 for s in sizes)
    lake = Lake(data_dir)
    before = snapshot(lake)
    result = compact(data_dir, min_age_s=0, max_merge_bytes=limit)
    assert (result.partitions, result.files_in, result.files_out) == (1, 6, 3)
    assert snapshot(lake) == before  # `dup`, in every group, still counts once
    merged = files_in(folder)
    assert len(merged) == 3 and all(n.startswith(COMPACTED_PREFIX) for n in merged)
    compact(data_dir, min_age_s=0, max_merge_bytes=limit)  # whatever it merges again, nothing changes
    assert snapshot(lake) == before


def test_merge_groups() -> None:
    def entry(name: str, size: int) -> FileEntry:
        return FileEntry(f"spans/p/{name}", size, 0.0)

    files = [entry("a", 10), entry("b", 30), entry("c", 20), entry("d", 50), entry("e", 5), entry("f", 40)]
    # limit 60: b, d, f are at least half of it (30): left alone; a + c + e = 35 fit in one group
    assert merge_groups(files, max_bytes=60, min_files=2) == [["spans/p/a", "spans/p/c", "spans/p/e"]]
    # limit 40: half is 20, so c is left alone too; a + e = 15
    assert merge_groups(files, max_bytes=40, min_files=2) == [["spans/p/a", "spans/p/e"]]
    # limit 24: half is 12: a (10) and e (5) remain, 15 <= 24
    assert merge_groups(files, max_bytes=24, min_files=2) == [["spans/p/a", "spans/p/e"]]
    # limit 14: half is 7: a (10) is left alone, e alone is fewer than min_files
    assert merge_groups(files, max_bytes=14, min_files=2) == []
    assert merge_groups(files, max_bytes=14, min_files=1) == [["spans/p/e"]]
    # limit 200: half is 100: all, 155 in one group; limit 100: d (50) left alone, a b c e = 65, + f = 105 > 100
    assert merge_groups(files, max_bytes=200, min_files=2) == [[f"spans/p/{n}" for n in "abcdef"]]
    assert merge_groups(files, max_bytes=100, min_files=2) == [[f"spans/p/{n}" for n in "abce"]]  # f alone: left
    assert merge_groups([], max_bytes=60) == []
