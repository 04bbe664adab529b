"""Files written before a schema version step read with NULL in the columns the step appended
(storage.schema_steps): through the views (a lake, an hour partition or the late area with
no file of the current version at all, and mixed ones), compaction and retention, which
rewrite them to the current schema.

The older files are what the writer of version 4 made: this version's files without the
columns appended since (`Column.added_in` 5), their metadata saying version 4.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from spanlake.collector.decode import decode_spans
from spanlake.storage.compact import compact
from spanlake.storage.late import LATE_DIR
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.retention import apply_retention
from spanlake.storage.schema import SCHEMA_VERSION, SCHEMA_VERSION_KEY, SPANS, TABLE_KEY
from spanlake.storage.writer import LakeWriter
from tests.factories import make_request, make_span

T0 = datetime(2024, 3, 1, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
HOUR_NS = 3600 * 10**9
APPENDED = [c.name for c in SPANS.columns if c.added_in > 4]
# A call whose 5 cache writes are all 1-hour ones (the anthropic client's own span).
CALL = {
    "gen_ai.operation.name": "chat",
    "gen_ai.usage.input_tokens": 16,
    "gen_ai.usage.cache_write.input_tokens": 5,
    "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 5,
}


def as_version_4(path: Path) -> None:
    """Rewrite a file as version 4 wrote it: without the columns appended since."""
    data = pq.read_table(path)
    data = data.drop_columns(APPENDED).replace_schema_metadata({SCHEMA_VERSION_KEY: b"4", TABLE_KEY: b"spans"})
    pq.write_table(data, path)


def write(dd: DataDir, stem: str, names: list[tuple[str, int]], version: int, max_hours: int | None = None) -> None:
    """Spans (name, hour after T0) written as one flushed segment's files, by version 4's writer or this one."""
    spans = [
        make_span(n, span_id=n.encode().ljust(8, b"_"), start_ns=T0_NS + h * HOUR_NS, attributes=CALL) for n, h in names
    ]
    w = LakeWriter(dd, max_hour_files=max_hours)
    paths = w.write_batch(SPANS, decode_spans(make_request(spans), time.time_ns()), stem)
    w.mark_flushed(stem.rsplit("-", 1)[0])
    for p in paths if version == 4 else []:
        as_version_4(Path(p))
    assert {pq.read_schema(p).metadata[SCHEMA_VERSION_KEY] for p in paths} == {str(version).encode()}


def rows(lake: Lake) -> dict[str, Any]:
    got = lake.query("SELECT name, cache_write_tokens, cache_write_1h_tokens FROM spans ORDER BY name").to_pylist()
    return {r["name"]: (r["cache_write_tokens"], r["cache_write_1h_tokens"]) for r in got}


@pytest.fixture
def dd(tmp_path: Path) -> DataDir:
    return DataDir(tmp_path / "data").create()


def test_appended_columns_are_the_version_5_step() -> None:
    assert SCHEMA_VERSION == 5 and APPENDED == ["cache_write_1h_tokens"]


def test_a_lake_of_older_files_only_reads_null_there(dd: DataDir) -> None:
    # hour 0 gets a partition, hour 3 goes to the late area: no file has the column
    write(dd, "s1-0000", [("a", 0), ("b", 3)], version=4, max_hours=1)
    assert any((dd.lake / LATE_DIR).rglob("*.parquet"))
    lake = Lake(dd)
    described = lake.query("DESCRIBE spans_raw").to_pylist()
    assert [r["column_name"] for r in described] == [c.name for c in SPANS.all_columns]
    assert rows(lake) == {"a": (5, None), "b": (5, None)}
    assert lake.query("SELECT sum(span_count) AS n FROM traces").to_pylist() == [{"n": 2}]


def test_older_and_newer_files_read_together(dd: DataDir) -> None:
    write(dd, "s1-0000", [("a", 0), ("b", 3)], version=4, max_hours=1)
    write(dd, "s2-0000", [("c", 0), ("d", 3), ("e", 7)], version=5, max_hours=1)  # d, e late
    assert rows(Lake(dd)) == {"a": (5, None), "b": (5, None), "c": (5, 5), "d": (5, 5), "e": (5, 5)}


def test_compaction_rewrites_older_files_to_the_current_schema(dd: DataDir) -> None:
    write(dd, "s1-0000", [("a", 0), ("b", 1)], version=4)
    write(dd, "s2-0000", [("a", 0)], version=4)  # `a` re-sent: hour 0 has two version-4 files only
    write(dd, "s3-0000", [("c", 1)], version=5)  # hour 1: one file of each version
    compact(dd, min_age_s=0)
    files = sorted((dd.lake / "spans").rglob("*.parquet"))
    assert len(files) == 2
    for f in files:
        schema = pq.read_schema(f)
        assert schema.equals(SPANS.arrow_schema, check_metadata=False)
        assert schema.metadata[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
    assert rows(Lake(dd)) == {"a": (5, None), "b": (5, None), "c": (5, 5)}


def test_retention_rewrites_an_older_late_file(dd: DataDir) -> None:
    write(dd, "s1-0000", [("a", 0), ("a2", 0), ("old", 1), ("new", 30)], version=4, max_hours=1)  # old, new late
    (late,) = (dd.lake / LATE_DIR).rglob("*.parquet")
    assert pq.read_table(late).column("hour").to_pylist() == [1, 6]
    # keep what starts from T0 + 2 h: the late file loses `old` and is rewritten
    apply_retention(dd, {"*": 1}, now=T0 + timedelta(hours=2) + timedelta(days=1))
    (late,) = (dd.lake / LATE_DIR).rglob("*.parquet")
    assert set(APPENDED) <= set(pq.read_schema(late).names)
    assert rows(Lake(dd)) == {"new": (5, None)}
