"""Bad input and misbehaving apps: each a clear message and exit code 2, or an error recorded on
its item while the run goes on."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.experiments.store import Store
from tests.conftest import RunningCollector, start_collector
from tests.experiments import fake_app
from tests.experiments.helpers import DATASET, ITEMS, PROJECT, freeze_items


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    running, stop = start_collector(tmp_path_factory.mktemp("bad") / "data")
    try:
        freeze_items(running.data_dir)
        yield running
    finally:
        fake_app.RELEASE.set()
        stop()


def run(c: RunningCollector, *args: str) -> Any:
    base = ["experiment", "run", "--dataset-project", PROJECT, "--endpoint", c.http, "--data-dir", str(c.data_dir)]
    return CliRunner().invoke(cli, [*base, "--quiet", "--wait", "20", *args], catch_exceptions=False)


def experiment_id(output: str) -> str:
    m = re.search(r"exp-\d{8}-\d{6}-[0-9a-f]{4}", output)
    assert m, output
    return m.group(0)


def test_a_dataset_version_that_does_not_exist(server: RunningCollector) -> None:
    r = run(server, "--dataset", f"{DATASET}@7", "--app", "tests.experiments.fake_app:baseline")
    assert r.exit_code == 2
    assert f"dataset '{DATASET}' in project 'shop' has no version 7 (it has 1)" in r.output
    r = run(server, "--dataset", "nosuch@1", "--app", "tests.experiments.fake_app:baseline")
    assert r.exit_code == 2 and "dataset 'nosuch' in project 'shop' has no frozen version" in r.output
    r = run(server, "--dataset", "faq@one", "--app", "tests.experiments.fake_app:baseline")
    assert r.exit_code == 2 and "use NAME@VERSION" in r.output
    assert Store(server.data_dir).list() == []  # nothing was started


def test_an_app_that_cannot_be_loaded(server: RunningCollector) -> None:
    for ref, message in (
        ("tests.experiments.nosuch:f", "cannot import 'tests.experiments.nosuch' (ModuleNotFoundError"),
        ("tests.experiments.fake_app:nosuch", "'tests.experiments.fake_app' has no 'nosuch'"),
        ("tests.experiments.fake_app:SLOW_S", "'SLOW_S' is not callable"),
        ("justamodule", "use module:function"),
    ):
        r = run(server, "--dataset", f"{DATASET}@1", "--app", ref)
        assert r.exit_code == 2 and message in r.output, r.output


def test_no_spanlake_at_the_endpoint(server: RunningCollector, tmp_path: Path) -> None:
    base = ["experiment", "run", "--dataset-project", PROJECT, "--data-dir", str(server.data_dir), "--quiet"]
    args = [*base, "--dataset", f"{DATASET}@1", "--app", "tests.experiments.fake_app:baseline"]
    r = CliRunner().invoke(cli, [*args, "--endpoint", "http://127.0.0.1:9"], catch_exceptions=False)
    assert r.exit_code == 2 and "no spanlake at http://127.0.0.1:9" in r.output


def test_an_app_that_raises_on_some_items(server: RunningCollector) -> None:
    r = run(server, "--dataset", f"{DATASET}@1", "--app", "tests.experiments.fake_app:flaky", "--check", "exact")
    assert r.exit_code == 0, r.output
    assert "10 item(s) run, 0 done before, 2 error(s), 0 timeout(s); success 80.0% (8/10)" in r.output
    exp = Store(server.data_dir).get(experiment_id(r.output))
    results = exp.results()
    assert set(results) == set(ITEMS)
    assert results["item-3"]["status"] == "error"
    assert results["item-3"]["error"] == "RuntimeError: upstream refused question 3"
    assert results["item-3"]["failure_mode"] == "error" and results["item-3"]["success"] is False
    assert results["item-4"]["status"] == "ok" and results["item-4"]["success"] is True
    # the lake records the exception on the task: outcome failure, decided by the error
    figures = exp.figures()
    assert figures["item-7"]["outcome"] == "failure" and figures["item-4"]["outcome"] == "success"
    assert figures["item-7"]["cost_usd"] == pytest.approx(10 * 0.001 + 10 * 0.002)


def test_an_app_that_hangs_times_out_and_the_run_goes_on(server: RunningCollector) -> None:
    t0 = time.monotonic()
    r = run(
        server, "--dataset", f"{DATASET}@1", "--app", "tests.experiments.fake_app:hangs", "--check", "exact",
        "--timeout", "0.5", "--concurrency", "2",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 20  # not the 30 s the app would take
    assert "0 error(s), 1 timeout(s); success 90.0% (9/10)" in r.output
    results = Store(server.data_dir).get(experiment_id(r.output)).results()
    assert results["item-4"]["status"] == "timeout"
    assert results["item-4"]["error"] == "no answer within 0.5 s"
    assert results["item-4"]["failure_mode"] == "timeout"
    assert [k for k, v in results.items() if v["status"] != "ok"] == ["item-4"]


def test_a_gate_file_with_an_unknown_rule(server: RunningCollector, tmp_path: Path) -> None:
    rules = tmp_path / "gate.toml"
    rules.write_text("[success_rate]\nmax_drop_points = 2\n\n[latency_p99]\nmax_ms = 10\n")
    args = ["gate", "--baseline", "exp-20261205-153012-ab12", "--candidate", "exp-20261205-153013-ab12"]
    r = CliRunner().invoke(cli, [*args, "--rules", str(rules), "--data-dir", str(server.data_dir)])
    assert r.exit_code == 2
    assert "unknown rule 'latency_p99' (rules: confidence, min_items, success_rate," in r.output
    rules.write_text("[success_rate]\nmax_drop = 2\n")
    r = CliRunner().invoke(cli, [*args, "--rules", str(rules), "--data-dir", str(server.data_dir)])
    assert r.exit_code == 2 and "[success_rate] has no setting 'max_drop'" in r.output
    rules.write_text("[success_rate]\nmax_drop_points = 2\n")
    r = CliRunner().invoke(cli, [*args, "--rules", str(rules), "--data-dir", str(server.data_dir)])
    assert r.exit_code == 2 and "no experiment exp-20261205-153012-ab12" in r.output
    r = CliRunner().invoke(cli, [*args, "--rules", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "cannot read rules file" in r.output


def test_production_gate_is_wired(server: RunningCollector, tmp_path: Path) -> None:
    rules = tmp_path / "gate.toml"
    rules.write_text("[success_rate]\nmax_drop_points = 2\n")
    args = ["gate", "--production", "--by", "prompt_version", "--a", "v1", "--b", "v2", "--since", "24h"]
    r = CliRunner().invoke(cli, [*args, "--rules", str(rules), "--data-dir", str(server.data_dir)])
    if "not available yet" in r.output:  # until experiments/production.py is merged
        assert r.exit_code == 2
    else:
        assert r.exit_code in (0, 1, 2) and "Release gate" in r.output, r.output
    r = CliRunner().invoke(cli, [*args[:2], "--rules", str(rules)])
    assert r.exit_code == 2 and "--production needs --a and --b" in r.output


def test_resume_refuses_changed_settings_and_unknown_ids(server: RunningCollector) -> None:
    r = run(server, "--resume", "exp-20261205-153012-ab12")
    assert r.exit_code == 2 and "no experiment exp-20261205-153012-ab12" in r.output
    r = run(server, "--resume", "exp-20261205-153012-ab12", "--app", "x:y")
    assert r.exit_code == 2 and "--resume runs the experiment as it was started: drop --app" in r.output
    r = run(server, "--resume", "../../etc")
    assert r.exit_code == 2 and "is not an experiment id" in r.output
    assert (
        json.loads(
            CliRunner().invoke(cli, ["experiment", "list", "--format", "json", "--data-dir", "/nonexistent"]).output
        )
        == []
    )
