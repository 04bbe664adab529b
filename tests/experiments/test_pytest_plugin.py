"""The pytest plugin in real pytest sessions (pytester, each session a child `python -m pytest`)
against a real spanlake and a frozen dataset (helpers.ITEMS: input `question i`, expected
output `answer i`).

The suite under test (BOT) answers with one priced model call per item (`acme-1`: 1 input
token = $0.001, 1 output token = $0.002, helpers.PRICES):

- v1 (the baseline): right on items 0-8, "I don't know" on 9; 100 / 50 tokens → $0.20 an item;
- v2-bad: wrong on 1 and 2 (which passed in v1), right on 9; $0.20 on 0-2, $0.10 (50 / 25) on 3-9;
- v2-good: as v1 ("I don't know" on 9), but $0.10 on 3-9.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.experiments.compare import side_figures
from spanlake.experiments.offline import experiment_side
from spanlake.experiments.store import Store
from tests.conftest import RunningCollector, start_collector
from tests.experiments.helpers import DATASET, ITEMS, PROJECT, freeze_items

pytest_plugins = ["pytester"]

BOT = """
import os

import spanlake.sdk as sl

VERSION = os.environ["BOT_VERSION"]


def answer(question):
    i = int(question.rsplit(" ", 1)[-1])
    cheap = VERSION != "v1" and i >= 3
    with sl.llm_call("acme-1", "openai") as call:
        call.set_usage(input_tokens=50 if cheap else 100, output_tokens=25 if cheap else 50)
    if VERSION == "v2-bad" and i == 1:
        return "answer one"
    if VERSION == "v2-bad" and i == 2:
        return "answer 2 (made up)"
    if i == 9 and VERSION != "v2-bad":
        return "I don't know"
    return f"answer {i}"


def test_answer(spanlake_item):
    reply = answer(spanlake_item.input)
    spanlake_item.record(reply)
    assert reply == spanlake_item.expected_output


def test_not_an_experiment():
    assert sum([1, 2]) == 3
