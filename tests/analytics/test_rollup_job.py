"""The rollup job on a schedule (child processes) keeps the rollups up to date as spans arrive."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.rollups.materialize import TABLES
from spanlake.analytics.rollups.schedule import RollupSchedule
from spanlake.analytics.rollups.state import fresh_hours
from spanlake.analytics.rollups.tables import rollup_dir
from spanlake.analytics.runner import Analytics
from tests.analytics.helpers import T0, span, write


def _wait(cond: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_schedule_rolls_up_new_hours(tmp_path: Path) -> None:
    write(tmp_path, [span(1, 1, at_ms=0, name="A")])
    an = Analytics(tmp_path)
    window = (T0, T0 + timedelta(hours=2))
    job = RollupSchedule(tmp_path, interval_s=0.2)
    job.start(first_delay_s=0)
    try:
        _wait(lambda: fresh_hours(an, TABLES["tasks"], *window) == {T0, T0 + timedelta(hours=1)})
        write(tmp_path, [span(2, 1, at_ms=3_600_000, name="B")])  # a new hour: stale until the next tick
        _wait(lambda: (rollup_dir(an.lake.data_dir) / "tasks" / "20250602T11.parquet").exists())
        _wait(lambda: len(fresh_hours(an, TABLES["tasks"], *window)) == 2)
        _wait(lambda: job.runs >= 2)  # each run is a child process, counted when it exits
    finally:
        job.stop()
    assert job.runs >= 2 and job.last_error is None


@pytest.mark.parametrize(("value", "interval"), [("", 300.0), ("0", 0.0), ("12.5", 12.5), ("soon", 300.0)])
def test_interval_from_env(monkeypatch: pytest.MonkeyPatch, value: str, interval: float) -> None:
    monkeypatch.setenv("SPANLAKE_ROLLUP_INTERVAL", value)
    job = RollupSchedule.from_env("/nonexistent")
    assert job.interval_s == interval
    job.start()  # an interval of 0 starts nothing; a missing lake is skipped quietly
    job.run_once()
    job.stop()
    assert job.last_error is None


def test_a_run_waits_while_the_server_is_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a flush backlog (busy) the job waits; it runs as soon as the backlog is gone."""
    import spanlake.analytics.rollups.schedule as job_module

    monkeypatch.setattr(job_module, "BUSY_POLL_S", 0.05)
    write(tmp_path, [span(1, 1, at_ms=0, name="A")])
    busy = [True]
    job = RollupSchedule(tmp_path, interval_s=60)
    job.busy = lambda: busy[0]
    job.start(first_delay_s=0)
    try:
        _wait(lambda: job.deferrals >= 10)
        assert job.runs == 0 and not (rollup_dir(Analytics(tmp_path).lake.data_dir) / "tasks").exists()
        busy[0] = False
        _wait(lambda: job.runs == 1)
    finally:
        job.stop()
    assert job.last_error is None
