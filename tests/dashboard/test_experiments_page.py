"""The Experiments page with Streamlit's AppTest, over experiments written by the real runner:
fake_app's baseline (A) and candidate (B) over faq@1 (tests/experiments/helpers.py:
run_designed_pair), and the `flaky` app (C) that raises on items 3 and 7, each run through
`spanlake experiment run` against a real spanlake. Every figure is worked out by hand here
from tests/experiments/fake_app.py (acme-1 at $0.001 per input and $0.002 per output token)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from spanlake.dashboard import experiment_view as ev
from spanlake.experiments.store import Store
from spanlake.storage.users import UserStore
from tests.conftest import start_collector
from tests.dashboard.conftest import APP, TIMEOUT_S
from tests.dashboard.test_pages import elements
from tests.dashboard.test_signin import sign_in
from tests.experiments.helpers import run_designed_pair, run_experiment


@dataclass(frozen=True)
class Runs:
    data_dir: Path
    a: str  # baseline: 9/10 right (item-9 wrong), $0.20 each
    b: str  # candidate: fails item-1 (exact) and item-2 (hallucination), $0.20 on 0-2, $0.10 on 3-9
    c: str  # flaky: raises on items 3 and 7, right elsewhere, $0.03 each (10 in / 10 out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    running, stop = start_collector(tmp_path_factory.mktemp("experiments-page") / "data", auth="off")
    try:
        a, b = run_designed_pair(running)
        c = run_experiment(running, "tests.experiments.fake_app:flaky", "v3")
    finally:
        stop()
    yield Runs(running.data_dir, a, b, c)


Open = Callable[..., AppTest]


@pytest.fixture
def open_page(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Open:
    """open_page(**query): the Experiments page over the runs' data directory, all projects."""
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(runs.data_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")

    def open_(**query: Any) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
        at.query_params.update(query)
        at.switch_page("app_pages/experiments.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval, by its textbook formula."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def rate(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k / n:.1%} [{low:.1%}, {high:.1%}] ({k}/{n})"


def p95(values: list[float]) -> float:
    xs = sorted(values)
    pos = (len(xs) - 1) * 0.95
    lo = int(pos)
    return xs[lo] + (xs[lo + 1] - xs[lo]) * (pos - lo)


def plain(markdown: str) -> str:
    """Markdown as the reader sees it (the page escapes every markup character of names)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def frames(at: AppTest) -> list[list[dict[str, Any]]]:
    return [d.value.to_dict("records") for d in at.dataframe]


def test_the_list_and_the_two_newest_over_one_dataset_picked(open_page: Open, runs: Runs) -> None:
    at = open_page()
    listed = frames(at)[0]
    assert [r["id"] for r in listed] == [runs.c, runs.b, runs.a]  # newest first
    by = {r["id"]: r for r in listed}
    assert (by[runs.a]["success_pct"], by[runs.b]["success_pct"], by[runs.c]["success_pct"]) == (90.0, 80.0, 80.0)
    assert by[runs.a]["cost_per_successful_task"] == pytest.approx(2.0 / 9)  # $2.00 over 9 successes
    assert by[runs.b]["cost_per_successful_task"] == pytest.approx(1.3 / 8)  # $1.30 over 8
    assert by[runs.c]["cost_per_successful_task"] == pytest.approx(0.3 / 8)  # 10 x $0.03 over 8
    durations = [f["duration_ms"] for f in Store(runs.data_dir).get(runs.a).figures().values()]
    assert by[runs.a]["p95_ms"] == pytest.approx(round(p95(durations), 1))
    assert by[runs.b]["meta"] == "model=acme-1 prompt_version=v2" and by[runs.b]["items"] == "10/10"
    assert by[runs.a]["dataset"] == "faq@1" and by[runs.a]["status"] == "finished"
    # the newest (C) and the newest older run over the same dataset (B): B is the baseline
    assert at.multiselect(key="experiments_pick").value == [runs.b, runs.c]


def test_aggregates_side_by_side_with_intervals(open_page: Open, runs: Runs) -> None:
    at = open_page(a=runs.a, b=[runs.b, runs.c])
    assert at.multiselect(key="experiments_pick").value == [runs.a, runs.b, runs.c]
    rows = {r["figure"]: r for r in frames(at)[1]}
    assert list(rows["items"].values()) == ["items", "10", "10", "—", "10", "—"]
    assert rows["success rate"]["A (baseline)"] == rate(9, 10)  # 90.0% [59.6%, 98.2%] (9/10)
    assert rows["success rate"]["B"] == rate(8, 10) == rows["success rate"]["C"]
    assert rows["success rate"]["B vs A"].startswith("-10.0 pts [")
    assert (rows["cost per task"]["A (baseline)"], rows["cost per task"]["B"], rows["cost per task"]["C"]) == (
        "$0.2", "$0.13", "$0.03")  # fmt: skip
    assert rows["cost per task"]["B vs A"].startswith("-35.0 % [")  # 0.13 / 0.20 = 0.65
    assert rows["cost per task"]["C vs A"] == "-85.0 % [-85.0 %, -85.0 %]"  # every item 0.03 / 0.20
    cps = rows["cost per successful task"]
    assert (cps["A (baseline)"], cps["B"], cps["C"]) == ("$0.222222", "$0.1625", "$0.0375")
    assert cps["B vs A"].startswith("-26.9 % [")  # (1.3 / 8) / (2 / 9) = 0.73125
    assert rows["errors and timeouts"]["C"] == "2" and rows["errors and timeouts"]["B"] == "0"
    modes = {r["failure mode"]: r for r in frames(at)[2]}
    assert modes["exact"] == {"failure mode": "exact", "A": 1, "B": 1, "C": 0}
    assert modes["hallucination"]["B"] == 1 and modes["error"]["C"] == 2
    caption = plain(" ".join(c.value for c in at.caption))
    assert f"A = {runs.a} · faq@1 · model=acme-1 prompt_version=v1 · B = {runs.b} · faq@1" in caption


def test_the_gate_verdict_for_rules_pasted_in(open_page: Open, runs: Runs) -> None:
    at = open_page(a=runs.a, b=runs.b)
    rules = 'min_items = 5\n[success_rate]\nmax_drop_points = 5\n[no_critical_regressions]\nmodes = ["hallucination"]'
    at.text_area(key="experiments_rules").set_value(rules).run()
    verdicts = [m.value for m in at.markdown if "against A" in m.value]
    assert verdicts == [
        "**B against A:** :red-badge[:material/cancel: fail] (`spanlake gate` would exit 1)"
    ]  # item-2 passed in A and fails in B with a critical mode
    [lines] = [m.value for m in at.markdown if "no\\_critical\\_regressions" in m.value]
    assert ":red-badge[:material/cancel: fail] **no\\_critical\\_regressions**" in lines and "item\\-2" in lines
    assert ":green-badge[:material/check_circle: pass] **min\\_items**: 10 / 10 items in common" in lines
    at.text_area(key="experiments_rules").set_value("[cost_per_task]\nmax_increase_pct = 10").run()
    assert next(m.value for m in at.markdown if "against A" in m.value).startswith(
        "**B against A:** :green-badge[:material/check_circle: pass]"
    )  # B costs 35 % less
    at.text_area(key="experiments_rules").set_value("[speed]\nmax = 1").run()
    assert [plain(e.value) for e in at.error] == [
        "gate rules: unknown rule 'speed' (rules: confidence, min_items, success_rate, cost_per_task, "
        "cost_per_successful_task, p50_latency, p95_latency, no_critical_regressions)"
    ]


def test_items_by_filter_and_an_item_opened_in_both_runs(open_page: Open, runs: Runs) -> None:
    at = open_page(a=runs.a, b=runs.b)
    control = at.segmented_control(key="experiments_filter")
    assert control.value == "regressed"
    items = frames(at)[-1]
    assert [(r["item"], r["baseline"], r["candidate"], r["candidate failure"]) for r in items] == [
        ("item-1", "pass", "fail", "exact"),
        ("item-2", "pass", "fail", "hallucination"),
    ]
    results_a, results_b = Store(runs.data_dir).get(runs.a).results(), Store(runs.data_dir).get(runs.b).results()
    assert items[0]["candidate trace"] == f"./trace?trace={results_b['item-1']['trace_id']}&project=shop-experiments"
    assert items[0]["baseline trace"] == f"./trace?trace={results_a['item-1']['trace_id']}&project=shop-experiments"
    assert (items[1]["baseline output"], items[1]["candidate output"]) == ("answer 2", "answer 2 (made up)")
    # the item opened (the first of the table): input and expected output from faq@1, both runs
    assert at.selectbox(key="experiments_item").value == "item-1"
    assert [t.value for t in at.text] == ["question 1", "answer 1", "answer 1", "answer one"]
    badges = [m.value for m in at.markdown if m.value.startswith("**A**") or m.value.startswith("**B**")]
    assert badges == ["**A** :green-badge[pass]", "**B** :red-badge[fail · exact]"]
    ms_a, ms_b = (Store(runs.data_dir).get(i).figures()["item-1"]["duration_ms"] for i in (runs.a, runs.b))
    assert [plain(c.value) for c in at.caption if " · cost " in c.value] == [
        f"exact ✓ · cost $0.2 · {ms_a:.0f} ms",
        f"exact ✗ · cost $0.2 · {ms_b:.0f} ms",
    ]
    buttons = [e.proto for e in elements(at.main) if getattr(e, "type", None) == "link_button"]
    assert [(b.label, b.url) for b in buttons] == [
        ("Open A's trace", items[0]["baseline trace"]),
        ("Open B's trace", items[0]["candidate trace"]),
    ]
    control.set_value("improved").run()
    assert [r["item"] for r in frames(at)[-1]] == ["item-9"]
    assert at.selectbox(key="experiments_item").value == "item-9"
    assert [t.value for t in at.text] == ["question 9", "answer 9", "I don't know", "answer 9"]
    at.segmented_control(key="experiments_filter").set_value("changed").run()
    assert [(r["item"], r["candidate output"]) for r in frames(at)[-1]] == [("item-5", "answer 5\n")]
    at.segmented_control(key="experiments_filter").set_value("all").run()
    assert [r["item"] for r in frames(at)[-1]] == [f"item-{i}" for i in range(10)]
    labels = at.segmented_control(key="experiments_filter").options
    assert labels == ["Regressed (2)", "Improved (1)", "Changed output (1)", "All items (10)"]


def test_a_link_with_the_runs_swapped_swaps_regressed_and_improved(open_page: Open, runs: Runs) -> None:
    at = open_page(a=runs.b, b=runs.a)
    assert at.segmented_control(key="experiments_filter").options == [
        "Regressed (1)", "Improved (2)", "Changed output (1)", "All items (10)"]  # fmt: skip
    assert [r["item"] for r in frames(at)[-1]] == ["item-9"]


def test_the_trace_project_lists_them_too_and_an_empty_data_dir_says_how_to_run_one(
    open_page: Open, runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page()
    at.sidebar.selectbox(key="global_project").set_value("shop-experiments").run()  # where their traces are
    assert [r["id"] for r in frames(at)[0]] == [runs.c, runs.b, runs.a]
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    at.switch_page("app_pages/experiments.py").run()
    assert not at.exception and not at.dataframe
    [info] = at.info
    assert info.value.startswith("No experiments on any project yet.") and "spanlake experiment run" in info.value


def test_a_comparison_opens_on_its_first_filter_with_items() -> None:
    counts = {"regressed": 0, "improved": 2, "changed": 1, "all": 12}
    assert ev.first_filter(counts) == "improved"
    assert ev.first_filter(counts | {"improved": 0}) == "changed"
    assert ev.first_filter(dict.fromkeys(counts, 0) | {"all": 12}) == "all"  # the demo's v1 / v2: none changed


def test_signed_in_users_see_the_experiments_of_their_projects_only(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = UserStore(tmp_path / "users.json")
    users.add("vera", "viewer", "s3cret-vera", ("other",))
    users.add("ana", "labeller", "s3cret-ana", ("shop",))
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(runs.data_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "password")
    monkeypatch.setenv("SPANLAKE_USERS_FILE", str(users.path))
    monkeypatch.setenv("SPANLAKE_SIGNIN_FILE", str(tmp_path / "signin.json"))
    for name, seen in (("vera", []), ("ana", [runs.c, runs.b, runs.a])):
        at = sign_in(AppTest.from_file(APP, default_timeout=TIMEOUT_S).run(), name, f"s3cret-{name}")
        at.switch_page("app_pages/experiments.py").run()
        assert not at.exception
        if seen:
            assert [r["id"] for r in frames(at)[0]] == seen
        else:
            assert not at.dataframe and at.info[0].value.startswith("No experiments on project other yet.")