"""
GATE = """
[success_rate]
max_drop_points = 20
[cost_per_successful_task]
max_increase_pct = 10
[no_critical_regressions]
modes = ["*"]
"""
EXP_ID = re.compile(r"experiment (exp-\d{8}-\d{6}-[0-9a-f]{4}) over faq@1 \(shop\)")


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    running, stop = start_collector(tmp_path_factory.mktemp("plugin") / "data")
    try:
        freeze_items(running.data_dir)
        yield running
    finally:
        stop()


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)  # never this repository's own CI summary
    pytester.makeini("[pytest]\n")  # the rootdir: node ids are relative to it
    pytester.makepyfile(test_bot=BOT)
    pytester.makefile(".toml", gate=GATE)
    return pytester


def session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, c: RunningCollector, version: str, *extra: str
) -> tuple[pytest.RunResult, str]:
    """One pytest session of BOT `version` recorded as an experiment; its result and experiment id."""
    monkeypatch.setenv("BOT_VERSION", version)
    args = ["--spanlake-dataset", f"{DATASET}@1", "--spanlake-project", PROJECT, "--spanlake-endpoint", c.http]
    # --opt=value: a separate path argument would count in pytest's choice of rootdir
    args += [f"--spanlake-data-dir={c.data_dir}", "--spanlake-meta", f"prompt_version={version}"]
    result = pytester.runpytest_subprocess(*args, "--spanlake-wait", "30", "-p", "no:cacheprovider", *extra)
    text = result.stdout.str()
    m = EXP_ID.search(text)
    assert m, text + result.stderr.str()
    return result, m.group(1)


def test_a_session_records_one_result_per_item(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lake: RunningCollector
) -> None:
    result, exp_id = session(suite, monkeypatch, lake, "v1")
    # item-9 fails its test; without a gate, pytest's own exit code stands
    result.assert_outcomes(passed=10, failed=1)
    assert result.ret == 1
    out = result.stdout.str()
    assert (
        f"experiment {exp_id} over faq@1 (shop): 10 item(s), 9 passed; cost and latency from the lake for 10/10" in out
    )

    exp = Store(lake.data_dir).get(exp_id)
    assert exp.status == "finished" and exp.record["runner"] == "pytest"
    assert exp.record["app"] == "pytest test_bot.py::test_answer" and exp.record["meta"] == {"prompt_version": "v1"}
    assert exp.record["trace_project"] == "shop-experiments"
    lines = exp.results_path.read_text().splitlines()
    assert len(lines) == 10  # one per item; test_not_an_experiment is not part of it
    results = exp.results()
    assert sorted(results) == sorted(ITEMS)
    assert results["item-3"]["output"] == "answer 3" and results["item-3"]["checks"] == {"test_answer": True}
    assert results["item-3"]["success"] is True and results["item-3"]["tests"] == {"test_answer": "passed"}
    nine = results["item-9"]
    assert nine["output"] == "I don't know" and nine["checks"] == {"test_answer": False}
    assert (nine["success"], nine["failure_mode"], nine["status"]) == (False, "test_answer", "ok")
    assert nine["messages"]["test_answer"].startswith("AssertionError: assert \"I don't know\" == 'answer 9'")
    assert all(r["wall_ms"] > 0 for r in results.values())

    # the lake's figures: $0.20 an item, the task's outcome is the test's verdict
    figures = exp.figures()
    assert set(figures) == set(ITEMS)
    assert all(f["cost_usd"] == pytest.approx(0.2, abs=1e-12) and f["llm_calls"] == 1 for f in figures.values())
    assert figures["item-9"]["outcome"] == "failure" and figures["item-0"]["outcome"] == "success"
    # each test ran in a task span carrying the experiment's attributes, its model call too
    rows = lake.query(
        """SELECT name, category, project, trace_id, span_id, prompt_version,
                  attr_str(attributes, 'spanlake.task.outcome_reason') AS why,
                  attr_str(attributes, 'spanlake.experiment.item_id') AS item
           FROM spans_raw WHERE attr_str(attributes, 'spanlake.experiment.id') = $id""",
        {"id": exp_id},
    )
    tasks = {r["item"]: r for r in rows if r["name"] == "experiment_item"}
    assert len(rows) == 20 and {r["category"] for r in rows} == {"task", "llm"}
    assert {r["project"] for r in rows} == {"shop-experiments"} and {r["prompt_version"] for r in rows} == {"v1"}
    assert {k: (t["trace_id"], t["span_id"]) for k, t in tasks.items()} == {
        k: (r["trace_id"], r["span_id"]) for k, r in results.items()
    }
    assert tasks["item-9"]["why"] == "test_answer"
    # `spanlake experiment show` and the gate read it like a CLI run: 9 of 10, $2.00 / 9 per success
    f = side_figures(experiment_side(exp))
    assert (f.items, f.successes, f.failure_modes) == (10, 9, {"test_answer": 1})
    assert f.cost_per_successful_task == pytest.approx(2.0 / 9)


def test_the_gate_fails_a_regressing_candidate_and_passes_a_good_one(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lake: RunningCollector, tmp_path: Path
) -> None:
    _, baseline = session(suite, monkeypatch, lake, "v1")
    gate = ["--spanlake-baseline", baseline, "--spanlake-gate", "gate.toml"]

    # v2-bad: items 1 and 2 passed in v1 and fail now → no_critical_regressions fails the session
    bad, candidate = session(suite, monkeypatch, lake, "v2-bad", *gate)
    bad.assert_outcomes(passed=9, failed=2)
    assert bad.ret == 1
    out = bad.stdout.str()
    assert "# ❌ Release gate: fail" in out
    assert (
        "| `no_critical_regressions` | ❌ fail | 2 item(s) passed in the baseline and fail with a critical mode (*): "
        "item-1, item-2 |"
    ) in out
    # 8 of 10 against 9 of 10: -10 points, within 20; $1.30 / 8 against $2.00 / 9: -26.9 %
    assert "| `success_rate` | ✅ pass | b - a = -10.0 pts [" in out
    assert "| `cost_per_successful_task` | ✅ pass | b / a = -26.9 % [" in out
    assert "| `item-1` | answer 1 | answer one | test_answer |" in out
    assert "the session fails (gate: fail; exit code 1)" in out
    assert Store(lake.data_dir).get(candidate).status == "finished"

    # v2-good: item-9 fails as in v1 (its test fails), nothing regressed, cheaper: the gate passes → exit 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    good, _ = session(suite, monkeypatch, lake, "v2-good", *gate)
    good.assert_outcomes(passed=10, failed=1)
    assert good.ret == 0, good.stdout.str()
    assert "the session passes (gate: pass; exit code 0)" in good.stdout.str()
    written = summary.read_text()
    assert written.startswith("# ✅ Release gate: pass")
    # $1.30 / 9 against $2.00 / 9: -35 %
    assert "| `cost_per_successful_task` | ✅ pass | b / a = -35.0 % [" in written
    assert "| `no_critical_regressions` | ✅ pass | 0 regressed item(s)" in written

    # not enough data (50 items needed, 10 in common) fails the session too
    suite.makefile(".toml", strict="min_items = 50\n[success_rate]\nmax_drop_points = 20\n")
    few, _ = session(
        suite, monkeypatch, lake, "v2-good", "--spanlake-baseline", baseline, "--spanlake-gate", "strict.toml"
    )
    assert few.ret == 1
    assert "# ⚠️ Release gate: not enough data" in few.stdout.str()
    assert "10 / 10 items in common (at least 50 needed)" in few.stdout.str()
    assert "the session fails (gate: not-enough-data; exit code 1)" in few.stdout.str()


def test_bad_input_is_a_usage_error(suite: pytest.Pytester, lake: RunningCollector) -> None:
    base = ["--spanlake-project", PROJECT, "--spanlake-endpoint", lake.http, f"--spanlake-data-dir={lake.data_dir}"]
    missing = suite.runpytest_subprocess("--spanlake-dataset", "faq@7", *base)
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "spanlake: dataset 'faq' in project 'shop' has no version 7 (it has 1)" in missing.stderr.str()
    alone = suite.runpytest_subprocess("--spanlake-baseline", "exp-20261205-153012-ab12")
    assert alone.ret == pytest.ExitCode.USAGE_ERROR
    assert "--spanlake-baseline: also give --spanlake-dataset NAME@VERSION" in alone.stderr.str()
    suite.makefile(".toml", unknown="[speed]\nmax = 1\n")
    base += ["--spanlake-dataset", "faq@1", "--spanlake-baseline", "exp-20261205-153012-ab12"]
    rules = suite.runpytest_subprocess(*base, "--spanlake-gate", "unknown.toml")
    assert rules.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown.toml: unknown rule 'speed'" in rules.stderr.str()


def test_the_plugin_is_inert_without_its_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain="""
        import pytest

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_square(n):
            assert n * n == n ** 2

        def test_text(tmp_path):
            assert tmp_path.exists()
        """
    )
    # the plugin is installed and loaded: its options are in `pytest --help`
    assert "--spanlake-dataset=NAME@VERSION" in pytester.runpytest_subprocess("--help").stdout.str()
    assert "--spanlake-dataset" not in pytester.runpytest_subprocess("--help", "-p", "no:spanlake").stdout.str()
    with_plugin = pytester.runpytest_subprocess("--collect-only", "-q")
    without = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:spanlake")
    collected = [line for line in with_plugin.stdout.lines if "::" in line]
    assert collected == [line for line in without.stdout.lines if "::" in line] and len(collected) == 4
    run = pytester.runpytest_subprocess("-rA")
    run.assert_outcomes(passed=4)
    shown = [line for line in run.outlines + run.errlines if not line.startswith("plugins:")]  # pytest's header
    assert not [line for line in shown if "spanlake" in line.lower()]
    # a test that asks for an item is skipped, saying why
    pytester.makepyfile(test_items="def test_item(spanlake_item):\n    assert False\n")
    items = pytester.runpytest_subprocess("test_items.py", "-rs")
    items.assert_outcomes(skipped=1)
    assert "no dataset (run pytest with --spanlake-dataset NAME@VERSION)" in items.stdout.str()


TWO_TESTS = """
import pytest

