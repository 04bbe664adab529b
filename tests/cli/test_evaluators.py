"""`spanlake evaluators` (add, list, show, versions, remove, alignment, status) and
`spanlake eval run` against a real server on free loopback ports: the summary and exit code of a
dataset run and a backfill (0 clean, 1 when a target errored), the labels in the lake, and bad
input (unknown evaluator, bad dataset reference, no server, broken file) refused with exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spanlake.cli.main import cli
from tests.conftest import RunningCollector, start_collector
from tests.evaluators.offline_helpers import (
    APPLICABLE,
    DATASET,
    PROJECT,
    freeze_dataset,
    judge_labels,
    key,
    send_traces,
    write_evaluators,
)
from tests.net import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningCollector]:
    c, stop = start_collector(tmp_path / "data")
    try:
        write_evaluators(c.data_dir)
        freeze_dataset(c.data_dir)
        yield c
    finally:
        stop()


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def eval_run(c: RunningCollector, name: str, *args: str) -> Result:
    base = ["eval", "run", name, "--project", PROJECT, "--url", c.http, "--data-dir", str(c.data_dir), "--quiet"]
    return run(*base, *args)


def test_eval_run_over_a_dataset_prints_the_summary_and_writes_each_label_once(server: RunningCollector) -> None:
    r = eval_run(server, "mentions_expected", "--dataset", f"{DATASET}@1", "--format", "json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert (s["total"], s["passed"], s["failed"], s["not_applicable"], s["errors"]) == (7, 3, 3, 1, 0)
    assert s["labels_written"] == 6 and s["cost_usd"] == 0
    rows = judge_labels(server, "mentions_expected")
    assert {(r["trace_id"], r["span_id"]): r["verdict"] for r in rows} == {key(i[0]): i[3] for i in APPLICABLE}

    again = eval_run(server, "mentions_expected", "--dataset", f"{DATASET}@latest")
    assert again.exit_code == 0, again.output
    assert "1 evaluated (0 pass, 0 fail, 1 n/a, 0 error(s)), 6 done before; 0 label(s) written" in again.output
    assert len(judge_labels(server, "mentions_expected")) == 6


def test_eval_run_exits_1_when_a_target_errored(server: RunningCollector) -> None:
    r = eval_run(server, "picky", "--dataset", f"{DATASET}@1")
    assert r.exit_code == 1, r.output
    assert "7 evaluated (5 pass, 1 fail, 0 n/a, 1 error(s))" in r.output
    assert f"error: {2:032x}: " in r.output and "cannot judge ORD-77" in r.output


def test_eval_run_since_over_past_traces(server: RunningCollector) -> None:
    sent = send_traces(server)
    r = eval_run(server, "fast_enough", "--since", "7d", "--filter", "service=svc-a", "--format", "json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert (s["total"], s["passed"], s["failed"], s["errors"], s["labels_written"]) == (4, 2, 2, 0, 4)
    verdicts = {r["trace_id"]: r["verdict"] for r in judge_labels(server, "fast_enough")}
    assert verdicts == {t: ("pass" if ms <= 1000 else "fail") for t, (svc, ms) in sent.items() if svc == "svc-a"}
    limited = eval_run(server, "fast_enough", "--since", "1h", "--filter", "service=svc-b", "--limit", "1")
    assert limited.exit_code == 0, limited.output
    assert "1 evaluated (1 pass, 0 fail" in limited.output  # svc-b's first trace: 100 ms


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nobody", "--dataset", f"{DATASET}@1"], "no evaluator 'nobody' in project 'shop'"),
        (["mentions_expected", "--dataset", f"{DATASET}@x"], "use NAME@VERSION"),
        (["mentions_expected", "--dataset", f"{DATASET}@9"], "has no version 9 (it has 1)"),
        (["mentions_expected", "--dataset", "missing@1"], "has no frozen version"),
        (["mentions_expected"], "give --dataset NAME@VERSION or --since WHEN"),
        (["mentions_expected", "--dataset", f"{DATASET}@1", "--since", "7d"], "not both"),
        (["fast_enough", "--since", "7d", "--filter", "colour=red"], "unknown key 'colour'"),
        (["fast_enough", "--since", "soon"], "use a duration such as 24h or 7d"),
    ],
)
def test_eval_run_refuses_bad_input_with_exit_2(server: RunningCollector, args: list[str], fragment: str) -> None:
    r = eval_run(server, *args)
    assert r.exit_code == 2, r.output
    assert fragment in r.output
    assert judge_labels(server, "%") == []


def test_eval_run_without_a_server_exits_2(server: RunningCollector) -> None:
    args = ["eval", "run", "mentions_expected", "--project", PROJECT, "--dataset", f"{DATASET}@1"]
    r = run(*args, "--url", f"http://127.0.0.1:{free_port()}", "--data-dir", str(server.data_dir))
    assert r.exit_code == 2, r.output
    assert "no spanlake at http://127.0.0.1:" in r.output and "spanlake up" in r.output


def test_a_broken_evaluators_file_is_refused_naming_the_problem(server: RunningCollector) -> None:
    write_evaluators(server.data_dir, '[[evaluator]]\nname = "x"\nkind = "telepathy"\n')
    r = eval_run(server, "x", "--dataset", f"{DATASET}@1")
    assert r.exit_code == 2, r.output
    assert "telepathy" in r.output and "evaluators.toml" in r.output
    listed = run("evaluators", "list", "--data-dir", str(server.data_dir))
    assert listed.exit_code == 2 and "telepathy" in listed.output


def test_add_list_show_versions_remove(tmp_path: Path) -> None:
    d = str(tmp_path)
    r = run("evaluators", "add", "slow", "--data-dir", d, "--project", "shop", "--kind", "threshold",
            "--param", "metric=latency_ms", "--param", "max=3000", "--description", "answers under 3 s")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "added evaluator 'slow' (threshold) of project 'shop'" in r.output
    listed = json.loads(run("evaluators", "list", "--data-dir", d, "--format", "json").output)
    assert [(e["name"], e["kind"], e["version"], e["author"], e["params"]) for e in listed] == [
        ("slow", "threshold", 1, "slow@v1", {"metric": "latency_ms", "max": 3000.0, "failure_mode": "too_slow"})
    ]
    dup = run("evaluators", "add", "slow", "--data-dir", d, "--project", "shop", "--kind", "json_valid")
    assert dup.exit_code == 2 and "--replace" in dup.output

    snippet = tmp_path / "slow.toml"
    snippet.write_text('[[evaluator]]\nkind = "threshold"\nmetric = "latency_ms"\nmax = 2000.0\n')
    r = run("evaluators", "add", "slow", "--data-dir", d, "--project", "shop", "--file", str(snippet), "--replace")
    assert r.exit_code == 0, r.output
    shown = json.loads(
        run("evaluators", "show", "slow", "--data-dir", d, "--project", "shop", "--format", "json").output
    )
    assert (shown["version"], shown["params"]["max"]) == (2, 2000.0)  # a changed definition: a new version
    history = json.loads(
        run("evaluators", "versions", "slow", "--data-dir", d, "--project", "shop", "--format", "json").output
    )
    assert [(h["version"], h["current"]) for h in history] == [(1, False), (2, True)]
    table = run("evaluators", "list", "--data-dir", d)
    assert "slow" in table.output and "v2" in table.output

    gone = run("evaluators", "remove", "slow", "--data-dir", d, "--project", "shop")
    assert gone.exit_code == 0 and "removed evaluator 'slow' of project 'shop'" in gone.output
    again = run("evaluators", "remove", "slow", "--data-dir", d, "--project", "shop")
    assert again.exit_code == 2 and "spanlake evaluators list" in again.output
    assert json.loads(run("evaluators", "list", "--data-dir", d, "--format", "json").output) == []
    assert "# the offline" not in (tmp_path / "evaluators.toml").read_text()


def test_add_refuses_bad_input(tmp_path: Path) -> None:
    d = str(tmp_path)
    r = run("evaluators", "add", "x", "--data-dir", d, "--kind", "regex", "--param", "pattern")
    assert r.exit_code == 2 and "use KEY=VALUE" in r.output
    r = run("evaluators", "add", "x", "--data-dir", d)
    assert r.exit_code == 2 and "give --kind" in r.output
    r = run("evaluators", "add", "x", "--data-dir", d, "--kind", "telepathy")
    assert r.exit_code == 2 and "telepathy" in r.output
    assert not (tmp_path / "evaluators.toml").exists() or "x" not in (tmp_path / "evaluators.toml").read_text()


def test_alignment_and_disagreements_name_the_version(server: RunningCollector) -> None:
    eval_run(server, "mentions_expected", "--dataset", f"{DATASET}@1")
    base = ["--data-dir", str(server.data_dir), "--project", PROJECT, "--format", "json"]
    r = run("evaluators", "alignment", "mentions_expected", *base, "--by", "week")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["project"], doc["evaluator"], doc["version"]) == (PROJECT, "mentions_expected", 1)
    r = run("evaluators", "disagreements", "mentions_expected", *base)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["disagreements"] == []  # no person labelled these items
    r = run("evaluators", "alignment", "nobody", *base)
    assert r.exit_code == 2 and "no evaluator 'nobody'" in r.output


def test_status_needs_the_server(server: RunningCollector) -> None:
    r = run("evaluators", "status", "--url", f"http://127.0.0.1:{free_port()}")
    assert r.exit_code == 2 and "cannot reach spanlake" in r.output
    r = run("evaluators", "status", "--url", server.http, "--format", "json")
    assert r.exit_code == 0, r.output
    assert isinstance(json.loads(r.output), dict)
