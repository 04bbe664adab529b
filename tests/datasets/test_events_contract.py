"""dataset_events: decoder → writer → Parquet → DuckDB view agree with the schema; events survive a restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from spanlake.collector.decode import decode_dataset_events
from spanlake.collector.flusher import DECODERS
from spanlake.collector.wal import KIND_DATASETS
from spanlake.storage.datasets import list_datasets, members
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake, duckdb_type
from spanlake.storage.schema import DATASET_EVENTS, SCHEMA_VERSION, SCHEMA_VERSION_KEY
from spanlake.storage.writer import LakeWriter
from tests.conftest import start_collector
from tests.datasets.helpers import PROJECT, api

NOW = time.time_ns()
EVENTS = [
    {
        "event_id": "e1",
        "dataset": "d",
        "op": "create",
        "project": "shop",
        "created_at_unix_nano": NOW,
        "description": "<b>x</b>",
        "author": "ana",
    },
    {
        "event_id": "e2",
        "dataset": "d",
        "op": "add",
        "project": "shop",
        "created_at_unix_nano": NOW + 1000,
        "trace_id": "a" * 32,
        "span_id": None,
        "trace_start_unix_nano": NOW - 10**9,
        "metadata": {"filter": {"x": 1}},
    },
]


def test_decoder_writer_view_agree(tmp_path: Path) -> None:
    assert DECODERS[KIND_DATASETS][0] is DATASET_EVENTS
    batch = decode_dataset_events(orjson.dumps(EVENTS), NOW, None, "default")
    (cols,) = batch.values()
    assert tuple(cols) == DATASET_EVENTS.names
    dd = DataDir(tmp_path / "data").create()
    (path,) = LakeWriter(dd).write_batch(DATASET_EVENTS, batch, "seg-1")
    meta = pq.read_schema(dd.lake / path).metadata
    assert meta[SCHEMA_VERSION_KEY] == str(SCHEMA_VERSION).encode()
    lake = Lake(dd)
    described = lake.query("DESCRIBE dataset_events").to_pylist()
    expected = [(c.name, duckdb_type(c.type)) for c in DATASET_EVENTS.all_columns]
    got = [(r["column_name"], r["column_type"]) for r in described]
    assert [n for n, _ in got] == [n for n, _ in expected]
    assert got[DATASET_EVENTS.names.index("created_at") + 3][1] == "TIMESTAMP WITH TIME ZONE"
    row = lake.query("SELECT * FROM dataset_events WHERE op = 'add'").to_pylist()[0]
    assert row["trace_start"] == datetime.fromtimestamp((NOW - 10**9) // 1000 / 1e6, UTC)
    assert orjson.loads(row["metadata"]) == {"filter": {"x": 1}}
    # A re-sent event (same id) counts once.
    LakeWriter(dd).write_batch(DATASET_EVENTS, decode_dataset_events(orjson.dumps(EVENTS), NOW, None, "x"), "seg-2")
    assert lake.query("SELECT count(*) AS n FROM dataset_events").to_pylist() == [{"n": 2}]
    assert members(lake, "shop", "d")["trace_id"].to_list() == ["a" * 32]
    assert list_datasets(lake, "shop").select("dataset", "examples", "description").rows() == [("d", 1, "<b>x</b>")]
    assert isinstance(lake.query("SELECT * FROM dataset_events_raw"), pa.Table)


def test_dataset_events_survive_a_restart(tmp_path: Path) -> None:
    running, stop = start_collector(tmp_path / "d")
    try:
        body = {"items": [{"trace_id": "b" * 32, "span_id": "c" * 16}], "project": PROJECT, "author": "ana"}
        assert api(running, "POST", "/datasets/kept/items", body).status_code == 200
    finally:
        stop()
    running, stop = start_collector(tmp_path / "d")
    try:
        running.flush()
        got = members(running.lake, PROJECT, "kept").select("trace_id", "span_id", "added_by").rows()
        assert got == [("b" * 32, "c" * 16, "ana")]
    finally:
        stop()
