"""GET /api/v1/reports/*: the analytics reports as JSON, figures worked out by hand from the seed
(tests/server/api_helpers.py: acme-1 at $1/$4 per million tokens)."""

from __future__ import annotations

from typing import Any

import pytest

from spanlake.server.api.reports import REPORTS
from tests.server.api_helpers import HEX, WINDOW, Api, problem_of


def report(api: Api, name: str, **params: Any) -> dict[str, Any]:
    r = api.get(f"/api/v1/reports/{name}", "alpha:read", **{**WINDOW, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["report"] == name and body["since"] == "2025-06-02T09:00:00Z"
    assert all(list(row) == body["columns"] for row in body["rows"])
    return body


def test_every_report_is_served(api_v1: Api) -> None:
    listed = api_v1.get("/api/v1/reports", "alpha:read").json()
    assert [r["name"] for r in listed] == list(REPORTS)
    for name in REPORTS:
        extra = {"by": "service", "a": "svc-a", "b": "svc-b"} if name == "compare" else {}
        report(api_v1, name, **extra)


def test_cost(api_v1: Api) -> None:
    (row,) = report(api_v1, "cost", source="raw")["rows"]
    total = (1000 + 2000) * 1.0 / 1e6 + (500 + 1000) * 4.0 / 1e6  # 0.009
    assert (row["calls"], row["input_tokens"], row["output_tokens"], row["unpriced_calls"]) == (2, 3000, 1500, 0)
    assert row["cost_usd"] == pytest.approx(total)
    assert (row["tasks"], row["successful_tasks"], row["failed_tasks"]) == (3, 1, 1)
    assert row["success_rate"] == pytest.approx(1 / 3)
    assert row["cost_per_task"] == pytest.approx(total / 3)
    assert row["cost_per_successful_task"] == pytest.approx(total / 1)  # every task's cost over the one success


def test_cost_grouped_like_the_cli(api_v1: Api) -> None:
    rows = report(api_v1, "cost", group_by="service", source="raw")["rows"]
    by = {r["service"]: r for r in rows}
    assert by["svc-a"]["calls"] == 2 and by["svc-a"]["cost_usd"] == pytest.approx(0.009)
    assert by["svc-b"]["tasks"] == 1 and by["svc-b"]["cost_usd"] is None  # no calls: no cost, not zero
    per_tier = report(api_v1, "cost", group_by="attr:customer.tier", source="raw")["rows"]
    # Calls group by their own attributes (the LLM spans have no tier), tasks by their task span's.
    assert {r["attr:customer.tier"]: r["calls"] for r in per_tier if r["calls"]} == {None: 2}
    assert {r["attr:customer.tier"]: r["tasks"] for r in per_tier if r["tasks"]} == {"gold": 2, "silver": 1}
    only_gold = report(api_v1, "cost", attr="customer.tier=gold", source="raw")["rows"][0]
    assert (only_gold["tasks"], only_gold["calls"]) == (2, 0)  # T1's call has no tier of its own


def test_tasks_and_latency(api_v1: Api) -> None:
    (t,) = report(api_v1, "tasks")["rows"]
    assert (t["tasks"], t["unknown_tasks"], t["from_app"], t["from_error"], t["from_default"]) == (3, 1, 1, 1, 1)
    assert t["p50_ms"] == 1000.0  # median of 200, 1000, 3000
    levels = {r["level"]: r for r in report(api_v1, "latency", slow_ms=999)["rows"]}
    task, call = levels["task"], levels["llm"]
    assert (task["count"], task["p50_ms"], task["max_ms"]) == (3, 1000.0, 3000.0)
    assert task["p90_ms"] == pytest.approx(1000 + 0.8 * 2000)  # linear between 1000 and 3000
    assert task["error_rate"] == pytest.approx(1 / 3) and task["slow_share"] == pytest.approx(2 / 3)
    assert (call["count"], call["p50_ms"], call["max_ms"]) == (2, 500.0, 600.0)  # 400 and 600 ms


def test_task_list_and_compare(api_v1: Api) -> None:
    body = report(api_v1, "task-list", sort="cost", limit=2, source="raw")
    assert body["source"] == "raw"
    rows = body["rows"]
    assert [(r["trace_id"], r["cost_usd"]) for r in rows] == [(HEX["T2"], pytest.approx(0.006)),
                                                              (HEX["T1"], pytest.approx(0.003))]  # fmt: skip
    a, b, delta = report(api_v1, "compare", by="service", a="svc-a", b="svc-b")["rows"]
    assert (a["service"], a["tasks"], a["success_rate"]) == ("svc-a", 2, 0.5)
    assert a["cost_per_successful_task"] == pytest.approx(0.009)
    assert (b["service"], b["tasks"], delta["tasks"]) == ("svc-b", 1, -1)


def test_bad_report_parameters(api_v1: Api) -> None:
    problem_of(api_v1.get("/api/v1/reports/cost", "alpha:read", group_by="colour", **WINDOW), 400)
    problem_of(api_v1.get("/api/v1/reports/compare", "alpha:read", **WINDOW), 422)  # a and b are required
    problem_of(api_v1.get("/api/v1/reports/compare", "alpha:read", by="colour", a="x", b="y"), 422)
    problem_of(api_v1.get("/api/v1/reports/latency", "alpha:read", slow_ms=-1), 422)
    problem_of(api_v1.get("/api/v1/reports/cost", "alpha:read", since="yesterday"), 400)
    problem_of(api_v1.get("/api/v1/reports/cost", "alpha:read", since="1h", until="2h"), 400)
    problem_of(api_v1.get("/api/v1/reports/cost", "alpha:read", since="99999999999d"), 400)
    problem_of(api_v1.get("/api/v1/reports/cost", "alpha:read", group_by="attr:x", source="rollups"), 400)
    # rollups keep each hour's top tasks over all models, so a model's task list needs raw spans
    problem = problem_of(api_v1.get("/api/v1/reports/task-list", "alpha:read", model="acme-1", source="rollups"), 400)
    assert "source raw" in problem["detail"]
    problem_of(api_v1.get("/api/v1/reports/tasks", "alpha:read", source="somewhere"), 422)
    problem_of(api_v1.get("/api/v1/reports/nothing", "alpha:read"), 404)


def test_task_name_filter(api_v1: Api) -> None:
    (t,) = report(api_v1, "tasks", task_name="answer", source="raw")["rows"]
    assert (t["tasks"], t["successful_tasks"]) == (2, 1)  # T1 and T2; T3 is a task named "search fox"
    (c,) = report(api_v1, "cost", task_name="answer", source="raw")["rows"]
    assert (c["calls"], c["tasks"]) == (2, 2) and c["cost_usd"] == pytest.approx(0.009)
    (t,) = report(api_v1, "tasks", task_name="search fox")["rows"]
    assert t["tasks"] == 1
    assert report(api_v1, "cost", task_name="search fox", source="raw")["rows"][0]["calls"] == 0
    problem_of(api_v1.get("/api/v1/reports/tasks", "alpha:read", task_name="a\x01b", **WINDOW), 400)