import spanlake.sdk as sl


def call(input_tokens, output_tokens):
    with sl.llm_call("acme-1", "openai") as c:
        c.set_usage(input_tokens=input_tokens, output_tokens=output_tokens)


@pytest.fixture
def short_limit(spanlake_item):
    if spanlake_item.id == "item-4":
        raise OSError("limits file missing")
    return 20


def test_answer(spanlake_item):
    call(100, 50)
    spanlake_item.record("answer " + spanlake_item.input.split()[-1])
    assert spanlake_item.id != "item-6", "wrong on purpose"


def test_short(spanlake_item, short_limit):
    call(10, 10)
    if spanlake_item.id == "item-3":
        raise RuntimeError("upstream refused")
    assert len(spanlake_item.input) < short_limit
"""


def test_several_tests_of_an_item_make_one_result_and_share_its_trace(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, lake: RunningCollector
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_two=TWO_TESTS)
    result, exp_id = session(pytester, monkeypatch, lake, "v1")
    # 20 tests: item-6 fails test_answer, item-3 raises in test_short, item-4's fixture errors
    result.assert_outcomes(passed=17, failed=2, errors=1)
    exp = Store(lake.data_dir).get(exp_id)
    results = exp.results()
    assert sorted(results) == sorted(ITEMS)
    zero = results["item-0"]
    assert zero["checks"] == {"test_answer": True, "test_short": True} and zero["success"] is True
    assert zero["output"] == "answer 0"  # only test_answer records
    six = results["item-6"]
    assert six["checks"] == {"test_answer": False, "test_short": True} and six["failure_mode"] == "test_answer"
    assert six["messages"]["test_answer"].startswith("AssertionError: wrong on purpose")
    three = results["item-3"]
    assert (three["status"], three["failure_mode"], three["error"]) == (
        "error",
        "error",
        "RuntimeError: upstream refused",
    )
    assert three["tests"] == {"test_answer": "passed", "test_short": "error"}
    four = results["item-4"]
    assert four["status"] == "error" and four["error"] == "setup: OSError: limits file missing"
    assert four["tests"] == {"test_answer": "passed", "test_short": "error"}

    # both tests of an item in one trace: the first test's task is the root, the second its child;
    # the item's cost counts both model calls ($0.20 + $0.03), item-4's second test never ran
    tasks = lake.query(
        """SELECT attr_str(attributes, 'spanlake.experiment.item_id') AS item, trace_id, span_id, parent_span_id
           FROM spans_raw WHERE attr_str(attributes, 'spanlake.experiment.id') = $id AND name = 'experiment_item'
           ORDER BY start_time""",
        {"id": exp_id},
    )
    zero_tasks = [t for t in tasks if t["item"] == "item-0"]
    assert len(zero_tasks) == 2 and zero_tasks[0]["trace_id"] == zero_tasks[1]["trace_id"] == zero["trace_id"]
    assert zero_tasks[0]["span_id"] == zero["span_id"] and zero_tasks[1]["parent_span_id"] == zero["span_id"]
    figures = exp.figures()
    assert figures["item-0"]["cost_usd"] == pytest.approx(0.23, abs=1e-12) and figures["item-0"]["llm_calls"] == 2
    assert figures["item-3"]["cost_usd"] == pytest.approx(0.23, abs=1e-12)
    assert figures["item-4"]["cost_usd"] == pytest.approx(0.2, abs=1e-12) and figures["item-4"]["llm_calls"] == 1
    f = side_figures(experiment_side(exp))
    assert (f.successes, f.failures, f.errors) == (7, 3, 2)
    assert f.failure_modes == {"error": 2, "test_answer": 1}
