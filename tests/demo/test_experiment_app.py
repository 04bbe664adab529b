"""The demo as an experiment, end to end on a real spanlake, as a user runs it (every command a
child process): `spanlake demo`, a dataset of its labelled failures (failed tickets whose users
left feedback), frozen; the demo app (demo/experiment_app.py) run over it with prompt v1 and v2;
`spanlake experiment compare`, `spanlake gate` with a rules file (exit codes 0, 1, 2), and the
production gate on the demo's own traffic, whose figures are `spanlake report compare`'s.

What is worked out by hand, from the demo's own account of its run (`spanlake demo --json`) and
its source (demo/app.py): which tickets make the dataset and their texts; the items every
version fails the same way (an injection is blocked before any model call; a refund over $150
goes to review with only the unpriced self-hosted summarizer called); the aggregates from the
items' lake figures; and why each gate verdict is what it is."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.app import EMAIL, REFUND_LIMIT
from spanlake.demo.tickets import Parsed, parse, plan
from spanlake.experiments.store import Store
from tests.conftest import RunningCollector, start_collector
from tests.examples.helpers import ROOT, clean_env

SEED, TICKETS = 42, 200
SCALE = "0.05"  # the demo's latencies, 20 times shorter
DATASET = "demo-failures"
GATE = """min_items = 20
[success_rate]
max_drop_points = 5
[cost_per_successful_task]
max_increase_pct = 10
[no_critical_regressions]
modes = ["pii_leak", "error"]
"""


def spanlake(*args: str, ok: tuple[int, ...] = (0,), timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `spanlake` command in a child process (the demo's time scale set)."""
    env = clean_env(SPANLAKE_DEMO_TIME_SCALE=SCALE, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "spanlake.cli.main", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode in ok, f"{args} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@dataclass
class DemoRuns:
    c: RunningCollector
    tickets: list[dict[str, Any]]  # the demo's --json rows, by ticket
    feedback: list[dict[str, Any]]
    v1: str  # experiment ids
    v2: str
    rules: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuns]:
    tmp = tmp_path_factory.mktemp("demo-experiment")
    c, stop = start_collector(tmp / "data", auth="off")
    try:
        out = spanlake("demo", "--endpoint", c.http, "--seed", str(SEED), "--tickets", str(TICKETS),
                       "--time-scale", SCALE, "--json", "--quiet", "--dashboard-url", "off").stdout  # fmt: skip
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        c.flush()
        where = ["--project", "demo", "--data-dir", str(c.data_dir)]
        labelled = ["--outcome", "failure", "--source", "user_feedback"]
        spanlake("dataset", "add", DATASET, *labelled, "--url", c.http, *where)
        spanlake("dataset", "export", DATASET, "--format", "jsonl", "-o", str(tmp / "failures.jsonl"), *where)
        ids = {}
        for version in ("v1", "v2"):
            run = spanlake("experiment", "run", "--dataset", f"{DATASET}@1", "--dataset-project", "demo",
                           "--app", "spanlake.demo.experiment_app:answer", "--meta", f"prompt_version={version}",
                           "--endpoint", c.http, "--data-dir", str(c.data_dir), "--quiet", "--wait", "60")  # fmt: skip
            ids[version] = re.search(r"(exp-\d{8}-\d{6}-[0-9a-f]{4}): ", run.stdout).group(1)  # type: ignore[union-attr]
            assert "lake figures for" in run.stdout and "some traces had not reached" not in run.stderr, run.stderr
        rules = tmp / "gate.toml"
        rules.write_text(GATE)
        yield DemoRuns(c, [r for r in rows if "feedback" not in r], [r["feedback"] for r in rows if "feedback" in r],
                       ids["v1"], ids["v2"], rules)  # fmt: skip
    finally:
        stop()


def dataset_tickets(runs: DemoRuns) -> dict[str, Parsed | str]:
    """By hand, from the demo's account: failed tickets (failure or error) whose user left
    feedback, by trace id → the ticket's text as the task recorded it (the email redacted)."""
    planned = plan(SEED, TICKETS)
    with_feedback = {f["trace_id"] for f in runs.feedback if f["stored"]}
    return {
        t["trace_id"]: EMAIL.sub("[email]", planned[t["index"]].text)
        for t in runs.tickets
        if t["outcome"] in ("failure", "error") and t["trace_id"] in with_feedback
    }


