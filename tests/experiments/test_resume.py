"""kill -9 of a running `spanlake experiment run`, then `--resume`: every item has exactly one result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spanlake.experiments.store import ExperimentError, Store
from tests.conftest import start_collector
from tests.experiments.helpers import DATASET, PROJECT, ROOT, freeze_items, spanlake

N = 16


def test_kill_9_then_resume_runs_each_item_exactly_once(tmp_path: Path) -> None:
    c, stop = start_collector(tmp_path / "data")
    try:
        freeze_items(c.data_dir, n=N)
        args = ["experiment", "run", "--dataset", f"{DATASET}@1", "--dataset-project", PROJECT, "--quiet"]
        args += ["--app", "tests.experiments.fake_app:slow", "--check", "exact", "--concurrency", "2"]
        args += ["--endpoint", c.http, "--data-dir", str(c.data_dir), "--wait", "20"]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-m", "spanlake.cli.main", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            store = Store(c.data_dir)
            deadline = time.monotonic() + 60
            lines = 0
            while time.monotonic() < deadline and lines < 4:
                exps = store.list()
                if exps and exps[0].results_path.exists():
                    lines = exps[0].results_path.read_bytes().count(b"\n")
                time.sleep(0.05)
            assert lines >= 4, child.stderr.read() if child.poll() is not None else "no results in time"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        exp = store.list()[0]
        before = exp.results()
        assert 4 <= len(before) < N  # killed mid-run: some items done, some not
        assert exp.status == "interrupted"
        listed = json.loads(spanlake("experiment", "list", "--format", "json", "--data-dir", str(c.data_dir)).stdout)
        assert listed[0]["status"] == "interrupted"

        done = spanlake("experiment", "run", "--resume", exp.id, "--quiet", "--data-dir", str(c.data_dir))
        assert done.returncode == 0, done.stderr
        assert f"{N - len(before)} item(s) run, {len(before)} done before" in done.stdout
        lines_now = exp.results_path.read_text().splitlines()
        ids = [json.loads(line)["item_id"] for line in lines_now]
        assert sorted(ids) == sorted(f"item-{i}" for i in range(N))  # each item exactly once
        after = Store(c.data_dir).get(exp.id)
        assert after.status == "finished"
        assert all(after.results()[k] == v for k, v in before.items())  # finished items never ran again
        figures = after.figures()
        assert set(figures) == set(ids)  # spans of the items done before the kill were sent before their line
        assert all(f["cost_usd"] == pytest.approx(0.03) for f in figures.values())

        again = spanlake("experiment", "run", "--resume", exp.id, "--quiet", "--data-dir", str(c.data_dir))
        assert again.returncode == 0 and f"0 item(s) run, {N} done before" in again.stdout
        assert exp.results_path.read_text().splitlines() == lines_now
    finally:
        stop()


def test_a_second_runner_cannot_take_the_same_experiment(tmp_path: Path) -> None:
    store = Store(tmp_path)
    exp = store.create(PROJECT, {"dataset": {"name": DATASET, "version": 1}})
    busy = f"experiment {exp.id} is being run by another"
    with store.running(exp), pytest.raises(ExperimentError, match=busy), store.running(store.get(exp.id)):
        pass
    with store.running(exp):  # released
        pass
