"""A baseline and a candidate app run as experiments against a real spanlake (OTLP over HTTP into
the lake), then compared and gated. Every figure is worked out by hand from tests/experiments/
fake_app.py: costs come from the lake's pricing of the apps' `acme-1` calls."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.experiments.compare import compare_sides, side_figures
from spanlake.experiments.offline import experiment_side
from spanlake.experiments.store import Store
from tests.conftest import RunningCollector, start_collector
from tests.experiments.helpers import DATASET, ITEMS, invoke, run_designed_pair

BASE_COST, CHEAP_COST = 0.2, 0.1  # 100 in / 50 out tokens; 50 in / 25 out (fake_app.py)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, str, str]]:
    running, stop = start_collector(tmp_path_factory.mktemp("experiments") / "data")
    try:
        a, b = run_designed_pair(running)
        yield running, a, b
    finally:
        stop()


def hand_quantile(values: list[float], q: float) -> float:
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, frac = int(pos), pos - int(pos)
    return xs[lo] if frac == 0 else xs[lo] + (xs[lo + 1] - xs[lo]) * frac


def test_each_item_has_one_result_and_the_outputs_the_app_gave(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    store = Store(c.data_dir)
    base, cand = store.get(a), store.get(b)
    for exp in (base, cand):
        lines = exp.results_path.read_text().splitlines()
        assert sorted(json.loads(line)["item_id"] for line in lines) == sorted(ITEMS)
        assert exp.status == "finished"
        assert exp.record["dataset"] == {
            "name": DATASET,
            "version": 1,
            "fingerprint": exp.record["dataset"]["fingerprint"],
            "examples": 10,
        }
        assert exp.record["trace_project"] == "shop-experiments"
    rb, rc = base.results(), cand.results()
    assert rb["item-9"]["output"] == "I don't know" and rb["item-9"]["checks"] == {"exact": False}
    assert rb["item-3"]["output"] == "answer 3" and rb["item-3"]["success"] is True
    assert rc["item-2"]["app_outcome"] == "failure" and rc["item-2"]["app_reason"] == "hallucination"
    assert rc["item-5"]["output"] == "answer 5\n" and rc["item-5"]["checks"] == {"exact": True}


def test_cost_duration_and_outcome_per_item_come_from_the_lake(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    store = Store(c.data_dir)
    fb, fc = store.get(a).figures(), store.get(b).figures()
    assert set(fb) == set(fc) == set(ITEMS)
    for item in ITEMS:
        i = int(item.split("-")[1])
        assert fb[item]["cost_usd"] == pytest.approx(BASE_COST, abs=1e-12)
        assert fc[item]["cost_usd"] == pytest.approx(BASE_COST if i <= 2 else CHEAP_COST, abs=1e-12)
        assert fb[item]["llm_calls"] == 1 and fb[item]["input_tokens"] == 100 and fb[item]["output_tokens"] == 50
        assert fb[item]["duration_ms"] >= 30  # the baseline sleeps 30 ms before its model call
        assert fc[item]["duration_ms"] >= 10
    # the lake's outcome of the runner's task is the item's verdict
    assert fb["item-9"]["outcome"] == "failure" and fb["item-0"]["outcome"] == "success"
    assert fc["item-1"]["outcome"] == "failure" and fc["item-2"]["outcome"] == "failure"
    assert fc["item-9"]["outcome"] == "success"


def test_spans_carry_the_experiment_and_stay_out_of_production(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    rows = c.query(
        """SELECT project, name, category, attr_str(attributes, 'spanlake.experiment.id') AS exp,
                  attr_str(attributes, 'spanlake.experiment.item_id') AS item,
                  attr_str(attributes, 'spanlake.experiment.dataset') AS ds,
                  attr_str(attributes, 'spanlake.experiment.meta.model') AS model_meta,
                  prompt_version, trace_id
           FROM spans_raw WHERE attr_str(attributes, 'spanlake.experiment.id') IS NOT NULL"""
    )
    assert {r["project"] for r in rows} == {"shop-experiments"}
    tasks = [r for r in rows if r["name"] == "experiment_item"]
    llm = [r for r in rows if r["category"] == "llm"]
    assert len(tasks) == 20 and len(llm) == 20  # every span of an item carries the attributes
    assert {(r["exp"], r["prompt_version"]) for r in rows} == {(a, "v1"), (b, "v2")}
    assert {r["ds"] for r in rows} == {f"{DATASET}@1"} and {r["model_meta"] for r in rows} == {"acme-1"}
    results = Store(c.data_dir).get(a).results()
    assert {(r["item"], r["trace_id"]) for r in tasks if r["exp"] == a} == {
        (k, v["trace_id"]) for k, v in results.items()
    }
    assert c.query("SELECT count(*) AS n FROM spans_raw WHERE project = 'shop'")[0]["n"] == 0


def test_aggregates_worked_by_hand(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    store = Store(c.data_dir)
    sa, sb = experiment_side(store.get(a)), experiment_side(store.get(b))
    fa, fb = side_figures(sa), side_figures(sb)
    # baseline: 9 of 10 right, $0.20 each
    assert (fa.items, fa.successes, fa.failures, fa.undecided, fa.errors) == (10, 9, 1, 0, 0)
    assert fa.success_rate == pytest.approx(0.9)
    assert fa.total_cost == pytest.approx(2.0)
    assert fa.cost_per_task == pytest.approx(0.2)
    assert fa.cost_per_successful_task == pytest.approx(2.0 / 9)
    assert fa.failure_modes == {"exact": 1}
    # candidate: fails 1 (exact) and 2 (hallucination); 3 x $0.20 + 7 x $0.10 = $1.30
    assert (fb.items, fb.successes, fb.failures) == (10, 8, 2)
    assert fb.success_rate == pytest.approx(0.8)
    assert fb.total_cost == pytest.approx(1.3)
    assert fb.cost_per_task == pytest.approx(0.13)
    assert fb.cost_per_successful_task == pytest.approx(1.3 / 8)
    assert fb.failure_modes == {"exact": 1, "hallucination": 1}
    durations = [i.duration_ms for i in sa.items]
    assert fa.p50_ms == pytest.approx(hand_quantile(durations, 0.5))  # type: ignore[arg-type]
    assert fa.p95_ms == pytest.approx(hand_quantile(durations, 0.95))  # type: ignore[arg-type]
    assert fa.success_low is not None and fa.success_low < 0.9 < fa.success_high  # type: ignore[operator]


def test_item_by_item_diff(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    store = Store(c.data_dir)
    cmp = compare_sides(experiment_side(store.get(a)), experiment_side(store.get(b)), paired=True)
    assert sorted(d.key for d in cmp.regressed) == ["item-1", "item-2"]
    assert [d.key for d in cmp.improved] == ["item-9"]
    assert [d.key for d in cmp.changed] == ["item-5"]
    reg = {d.key: d for d in cmp.regressed}
    assert reg["item-2"].b.failure_mode == "hallucination" and reg["item-1"].b.failure_mode == "exact"
    assert (reg["item-1"].a.output, reg["item-1"].b.output) == ("answer 1", "answer one")
    d = cmp.deltas["success_rate"]
    assert d.estimate == pytest.approx(-0.1) and d.low < -0.1 < d.high  # type: ignore[operator]
    ratio = cmp.deltas["cost_per_successful_task"]
    assert ratio.estimate == pytest.approx((1.3 / 8) / (2.0 / 9))  # 0.73125
    assert cmp.deltas["cost_per_task"].estimate == pytest.approx(0.65)


def test_compare_command_formats(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    out = invoke("experiment", "compare", a, b, "--format", "json", "--data-dir", str(c.data_dir))
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["paired"] is True
    assert [r["item_id"] for r in doc["improved"]] == ["item-9"]
    assert doc["a"]["success_rate"] == pytest.approx(0.9) and doc["b"]["cost_per_task"] == pytest.approx(0.13)
    reg = {r["item_id"]: r for r in doc["regressed"]}
    assert reg["item-1"]["b"]["output"] == "answer one"
    assert reg["item-1"]["b"]["trace_url"].startswith("http://127.0.0.1:8501/trace?trace=")
    assert "project=shop-experiments" in reg["item-1"]["b"]["trace_url"]
    md = invoke("experiment", "compare", a, b, "--format", "markdown", "--data-dir", str(c.data_dir))
    assert "| success rate | 90.0% [" in md.output and "(9/10)" in md.output and "(8/10)" in md.output
    assert "### Regressed: passed in the baseline, fail in the candidate (2)" in md.output
    assert "| cost per task | $0.2 | $0.13 | -35.0 % [" in md.output
    table = invoke("experiment", "compare", a, b, "--data-dir", str(c.data_dir))
    assert table.exit_code == 0 and "item-9" in table.output


def test_list_and_show(runs: tuple[RunningCollector, str, str]) -> None:
    c, a, b = runs
    rows = json.loads(invoke("experiment", "list", "--format", "json", "--data-dir", str(c.data_dir)).output)
    assert [r["id"] for r in rows] == sorted([a, b], reverse=True)
    by = {r["id"]: r for r in rows}
    assert by[a]["meta"] == "model=acme-1 prompt_version=v1" and by[a]["status"] == "finished"
    assert by[a]["items"] == "10/10" and by[b]["success_rate"] == 0.8
    shown = json.loads(invoke("experiment", "show", b, "--format", "json", "--data-dir", str(c.data_dir)).output)
    items = {i["item_id"]: i for i in shown["items"]}
    assert items["item-2"]["failure_mode"] == "hallucination" and items["item-3"]["cost_usd"] == pytest.approx(0.1)
    assert shown["lake_figures"]["found"] == 10
    text = invoke("experiment", "show", a, "--data-dir", str(c.data_dir)).output
    assert "success 90.0% (9/10" in text


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(text)
    return p


def test_gate_exit_codes_on_the_two_runs(runs: tuple[RunningCollector, str, str], tmp_path: Path) -> None:
    c, a, b = runs
    base = ["gate", "--baseline", a, "--candidate", b, "--data-dir", str(c.data_dir)]
    # pass: -10 pts is within 20, cost per success -27 % is within +10 %
    rules = write(tmp_path, "[success_rate]\nmax_drop_points = 20\n[cost_per_successful_task]\nmax_increase_pct = 10\n")
    summary = tmp_path / "summary.md"
    ok = invoke(*base, "--rules", str(rules), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert ok.exit_code == 0, ok.output
    assert "# ✅ Release gate: pass" in ok.output
    written = summary.read_text()
    assert written.startswith("# ✅ Release gate: pass") and "| `success_rate` | ✅ pass |" in written
    assert "`item-2`" in written and "answer 2 (made up)" in written and "trace?trace=" in written
    # fail: item-2 passed in the baseline and fails with a critical mode
    rules = write(tmp_path, '[no_critical_regressions]\nmodes = ["hallucination", "timeout"]\n')
    bad = invoke(*base, "--rules", str(rules))
    assert bad.exit_code == 1, bad.output
    assert "# ❌ Release gate: fail" in bad.output and "item-2" in bad.output
    # the same rule with modes the candidate did not regress on passes
    rules = write(tmp_path, '[no_critical_regressions]\nmodes = ["timeout"]\n')
    assert invoke(*base, "--rules", str(rules)).exit_code == 0
    # not enough data: 10 items in common, 50 required
    rules = write(tmp_path, "min_items = 50\n[success_rate]\nmax_drop_points = 20\n")
    few = invoke(*base, "--rules", str(rules), "--format", "json")
    assert few.exit_code == 2, few.output
    doc = json.loads(few.output)
    assert doc["verdict"] == "not-enough-data" and doc["rules"][0] == {
        "rule": "min_items",
        "verdict": "not-enough-data",
        "detail": "10 / 10 items in common (at least 50 needed)",
    }


def test_costs_match_the_task_report(runs: tuple[RunningCollector, str, str]) -> None:
    """The per-item costs are the lake's: the tasks report over the experiment's attribute agrees."""
    c, a, _ = runs
    out = invoke(
        "report", "tasks", "--project", "shop-experiments", "--since", "1h", "--attr", f"spanlake.experiment.id={a}",
        "--format", "json", "--data-dir", str(c.data_dir), "--source", "raw",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    row = json.loads(out.output[out.output.index("[") :])[0]
    assert row["tasks"] == 10 and math.isclose(row["cost_per_successful_task"], 2.0 / 9)