def test_the_dataset_is_the_failed_tickets_users_left_feedback_on(runs: DemoRuns) -> None:
    expected = dataset_tickets(runs)
    assert len(expected) >= 20  # enough for the gate's min_items
    for exp_id in (runs.v1, runs.v2):
        exp = Store(runs.c.data_dir).get(exp_id)
        assert exp.record["dataset"]["examples"] == len(expected) and exp.status == "finished"
        assert sorted(exp.results()) == sorted(expected)  # one result per item, item id = the ticket's trace
        assert exp.record["trace_project"] == "demo-experiments" and exp.record["meta"] == {
            "prompt_version": "v1" if exp_id == runs.v1 else "v2"
        }
    inputs = runs.c.query(
        "SELECT trace_id, content FROM spans WHERE project = 'demo' AND name = 'answer_ticket'"
    )  # the task's recorded input is the ticket, redacted
    recorded = {r["trace_id"]: json.loads(r["content"] or "{}").get("gen_ai.task.input") for r in inputs}
    assert {k: recorded[k] for k in expected} == expected


def test_what_every_version_fails_the_same_way(runs: DemoRuns) -> None:
    store = Store(runs.c.data_dir)
    texts = dataset_tickets(runs)
    blocked = {k for k, t in texts.items() if parse(str(t)).intent == "injection"}
    review = {k for k, t in texts.items() if parse(str(t)).intent == "refund" and parse(str(t)).amount > REFUND_LIMIT}
    assert blocked and review
    for exp_id in (runs.v1, runs.v2):
        exp = store.get(exp_id)
        results, figures = exp.results(), exp.figures()
        assert {k for k, r in results.items() if r.get("app_reason") == "blocked"} == blocked
        assert {k for k, r in results.items() if r.get("app_reason") == "refund_review"} == review
        for k in blocked:  # stopped before any model call: nothing to price
            assert (results[k]["success"], figures[k]["llm_calls"], figures[k]["cost_usd"]) == (False, 0, None)
        for k in review:  # only the hand-off summary, from the self-hosted model the price book lacks
            assert (figures[k]["llm_calls"], figures[k]["unpriced_calls"], figures[k]["cost_usd"]) == (1, 1, None)
        assert all(r["failure_mode"] in ("blocked", "refund_review", "ungrounded", "pii_leak", "invalid_reply",
                                         "error", None) for r in results.values())  # fmt: skip


def test_compare_v1_with_v2(runs: DemoRuns) -> None:
    doc = json.loads(spanlake("experiment", "compare", runs.v1, runs.v2, "--format", "json",
                              "--data-dir", str(runs.c.data_dir)).stdout)  # fmt: skip
    assert doc["paired"] is True and doc["only_in_a"] == doc["only_in_b"] == 0
    store = Store(runs.c.data_dir)
    for side, exp_id in (("a", runs.v1), ("b", runs.v2)):
        exp = store.get(exp_id)
        results, figures = exp.results(), exp.figures()
        n = len(results)
        successes = sum(r.get("app_outcome") == "success" for r in results.values())
        total = math.fsum(f["cost_usd"] for f in figures.values() if f["cost_usd"] is not None)
        f = doc[side]
        assert (f["items"], f["successes"], f["errors"]) == (
            n, successes, sum(r["status"] == "error" for r in results.values()))  # fmt: skip
        assert f["total_cost"] == pytest.approx(total, rel=1e-12)
        assert f["cost_per_task"] == pytest.approx(total / n, rel=1e-12)
        assert f["cost_per_successful_task"] == pytest.approx(total / successes, rel=1e-12)
    # v1's 14-token JSON answer is cut on longer tickets and falls back to gpt-4o: v2 costs less, and an
    # item can only get better (v2 makes the same provider calls but the fallback, meeting the same faults)
    assert doc["b"]["total_cost"] < doc["a"]["total_cost"]
    assert doc["regressed"] == [] and doc["b"]["successes"] >= doc["a"]["successes"]
    shown = spanlake("experiment", "show", runs.v2, "--data-dir", str(runs.c.data_dir)).stdout
    assert f"{runs.v2}  {DATASET}@1 (demo)" in shown and "failure modes: " in shown


