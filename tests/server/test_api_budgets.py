"""/api/v1/budgets and /api/v1/destinations on a real server with authentication on
(tests/server/api_helpers.py seeds projects alpha and beta): an admin key changes its own
project's budgets in budgets.toml (the user's comments kept), a read key sees them and
evaluates them, bad input is a precise 4xx problem, and another project's budgets are never seen.

Alpha's figures over [T0 - 30 min, T0 + 30 min), by hand from api_helpers' table:
spend 0.003 + 0.006 = 0.009 USD; 3 tasks (T1, T2, T3); error rate 1/3 (T2)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.server.api_helpers import T0, Api, problem_of, seeded_api

AT = (T0 + timedelta(minutes=30)).isoformat()
FILE = """\
# budgets of the alpha team
[[destination]]
name = "team-hook"   # the team's channel
type = "slack"
url = "https://hooks.example.com/services/T000/B000/SECRETPATH"
secret_env = "TEAM_HOOK_SECRET"
"""
SPEND = {"metric": "spend", "window": "1h", "critical": 0.005, "destinations": ["team-hook"]}
TRAFFIC = {"metric": "traffic", "window": "1h", "warning": 2}
ERRORS = {"metric": "error_rate", "window": "1h", "warning": 0.2, "critical": 0.5, "min_samples": 1}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("budgets") / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "budgets.toml").write_text(FILE)
    running, stop = seeded_api(data_dir, env={"SPANLAKE_BUDGET_INTERVAL": "0"})
    try:
        yield running
    finally:
        stop()


def budgets_file(api: Api) -> Path:
    return Path(api.c.data_dir) / "budgets.toml"


def put(api: Api, name: str, body: dict[str, Any], key: str = "alpha:admin") -> Any:
    return api.call("PUT", f"/api/v1/budgets/{name}", key, body)


def test_create_read_replace_and_delete(api: Api) -> None:
    r = put(api, "spend", SPEND)
    assert r.status_code == 200, r.text
    defaults = {"min_samples": 1, "renotify": "1h"}  # spend's minimum samples, the default re-notify interval
    assert r.json()["definition"] == {"name": "spend", "project": "alpha", **SPEND, **defaults}
    assert put(api, "traffic", TRAFFIC).status_code == 200
    text = budgets_file(api).read_text()
    assert text.startswith(FILE) and 'name = "team-hook"   # the team\'s channel' in text  # comments kept

    listed = api.get("/api/v1/budgets", "alpha:read").json()
    assert listed["project"] == "alpha" and listed["file_error"] is None
    assert [(b["name"], b["metric"], b["definition"]["window"]) for b in listed["budgets"]] == [
        ("spend", "spend", "1h"), ("traffic", "traffic", "1h")]  # fmt: skip
    one = api.get("/api/v1/budgets/spend", "alpha:read").json()
    assert one["definition"]["critical"] == 0.005 and one["line"] is not None

    r = put(api, "traffic", {**TRAFFIC, "warning": 1, "for": "5m"})
    assert r.json()["definition"]["for"] == "5m" and r.json()["definition"]["warning"] == 1
    r = api.call("POST", "/api/v1/budgets", "alpha:admin", {"name": "errors", **ERRORS})
    assert r.status_code == 201, r.text
    body = problem_of(api.call("POST", "/api/v1/budgets", "alpha:admin", {"name": "errors", **ERRORS}), 409)
    assert "budget 'errors' of project 'alpha' exists" in body["detail"]

    assert api.call("DELETE", "/api/v1/budgets/errors", "alpha:admin").json()["name"] == "errors"
    problem_of(api.get("/api/v1/budgets/errors", "alpha:read"), 404)
    problem_of(api.call("DELETE", "/api/v1/budgets/errors", "alpha:admin"), 404)
    assert "errors" not in budgets_file(api).read_text()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({**SPEND, "metric": "p42_latency"}, "unknown metric 'p42_latency'"),
        ({**SPEND, "window": "0m"}, "window must be longer than 0"),
        ({**SPEND, "window": "0"}, "window: not a duration"),
        ({**SPEND, "critical": "lots"}, "critical must be a number, got 'lots'"),
        ({**SPEND, "destinations": ["pager"]}, "unknown destination 'pager' (declared: team-hook)"),
        ({**SPEND, "colour": "red"}, "unknown key 'colour'"),
        ({**SPEND, "name": "other"}, "the body names budget 'other', the path 'bad'"),
        ({**SPEND, "project": "alpha", "task": "a\x00b"}, "contains a control character"),
        ([SPEND], "body must be a JSON object"),
    ],
)
def test_bad_budgets_are_precise_400s(api: Api, body: Any, detail: str) -> None:
    before = budgets_file(api).read_bytes()
    assert detail in problem_of(put(api, "bad", body), 400)["detail"]
    assert budgets_file(api).read_bytes() == before


def test_other_bad_requests(api: Api) -> None:
    assert "reserved" in problem_of(put(api, "status", SPEND), 400)["detail"]
    problem_of(put(api, "no spaces", SPEND), 422)
    r = api.call("PUT", "/api/v1/budgets/x", "alpha:admin")
    assert "not valid JSON" in problem_of(r, 400)["detail"]
    problem_of(api.get("/api/v1/budgets/check", "alpha:read", at="yesterday-ish"), 400)


def test_keys_and_projects(api: Api) -> None:
    assert put(api, "spend", SPEND).status_code == 200
    problem_of(put(api, "x", SPEND, "alpha:read"), 403)  # a read key cannot change budgets
    problem_of(put(api, "x", SPEND, "alpha:write"), 403)  # nor a write key: admin only
    problem_of(api.call("DELETE", "/api/v1/budgets/spend", "alpha:write"), 403)
    problem_of(api.get("/api/v1/budgets", None), 401)
    assert "not 'alpha'" in problem_of(put(api, "x", {**TRAFFIC, "project": "alpha"}, "beta:admin"), 403)["detail"]
    problem_of(api.get("/api/v1/budgets", "beta:read", project="alpha"), 403)

    assert put(api, "spend", {**TRAFFIC}, "beta:admin").json()["project"] == "beta"  # beta's own "spend"
    seen = api.get("/api/v1/budgets", "beta:read").json()["budgets"]
    assert [(b["project"], b["metric"]) for b in seen] == [("beta", "traffic")]
    assert api.get("/api/v1/budgets/spend", "alpha:read").json()["metric"] == "spend"  # alpha's untouched
    checked = api.get("/api/v1/budgets/check", "beta:read", at=AT).json()
    assert [r["project"] for r in checked["readings"]] == ["beta"]
    assert api.call("DELETE", "/api/v1/budgets/spend", "beta:admin").json()["project"] == "beta"
    problem_of(api.call("DELETE", "/api/v1/budgets/spend", "beta:admin"), 404)  # alpha's is not beta's to remove
    assert api.get("/api/v1/budgets/spend", "alpha:read").status_code == 200


def test_check_evaluates_now_with_hand_computed_figures(api: Api) -> None:
    for name, body in (("spend", SPEND), ("traffic", TRAFFIC), ("errors", ERRORS)):
        assert put(api, name, body).status_code == 200
    r = api.get("/api/v1/budgets/check", "alpha:read", at=AT)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["failures"] == [] and doc["file_error"] is None
    got = {x["name"]: x for x in doc["readings"]}
    assert got["spend"]["level"] == "critical" and got["spend"]["value"] == pytest.approx(0.009)
    assert got["spend"]["critical_at"] == 0.005 and got["spend"]["unit"] == "usd"
    assert "above the critical threshold 0.005" in got["spend"]["reason"]
    assert got["traffic"]["level"] == "ok" and got["traffic"]["value"] == 3 and got["traffic"]["samples"] == 3
    assert got["errors"]["level"] == "warning" and got["errors"]["value"] == pytest.approx(1 / 3)
    assert got["errors"]["warning_at"] == 0.2 and got["errors"]["critical_at"] == 0.5
    window = got["spend"]["window"]
    assert window == {"since": (T0 - timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
                      "until": (T0 + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")}  # fmt: skip
    # the watch is off here (SPANLAKE_BUDGET_INTERVAL=0): no status yet
    status = api.get("/api/v1/budgets/status", "alpha:read").json()
    assert status["interval_s"] == 0 and status["at"] is None and status["readings"] == []
    api.call("DELETE", "/api/v1/budgets/errors", "alpha:admin")


def test_a_broken_file_keeps_the_last_good_budgets_and_says_why(api: Api) -> None:
    assert put(api, "spend", SPEND).status_code == 200
    path = budgets_file(api)
    good = path.read_text()
    before = api.get("/api/v1/budgets", "alpha:read").json()
    assert before["file_error"] is None and "spend" in [b["name"] for b in before["budgets"]]
    path.write_text(good.replace("https://hooks.example.com/services/T000/B000/SECRETPATH", "hooks.example.com"))
    try:
        listed = api.get("/api/v1/budgets", "alpha:read").json()
        assert listed["budgets"] == before["budgets"]  # the last good set
        assert "line 2" in listed["file_error"] and "url must be an http:// or https:// URL" in listed["file_error"]
        body = problem_of(put(api, "traffic", TRAFFIC), 400)
        assert "fix the file by hand first" in body["detail"]
    finally:
        path.write_text(good)
    assert api.get("/api/v1/budgets", "alpha:read").json()["file_error"] is None


def test_destinations_never_show_a_secret(api: Api) -> None:
    assert put(api, "spend", SPEND).status_code == 200
    r = api.get("/api/v1/destinations", "alpha:admin")
    assert r.status_code == 200, r.text
    assert r.json()["destinations"] == [
        {"name": "team-hook", "type": "slack", "url": "https://hooks.example.com", "secret_env": "TEAM_HOOK_SECRET",
         "routing_key_env": None, "to": [], "sender": None, "smtp": None, "used_by": ["alpha/spend"]}
    ]  # fmt: skip
    assert "SECRETPATH" not in r.text
    assert api.get("/api/v1/destinations", "beta:admin").json()["destinations"][0]["used_by"] == []
    problem_of(api.get("/api/v1/destinations", "alpha:read"), 403)


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:00-14:00",
        "1970-01-01T00:10:00Z",
        "x" * 5000,
        "a\x00b",
        "' OR 1=1",
    ],
)
def test_check_at_any_time_is_an_answer_or_a_4xx(api: Api, at: str) -> None:
    assert put(api, "spend", SPEND).status_code == 200
    r = api.get("/api/v1/budgets/check", "alpha:read", at=at)
    assert r.status_code in (200, 400, 422), (r.status_code, r.text[:300])
    if r.status_code == 200:  # 1970: a window reaching before the lake's calendar has no spend
        assert [(x["name"], x["value"]) for x in r.json()["readings"] if x["name"] == "spend"] == [("spend", 0.0)]
