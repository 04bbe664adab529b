"""`spanlake budgets` against the seeded lake (tests/analytics/traces/seed.py): add, list,
remove and destinations write budgets.toml; `check` evaluates every budget once and its exit
status says whether one is breached (0 ok or no data, 1 breached, 2 could not check).

Project shop over [10:00 - 5 min, 10:10) on 2025-06-02, by hand from seed.py: tasks 1, 2, 3
(1000, 3000, 500 ms), of which only trace 1 succeeded: success rate 1/3; spend
0.0002 + 0.0024 + 0.00001 = 0.00261 USD. Project other: one trace (trace 9): traffic 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spanlake.cli.main import cli
from tests.analytics.traces.seed import write_lake

AT = "2025-06-02T10:10:00Z"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("budgets-cli") / "data"
    write_lake(root)
    return root


@pytest.fixture
def data_dir(lake: Path) -> Path:
    (lake / "budgets.toml").unlink(missing_ok=True)
    return lake


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["budgets", *args], catch_exceptions=False, env={"COLUMNS": "200"})


def add(data_dir: Path, name: str, *args: str) -> Result:
    r = run("add", name, "--data-dir", str(data_dir), *args)
    assert r.exit_code == 0, r.output
    return r


def designed_budgets(data_dir: Path) -> None:
    add(data_dir, "spend", "--project", "shop", "--metric", "spend", "--window", "15m", "--critical", "0.01")
    add(data_dir, "success", "--project", "shop", "--metric", "success_rate", "--window", "15m",
        "--warning", "0.9", "--critical", "0.5", "--min-samples", "1")  # fmt: skip
    add(data_dir, "traffic", "--project", "other", "--metric", "traffic", "--window", "15m", "--critical", "1")


def test_check_exits_1_when_a_budget_is_breached(data_dir: Path) -> None:
    designed_budgets(data_dir)
    r = run("check", "--data-dir", str(data_dir), "--at", AT, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    got = {x["name"]: x for x in doc["readings"]}
    assert doc["failures"] == [] and doc["at"] == "2025-06-02T10:10:00+00:00"
    assert got["spend"]["level"] == "ok" and got["spend"]["value"] == pytest.approx(0.00261)
    assert got["success"]["level"] == "critical" and got["success"]["value"] == pytest.approx(1 / 3)
    assert got["success"]["samples"] == 3 and got["success"]["critical_at"] == 0.5
    assert got["traffic"]["level"] == "ok" and got["traffic"]["value"] == 1
    assert got["spend"]["window"] == {"since": "2025-06-02T09:55:00+00:00", "until": "2025-06-02T10:10:00+00:00"}

    table = run("check", "--data-dir", str(data_dir), "--at", AT)
    assert table.exit_code == 1
    assert "0.333333 is below the critical threshold 0.5" in table.output


def test_check_exits_0_when_all_are_ok_or_without_data(data_dir: Path) -> None:
    designed_budgets(data_dir)
    r = run("check", "--data-dir", str(data_dir), "--at", AT, "--project", "other")
    assert r.exit_code == 0, r.output
    add(data_dir, "p95", "--project", "shop", "--metric", "p95_latency", "--window", "15m", "--critical", "1")
    run("remove", "success", "--project", "shop", "--data-dir", str(data_dir))
    r = run("check", "--data-dir", str(data_dir), "--at", AT, "--project", "shop", "--format", "json")
    assert r.exit_code == 0, r.output  # p95 of 3 tasks is far above 1 ms, but 3 < its 20 samples: no data
    levels = {x["name"]: (x["level"], x["samples"]) for x in json.loads(r.output)["readings"]}
    assert levels == {"spend": ("ok", 3), "p95": ("no_data", 3)}


def test_no_traffic_is_a_breach(data_dir: Path) -> None:
    designed_budgets(data_dir)
    quiet = "2025-06-01T00:00:00Z"  # nothing in project other in the 15 minutes before
    r = run("check", "--data-dir", str(data_dir), "--at", quiet, "--project", "other", "--format", "json")
    assert r.exit_code == 1, r.output
    (reading,) = json.loads(r.output)["readings"]
    assert (reading["level"], reading["value"], reading["samples"]) == ("critical", 0, 0)


def test_check_exits_2_when_it_cannot_check(data_dir: Path, tmp_path: Path) -> None:
    designed_budgets(data_dir)
    path = data_dir / "budgets.toml"
    good = path.read_text()
    path.write_text(good.replace('metric = "spend"', 'metric = "spending"'))
    r = run("check", "--data-dir", str(data_dir), "--at", AT)
    assert r.exit_code == 2
    assert "line " in r.output and "unknown metric 'spending'" in r.output and "Fix " in r.output
    path.write_text(good)
    assert run("check", "--data-dir", str(data_dir), "--at", "last tuesday").exit_code == 2
    empty = tmp_path / "empty"
    add(empty, "spend", "--metric", "spend", "--window", "1h", "--critical", "1")
    r = run("check", "--data-dir", str(empty))
    assert r.exit_code == 2 and "no lake at" in r.output


def test_add_list_remove(data_dir: Path) -> None:
    path = data_dir / "budgets.toml"
    path.write_text("# ours: keep this\n")
    r = add(data_dir, "slow", "--project", "shop", "--metric", "slow_share", "--window", "1h", "--warning", "0.05",
            "--slow-ms", "2000", "--attr", "customer.tier=gold", "--for", "5m", "--baseline", "7d ago")  # fmt: skip
    assert "added budget 'slow' of project 'shop'" in r.output
    assert path.read_text().startswith("# ours: keep this\n")
    listed = json.loads(run("list", "--data-dir", str(data_dir), "--format", "json").output)
    assert listed == [{"name": "slow", "project": "shop", "metric": "slow_share",
                       "attributes": {"customer.tier": "gold"}, "window": "1h", "warning": 0.05, "min_samples": 20,
                       "for": "5m", "baseline": "7d ago", "renotify": "1h", "slow_ms": 2000.0}]  # fmt: skip
    again = run("add", "slow", "--data-dir", str(data_dir), "--project", "shop", "--metric", "traffic",
                "--window", "1h", "--critical", "1")  # fmt: skip
    assert again.exit_code == 1 and "exists; use --replace" in again.output
    replaced = run("add", "slow", "--data-dir", str(data_dir), "--project", "shop", "--metric", "traffic",
                   "--window", "1h", "--critical", "1", "--replace")  # fmt: skip
    assert replaced.exit_code == 0 and "replaced budget 'slow'" in replaced.output
    table = run("list", "--data-dir", str(data_dir))
    assert "traffic" in table.output and "slow_share" not in table.output
    assert run("remove", "slow", "--data-dir", str(data_dir)).exit_code == 1  # project default: not shop's
    assert run("remove", "slow", "--project", "shop", "--data-dir", str(data_dir)).exit_code == 0
    assert json.loads(run("list", "--data-dir", str(data_dir), "--format", "json").output) == []
    assert path.read_text().startswith("# ours: keep this\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "p42", "--window", "1h", "--warning", "1"], "Invalid value for '--metric'"),
        (["--metric", "spend", "--window", "0m", "--warning", "1"], "window must be longer than 0"),
        (["--metric", "spend", "--window", "1h", "--warning", "lots"], "'lots' is not a valid float"),
        (["--metric", "spend", "--window", "1h"], "needs a warning or a critical threshold"),
        (["--metric", "spend", "--window", "1h", "--warning", "1", "--destination", "pager"],
         "unknown destination 'pager' (none is declared yet); add it first with `spanlake budgets destination add`"),
        (["--metric", "spend", "--window", "1h", "--warning", "1", "--attr", "tier"], "use KEY=VALUE"),
    ],
)  # fmt: skip
def test_add_says_what_is_wrong(data_dir: Path, args: list[str], message: str) -> None:
    r = run("add", "x", "--data-dir", str(data_dir), *args)
    assert r.exit_code in (1, 2) and message in r.output, r.output
    assert not (data_dir / "budgets.toml").exists()


def test_destinations(data_dir: Path) -> None:
    d = ["--data-dir", str(data_dir)]
    bad = run("destination", "add", "hook", *d, "--type", "webhook", "--url", "example.com/hook")
    assert bad.exit_code == 1 and "url must be an http:// or https:// URL, got 'example.com/hook'" in bad.output
    ok = run("destination", "add", "hook", *d, "--type", "webhook", "--url", "https://example.com/hook",
             "--secret-env", "HOOK_SECRET")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    mail = run("destination", "add", "mail", *d, "--type", "email", "--to", "a@example.com", "--to", "b@example.com")
    assert mail.exit_code == 0, mail.output
    add(data_dir, "spend", "--project", "shop", "--metric", "spend", "--window", "1h", "--critical", "1",
        "--destination", "hook")  # fmt: skip
    listed = json.loads(run("destination", "list", *d, "--format", "json").output)
    assert listed == [
        {"name": "hook", "type": "webhook", "url": "https://example.com/hook", "secret_env": "HOOK_SECRET",
         "budgets": ["shop/spend"]},
        {"name": "mail", "type": "email", "to": ["a@example.com", "b@example.com"], "budgets": []},
    ]  # fmt: skip
    busy = run("destination", "remove", "hook", *d)
    assert busy.exit_code == 1 and "named by budget(s) shop/spend" in busy.output
    assert run("destination", "remove", "mail", *d).exit_code == 0
    assert "no destination 'mail'" in run("destination", "remove", "mail", *d).output


COMMANDS = [[], ["add"], ["list"], ["remove"], ["check"], ["destination"], ["destination", "add"],
            ["destination", "list"], ["destination", "remove"]]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: list[str]) -> None:
    r = run(*command, "--help")
    assert r.exit_code == 0 and len(r.output) > 200, r.output
