"""Labels, dataset events and frozen dataset versions on a lake in (moto's) S3."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow as pa

from spanlake.collector.decode import decode_dataset_events, decode_labels
from spanlake.storage.datasets import EXAMPLE_SCHEMA, freeze, members, read_examples, read_version, versions
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import DATASET_EVENTS, LABELS
from spanlake.storage.writer import LakeWriter

NOW = time.time_ns()


def test_labels_datasets_and_versions_on_s3(s3_lake: str, tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data", lake=s3_lake).create()
    writer = LakeWriter(dd)
    label = {
        "label_id": "l1",
        "trace_id": "a" * 32,
        "source": "human",
        "author": "ana",
        "verdict": "fail",
        "created_at_unix_nano": NOW,
        "project": "shop",
    }
    writer.write_batch(LABELS, decode_labels(orjson.dumps([label]), NOW, None, "default"), "seg-1")
    event = {
        "event_id": "e1",
        "dataset": "d",
        "op": "add",
        "trace_id": "a" * 32,
        "created_at_unix_nano": NOW,
        "project": "shop",
    }
    writer.write_batch(DATASET_EVENTS, decode_dataset_events(orjson.dumps([event]), NOW, None, "default"), "seg-1")

    lake = Lake(dd)
    assert lake.query("SELECT verdict FROM labels").to_pylist() == [{"verdict": "fail"}]
    assert members(lake, "shop", "d")["trace_id"].to_list() == ["a" * 32]

    table = pa.Table.from_pylist([{"example_id": "a" * 32, "project": "shop", "dataset": "d"}], schema=EXAMPLE_SCHEMA)
    v1, created = freeze(dd, "shop", "d", table, author="ana")
    assert created and v1.version == 1
    assert freeze(dd, "shop", "d", table)[1] is False  # same content: v1 again
    v2, _ = freeze(dd, "shop", "d", table, force=True)
    assert v2.version == 2 and versions(dd, "shop", "d") == [1, 2]
    got = read_version(dd, "shop", "d", 1)
    assert got is not None and read_examples(dd, got).column("example_id").to_pylist() == ["a" * 32]
    assert not (dd.lake / "datasets").exists()  # nothing written to the local folder