def test_the_gate_passes_v2_fails_v1_and_wants_more_data_than_there_is(runs: DemoRuns) -> None:
    data = ["--data-dir", str(runs.c.data_dir)]
    ok = spanlake("gate", "--baseline", runs.v1, "--candidate", runs.v2, "--rules", str(runs.rules), *data).stdout
    assert ok.startswith("# ✅ Release gate: pass")
    assert "| `cost_per_successful_task` | ✅ pass |" in ok and "| `no_critical_regressions` | ✅ pass |" in ok
    # the other way round, v1 costs more per successful task, by more than 10 % over the whole interval
    bad = spanlake("gate", "--baseline", runs.v2, "--candidate", runs.v1, "--rules", str(runs.rules), *data, ok=(1,))
    assert bad.stdout.startswith("# ❌ Release gate: fail")
    assert "| `cost_per_successful_task` | ❌ fail | b / a = +" in bad.stdout
    assert "the whole interval is beyond the limit" in bad.stdout
    more = runs.rules.with_name("more.toml")
    more.write_text(GATE.replace("min_items = 20", "min_items = 1000"))
    few = spanlake("gate", "--baseline", runs.v1, "--candidate", runs.v2, "--rules", str(more), *data, ok=(2,))
    assert few.stdout.startswith("# ⚠️ Release gate: not enough data")


def test_the_production_gate_reads_the_figures_of_report_compare(runs: DemoRuns) -> None:
    data = ["--data-dir", str(runs.c.data_dir), "--project", "demo", "--since", "1h"]
    report = json.loads(spanlake("report", "compare", "--by", "prompt_version", "--a", "v1", "--b", "v2",
                                 "--source", "raw", "--format", "json", *data).stdout)  # fmt: skip
    rows = {r["prompt_version"]: r for r in report}
    gate = spanlake("gate", "--production", "--by", "prompt_version", "--a", "v1", "--b", "v2", "--rules",
                    str(runs.rules), "--format", "json", *data, ok=(0, 1, 2))  # fmt: skip
    doc = json.loads(gate.stdout)
    for side, version in (("a", "v1"), ("b", "v2")):
        f, r = doc["comparison"][side], rows[version]
        mine = [t for t in runs.tickets if t["prompt_version"] == version]  # the demo's own account
        assert f["items"] == r["tasks"] == len(mine)
        assert f["successes"] == sum(t["outcome"] == "success" for t in mine)
        assert f["success_rate"] == pytest.approx(r["success_rate"], rel=1e-12)
        assert f["cost_per_task"] == pytest.approx(r["cost_per_task"], rel=1e-9)
        assert f["cost_per_successful_task"] == pytest.approx(r["cost_per_successful_task"], rel=1e-9)
        assert f["p50_ms"] == pytest.approx(r["p50_ms"], rel=1e-9)
        assert f["p95_ms"] == pytest.approx(r["p95_ms"], rel=1e-9)
    # the verdict follows from those figures: v2's success rate b - a against the 5-point limit
    diff = rows["v2"]["success_rate"] - rows["v1"]["success_rate"]
    [rate] = [x for x in doc["rules"] if x["rule"] == "success_rate"]
    m = re.match(r"b - a = ([-+][\d.]+) pts \[([-+][\d.]+) pts, ([-+][\d.]+) pts\] at 95%", rate["detail"])
    assert m and m.group(1) == f"{diff * 100:+.1f}", rate["detail"]
    high = float(m.group(3))
    assert rate["verdict"] == ("pass" if diff >= -0.05 else "fail" if high < -5 else "not-enough-data")
    [regressions] = [x for x in doc["rules"] if x["rule"] == "no_critical_regressions"]
    assert regressions["verdict"] == "n/a"  # production tasks are not paired
    assert gate.returncode == {"pass": 0, "fail": 1, "not-enough-data": 2}[doc["verdict"]]
