"""/api/v1/evaluators on the real server (tests/server/api_helpers.py seeds projects alpha and
beta, authentication on): reading needs a read key of the project, changing an admin key;
bad bodies are 400 problems naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanlake.server.evaluation_watch import INTERVAL_ENV
from tests.evaluators.online_helpers import wait_for
from tests.server.api_helpers import Api, problem_of, seeded_api

FILE = """
[settings]
quiet_period = "1s"

[[evaluator]]
name = "fast"
kind = "threshold"
project = "alpha"
metric = "latency_ms"
max = 1000000000.0

[[evaluator]]
name = "slow"
kind = "threshold"
project = "alpha"
metric = "latency_ms"
min = 1000000000.0

[[evaluator]]
name = "hidden"
kind = "json_valid"
project = "beta"

[[rule]]
name = "every"
project = "alpha"
evaluators = ["fast", "slow"]
sample = 1.0
queue_when = "disagree"
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("evaluators") / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "evaluators.toml").write_text(FILE)
    running, stop = seeded_api(data_dir, env={INTERVAL_ENV: "0.5", "SPANLAKE_BUDGET_INTERVAL": "0"})
    try:
        yield running
    finally:
        stop()


def alpha_traces(api: Api) -> int:
    rows = api.c.query("SELECT count(DISTINCT trace_id) AS n FROM spans WHERE project = 'alpha'")
    return int(rows[0]["n"])


def test_list_shows_the_projects_evaluators_with_their_online_totals(api: Api) -> None:
    n = alpha_traces(api)
    assert n > 0
    ready = lambda: api.get("/api/v1/evaluators/status", "alpha:read").json()["handled"] >= n  # noqa: E731
    wait_for(ready, 60, "the seeded traces judged")
    body = api.get("/api/v1/evaluators", "alpha:read").json()
    assert body["project"] == "alpha" and body["file_error"] is None
    by_name = {e["name"]: e for e in body["evaluators"]}
    assert set(by_name) == {"fast", "slow"}  # beta's evaluator is not shown to alpha's key
    fast, slow = by_name["fast"], by_name["slow"]
    assert (fast["kind"], fast["version"], slow["version"]) == ("threshold", 1, 1)
    assert (fast["volume"], fast["pass_rate"], fast["errors"]) == (n, 1.0, 0)
    assert (slow["volume"], slow["pass_rate"]) == (n, 0.0)
    assert fast["cost_usd"] == 0.0 and fast["mean_latency_ms"] is None  # code evaluators: no judge cost
    (rule,) = body["rules"]
    assert (rule["name"], rule["sample"], rule["queue_dataset"], rule["error"]) == ("every", 1.0, "queue.every", None)


def test_status_shows_backlog_cursor_and_the_retry_list(api: Api) -> None:
    s = api.get("/api/v1/evaluators/status", "alpha:read").json()
    assert s["interval_s"] == 0.5 and s["running"] is True
    assert s["retry"] == 0 and s["file_error"] is None and s["cycle_error"] is None
    assert s["backlog"] == 0 and s["cursor"]["ingested_at_us"] > 0 and s["at"] is not None


def test_reading_needs_a_key_of_the_project(api: Api) -> None:
    problem_of(api.get("/api/v1/evaluators"), 401)
    problem_of(api.get("/api/v1/evaluators", "alpha:read", project="beta"), 403)
    assert api.get("/api/v1/evaluators/hidden", "beta:read").json()["kind"] == "json_valid"
    problem_of(api.get("/api/v1/evaluators/hidden", "alpha:read"), 404)
    problem_of(api.get("/api/v1/evaluators/rules/nope", "alpha:read"), 404)
    assert api.get("/api/v1/evaluators/rules/every", "alpha:read").json()["evaluators"] == ["fast", "slow"]
    problem_of(api.get("/api/v1/evaluators/nope/alignment", "alpha:read"), 404)


# --- changing (the file editing is evaluators.evaluators_file, helper A1) -----------------------


JUDGE_BAD_TEMPLATE = {"kind": "llm_judge", "base_url": "http://127.0.0.1:9/v1", "model": "m", "template": "{nonsense}"}


def put(api: Api, path: str, body: Any, key: str = "alpha:admin") -> Any:
    return api.call("PUT", path, key, body)


def test_put_and_delete_an_evaluator_and_a_rule(api: Api) -> None:
    body = {"kind": "regex", "pattern": "^ok", "expect": "present"}
    problem_of(put(api, "/api/v1/evaluators/starts_ok", body, key="alpha:write"), 403)
    r = put(api, "/api/v1/evaluators/starts_ok", body)
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["project"], r.json()["version"]) == ("regex", "alpha", 1)
    assert 'name = "starts_ok"' in (Path(api.c.data_dir) / "evaluators.toml").read_text()
    changed = put(api, "/api/v1/evaluators/starts_ok", body | {"pattern": "^OK"}).json()
    assert changed["version"] == 2  # a changed definition is a new version
    rule = {"evaluators": ["starts_ok"], "sample": 0.25, "queue_when": "fail"}
    r = put(api, "/api/v1/evaluators/rules/some", rule)
    assert r.status_code == 200 and r.json()["sample"] == 0.25 and r.json()["queue_dataset"] == "queue.some"
    assert api.call("DELETE", "/api/v1/evaluators/rules/some", "alpha:admin").status_code == 200
    assert api.call("DELETE", "/api/v1/evaluators/starts_ok", "alpha:admin").status_code == 200
    problem_of(api.get("/api/v1/evaluators/starts_ok", "alpha:read"), 404)
    problem_of(api.call("DELETE", "/api/v1/evaluators/starts_ok", "alpha:admin"), 404)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/evaluators/bad", {"kind": "nope"}, "kind"),
        ("/api/v1/evaluators/bad", JUDGE_BAD_TEMPLATE, "nonsense"),
        ("/api/v1/evaluators/bad", {"kind": "threshold", "metric": "latency_ms", "name": "other"}, "name"),
        ("/api/v1/evaluators/rules/bad", {"evaluators": ["fast"], "sample": 2}, "sample"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field(api: Api, path: str, body: Any, field: str) -> None:
    assert field in problem_of(put(api, path, body), 400)["detail"]


def test_bad_requests(api: Api) -> None:
    r = api.call("PUT", "/api/v1/evaluators/x", "alpha:admin", None)
    problem_of(r, 400)
    problem_of(put(api, "/api/v1/evaluators/x", ["not", "an", "object"]), 400)
    problem_of(put(api, "/api/v1/evaluators/x", {"kind": "json_valid", "project": "beta"}), 403)
    problem_of(api.get("/api/v1/evaluators/bad name!", "alpha:read"), 422)
