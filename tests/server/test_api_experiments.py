"""/api/v1/experiments over a real spanlake holding the designed pair of runs (fake_app's baseline
and candidate over faq@1, run through `spanlake experiment run`; figures worked out by hand in
tests/experiments/helpers.py): each answer equals the CLI's JSON for the same question, and bad
ids, parameters and projects get clear problems. Project isolation with keys is in
test_api_isolation.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from spanlake.experiments.store import RESULTS, Store
from tests.conftest import RunningCollector, start_collector
from tests.experiments.helpers import PROJECT, invoke, run_designed_pair
from tests.server.api_helpers import problem_of


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, str, str]]:
    running, stop = start_collector(tmp_path_factory.mktemp("api-experiments") / "data", auth="off")
    try:
        a, b = run_designed_pair(running)
        yield running, a, b
    finally:
        stop()


def get(c: RunningCollector, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{c.http}/api/v1/experiments{path}", params=params, timeout=60)


def cli_json(c: RunningCollector, *args: str) -> Any:
    out = invoke("experiment", *args, "--format", "json", "--data-dir", str(c.data_dir))
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_list_is_the_cli_list(pair: tuple[RunningCollector, str, str]) -> None:
    c, a, b = pair
    r = get(c, "", project=PROJECT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["project"] == PROJECT
    assert body["experiments"] == cli_json(c, "list", "--project", PROJECT)
    rows = {e["id"]: e for e in body["experiments"]}
    assert [e["id"] for e in body["experiments"]] == [b, a]  # newest first
    assert rows[a]["success_rate"] == 0.9 and rows[b]["success_rate"] == 0.8
    assert rows[a]["cost_per_successful_task"] == pytest.approx(2.0 / 9)
    assert rows[b]["cost_per_successful_task"] == pytest.approx(1.3 / 8)
    assert rows[a]["items"] == rows[b]["items"] == "10/10" and rows[a]["dataset"] == "faq@1"
    assert rows[b]["meta"] == "model=acme-1 prompt_version=v2" and rows[b]["status"] == "finished"
    assert rows[a]["error"] is None
    assert get(c, "", project="nobody-here").json() == {"project": "nobody-here", "experiments": []}


def test_one_experiment_is_the_cli_show(pair: tuple[RunningCollector, str, str]) -> None:
    c, _, b = pair
    r = get(c, f"/{b}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == cli_json(c, "show", b)
    figures = body["figures"]
    assert (figures["items"], figures["successes"], figures["failures"]) == (10, 8, 2)
    assert figures["total_cost"] == pytest.approx(1.3) and figures["cost_per_task"] == pytest.approx(0.13)
    assert figures["failure_modes"] == {"exact": 1, "hallucination": 1}
    items = {i["item_id"]: i for i in body["items"]}
    assert items["item-2"]["failure_mode"] == "hallucination" and items["item-2"]["checks"] == {"exact": False}
    assert items["item-5"]["output"] == "answer 5\n" and items["item-5"]["success"] is True
    assert items["item-3"]["cost_usd"] == pytest.approx(0.1) and items["item-0"]["cost_usd"] == pytest.approx(0.2)
    assert items["item-1"]["trace_url"].endswith(f"trace={items['item-1']['trace_id']}&project=shop-experiments")
    assert body["experiment"]["trace_project"] == "shop-experiments" and body["lake_figures"]["found"] == 10
    assert get(c, f"/{b}", project=PROJECT).json() == body


def test_compare_is_the_cli_compare(pair: tuple[RunningCollector, str, str]) -> None:
    c, a, b = pair
    r = get(c, "/compare", a=a, b=b)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == cli_json(c, "compare", a, b)
    assert body["paired"] is True and body["confidence"] == 0.95
    assert sorted(d["item_id"] for d in body["regressed"]) == ["item-1", "item-2"]
    assert [d["item_id"] for d in body["improved"]] == ["item-9"]
    assert [d["item_id"] for d in body["changed_output"]] == ["item-5"]
    assert body["deltas"]["success_rate"]["estimate"] == pytest.approx(-0.1)
    assert body["deltas"]["cost_per_task"]["estimate"] == pytest.approx(0.65)  # 0.13 / 0.20
    assert body["deltas"]["cost_per_successful_task"]["estimate"] == pytest.approx((1.3 / 8) / (2.0 / 9))
    reg = {d["item_id"]: d for d in body["regressed"]}
    assert (reg["item-1"]["a"]["output"], reg["item-1"]["b"]["output"]) == ("answer 1", "answer one")
    # a narrower confidence, as --confidence
    narrow = get(c, "/compare", a=a, b=b, confidence=0.8).json()
    assert narrow == cli_json(c, "compare", a, b, "--confidence", "0.8")
    wide, tight = body["deltas"]["success_rate"], narrow["deltas"]["success_rate"]
    assert wide["low"] < tight["low"] < -0.1 < tight["high"] < wide["high"]


def test_unknown_ids_and_bad_parameters_are_clear_problems(pair: tuple[RunningCollector, str, str]) -> None:
    c, a, b = pair
    missing = "exp-20200101-000000-0000"
    assert problem_of(get(c, f"/{missing}"), 404)["detail"] == f"no experiment {missing}"
    assert "no experiment" in problem_of(get(c, "/compare", a=a, b=missing), 404)["detail"]
    # another project's experiment is not there (with keys: 403, test_api_isolation.py)
    assert problem_of(get(c, f"/{a}", project="other"), 404)["detail"] == f"no experiment {a} in project 'other'"
    problem_of(get(c, "/compare", a=a, b=b, project="other"), 404)
    assert problem_of(get(c, "/not-an-id"), 422)["detail"].startswith("path.experiment_id: String should match")
    assert "query.b" in problem_of(get(c, "/compare", a=a), 422)["detail"]
    problem_of(get(c, "/compare", a=a, b="exp-1"), 422)
    problem_of(get(c, "/compare", a=a, b=b, confidence=2), 422)
    problem_of(get(c, "/compare", a=a, b=b, confidence="high"), 422)
    assert "invalid project name" in problem_of(get(c, "", project="no/such"), 400)["detail"]


def test_a_damaged_experiment_is_a_409_naming_its_file_not_the_server_path(
    pair: tuple[RunningCollector, str, str],
) -> None:
    c, _, _ = pair
    store = Store(c.data_dir)
    exp = store.create("broken", {"dataset": {"name": "faq", "version": 1, "examples": 1}, "app": "x:y"})
    (exp.folder / RESULTS).write_text('{"item_id": "item-0"}\nnot json\n')
    body = problem_of(get(c, f"/{exp.id}"), 409)
    assert body["detail"].startswith(f"experiments/broken/{exp.id}/results.jsonl:2: damaged result line")
    assert str(c.data_dir) not in body["detail"]
    [row] = get(c, "", project="broken").json()["experiments"]
    assert row["status"] == "damaged" and "results.jsonl:2" in row["error"] and str(c.data_dir) not in row["error"]
