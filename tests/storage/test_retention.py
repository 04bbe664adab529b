"""Retention per project (CLI with progress, server schedule) and the flushed-segment markers
that let compaction merge files of other collectors' segments safely."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.collector.decode import decode_spans
from spanlake.storage.compact import compact, exclusive
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.retention import apply_retention, expired, parse_rules
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.conftest import start_collector
from tests.factories import make_request, make_span

DAY_NS = 86400 * 10**9
OLD = time.time() - 3600


def write(dd: DataDir, stem: str, project: str, days_ago: float, n: int = 2, mark: bool = True) -> list[Path]:
    start = time.time_ns() - int(days_ago * DAY_NS)
    items = [make_span(f"s{i}", start_ns=start + i) for i in range(n)]
    writer = LakeWriter(dd)
    paths = writer.write_batch(
        SPANS, decode_spans(make_request(items, resource={"spanlake.project": project}), 0), stem
    )
    if mark:
        writer.mark_flushed(stem.rsplit("-", 1)[0])
    for p in paths:
        os.utime(p, (OLD, OLD))
    return [Path(p) for p in paths]


def counts(dd: DataDir) -> dict[str, int]:
    rows = Lake(dd).query("SELECT project, count(*) AS n FROM spans GROUP BY 1").to_pylist()
    return {r["project"]: r["n"] for r in rows}


def test_rules_parse_and_partitions_expire_by_whole_hours() -> None:
    assert parse_rules("alpha=7, *=30") == {"alpha": 7, "*": 30}
    assert parse_rules("") == {}
    for bad in ("alpha", "alpha=x", "../x=3", "alpha=0"):
        with pytest.raises(ValueError):
            parse_rules(bad)
    now = datetime(2024, 5, 10, 12, 30, tzinfo=UTC)
    part = "spans/project=alpha/date=2024-05-03/hour={:02d}"
    assert expired(part.format(11), {"alpha": 7}, now)  # ended 11:00+1h = 12:00 ≤ 12:30 seven days on
    assert not expired(part.format(12), {"alpha": 7}, now)  # holds rows younger than 7 days
    assert expired(part.format(11), {"*": 7}, now) and not expired(part.format(11), {"beta": 7}, now)
    assert not expired(part.format(11), {"alpha": 8, "*": 1}, now), "a project's own rule wins over *"


def test_retention_cli_deletes_old_partitions_of_one_project(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data").create()
    old_files = write(dd, "a-0000", "alpha", days_ago=10)
    write(dd, "b-0000", "alpha", days_ago=0)
    write(dd, "c-0000", "beta", days_ago=10)
    runner = CliRunner()
    args = ["retention", "--data-dir", str(dd.root), "--project", "alpha", "--days", "7"]

    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 partition(s)" in dry.output and "project=alpha" in dry.output
    assert all(p.exists() for p in old_files)

    real = runner.invoke(cli, args)
    assert real.exit_code == 0, real.output
    assert "deleted 1 partition(s)" in real.output
    assert not any(p.exists() for p in old_files)
    assert not old_files[0].parent.exists(), "the emptied hour folder goes too"
    assert counts(dd) == {"alpha": 2, "beta": 2}

    missing = runner.invoke(cli, ["retention", "--data-dir", str(tmp_path / "none"), "--project", "a", "--days", "1"])
    assert missing.exit_code != 0 and "no lake" in missing.output


def test_retention_and_compaction_take_turns(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data").create()
    write(dd, "a-0000", "alpha", days_ago=10)
    with exclusive(dd) as held:  # a compaction is running
        assert held
        assert apply_retention(dd, {"*": 1}).skipped_busy
        result = CliRunner().invoke(cli, ["retention", "--data-dir", str(dd.root), "--project", "*", "--days", "1"])
        assert result.exit_code != 0 and "lock" in result.output
    assert apply_retention(dd, {"*": 1}).partitions == 1


def test_compaction_waits_for_the_flushed_marker_of_another_collectors_segment(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data").create()
    write(dd, "0001-aaaaaaaaaaaa-0000", "alpha", days_ago=0, mark=False)  # another collector, still flushing
    write(dd, "0002-aaaaaaaaaaaa-0000", "alpha", days_ago=0)
    write(dd, "0003-bbbbbbbbbbbb-0000", "alpha", days_ago=0)
    assert compact(dd, min_age_s=0).files_in == 2
    LakeWriter(dd).mark_flushed("0001-aaaaaaaaaaaa")
    assert compact(dd, min_age_s=0).files_in == 2  # its file and the merged one
    write(dd, "0004-cccccccccccc-0000", "alpha", days_ago=0, mark=False)
    write(dd, "0005-cccccccccccc-0000", "alpha", days_ago=0)
    assert compact(dd, min_age_s=0, settle_age_s=60).files_in == 3, "an unmarked file is merged once settled"
    assert counts(dd) == {"alpha": 10}

    result = compact(dd, min_age_s=0, settle_age_s=0)
    assert result.markers_removed == 4 and not list((dd.lake / "_flushed").iterdir())


def test_the_collector_applies_retention_on_its_schedule(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "data").create()
    write(dd, "a-0000", "alpha", days_ago=3)
    write(dd, "b-0000", "beta", days_ago=3)
    _running, stop = start_collector(dd.root, retention={"alpha": 1}, compact_interval_s=0.1, retention_interval_s=3600)
    try:
        deadline = time.monotonic() + 20
        while counts(dd).get("alpha") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop()
    assert counts(dd) == {"beta": 2}


def test_a_writer_racing_retention_for_a_folder_keeps_writing(tmp_path: Path) -> None:
    """Retention removes an expired partition's folder once it is empty; a writer that created
    that folder a moment before (for more old rows) recreates it instead of failing, so a
    collector's last flush at shutdown does not leave its segment behind in the WAL."""
    dd = DataDir(tmp_path)
    done = threading.Event()
    runs = 0

    def retention() -> None:
        nonlocal runs
        while not done.is_set():
            apply_retention(dd, {"old": 1})
            runs += 1

    writer = LakeWriter(dd)
    span = make_span("s", start_ns=time.time_ns() - 3 * DAY_NS)
    batch = decode_spans(make_request([span], resource={"spanlake.project": "old"}), 0)
    t = threading.Thread(target=retention)
    t.start()
    try:
        for i in range(400):
            writer.write_batch(SPANS, batch, f"seg{i}-0000")
    finally:
        done.set()
        t.join()
    assert runs > 10
