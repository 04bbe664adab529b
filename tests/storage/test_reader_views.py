"""Lake connections define the trace-level views (storage.reader.DERIVED_VIEWS) only when the
SQL may read them, and answer the same either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from spanlake.storage.layout import DataDir
from spanlake.storage.reader import DERIVED_VIEWS, Lake, fetch_arrow, names_derived_view
from spanlake.storage.window import connect_window, query_window
from tests.storage.test_compact import spans, write_spans


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT * FROM traces", True),
        ("select count(*) from TRACES t", True),
        ('SELECT * FROM "traces"', True),
        ("SELECT * FROM spans s JOIN duplicate_calls d USING (span_id)", True),
        ("WITH x AS (SELECT 1) SELECT * FROM main.traces", True),
        ("SELECT count(*) AS n FROM spans", False),
        ("SELECT trace_id, count(*) FROM spans GROUP BY trace_id", False),  # trace_id is not traces
        ("SELECT * FROM spans WHERE name = 'traces_of_x'", False),
        ("SELECT * FROM labels", False),
    ],
)
def test_names_derived_view_is_a_word_match(sql: str, names: bool) -> None:
    assert names_derived_view(sql) is names


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    dd = DataDir(tmp_path / "data").create()
    write_spans(dd, f"{1:020d}-0123456789ab-0000", spans("root", "a", "b"))
    write_spans(dd, f"{2:020d}-0123456789ab-0000", spans("a", "c", trace=b"\x02" * 16))
    return Lake(dd)


def view_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def test_a_connection_without_derived_views_lacks_only_them(lake: Lake) -> None:
    full, lean = view_names(lake.connect()), view_names(lake.connect(derived=False))
    assert full - lean == set(DERIVED_VIEWS)
    assert lean < full
    with pytest.raises(duckdb.CatalogException):
        lake.connect(derived=False).execute("SELECT * FROM traces")


def test_queries_answer_the_same_with_or_without_the_derived_views(lake: Lake) -> None:
    sql = "SELECT trace_id, count(*) AS n FROM spans GROUP BY ALL ORDER BY ALL"
    lean = lake.query(sql).to_pylist()
    full = fetch_arrow(lake.connect(), sql).to_pylist()
    assert lean == full == [{"trace_id": "01" * 16, "n": 3}, {"trace_id": "02" * 16, "n": 2}]
    traces = lake.query("SELECT trace_id, span_count FROM traces ORDER BY trace_id").to_pylist()
    assert traces == [{"trace_id": "01" * 16, "span_count": 3}, {"trace_id": "02" * 16, "span_count": 2}]


def test_window_queries_define_the_derived_views_when_named(lake: Lake) -> None:
    since = datetime.now(UTC) - timedelta(hours=3)
    assert set(DERIVED_VIEWS) <= view_names(connect_window(lake, since, None))
    assert not set(DERIVED_VIEWS) & view_names(connect_window(lake, since, None, derived=False))
    rows = query_window(lake, "SELECT count(*) AS n FROM traces WHERE is_complete", since=since).to_pylist()
    assert rows == [{"n": 1}]  # only trace 01 has its root
    assert query_window(lake, "SELECT count(*) AS n FROM spans", since=since).to_pylist() == [{"n": 5}]
