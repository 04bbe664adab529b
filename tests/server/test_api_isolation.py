"""Project isolation and injection on every /api/v1 endpoint, with authentication on.

Every operation of the published OpenAPI document is listed in CALLS (a test fails when one is
missing), so a new endpoint cannot skip these checks: no key → 401; a key of beta naming alpha
→ 403; a key of beta → its own data or 403/404, never a byte of alpha's; a read key cannot
write; only an admin key manages keys. Then hostile values in every filter parameter: 4xx or
a correct (empty) answer, never 5xx, never another project's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from spanlake.collector.auth import FailureLimiter
from spanlake.experiments.store import Store
from spanlake.storage.keys import KeyStore, keys_path
from tests.server.api_helpers import HEX, WINDOW, Api, problem_of

BUDGET = {"metric": "traffic", "window": "1h", "critical": 1}
ALPHA_MARKERS = ("alpha", HEX["T2"], HEX["T3"], "search fox", "svc-b", "acme-1", "ana-alpha")
BETA_MARKERS = ("beta", "beta-secret", "beta-only", HEX["B1"], "bo-beta")


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # concrete path (alpha's resources)
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    need: str = "read"  # read | write | admin
    project_param: bool = True  # takes ?project=
    body_project: bool = False  # its body may name a project


def _calls(alpha_key_id: str, experiment: str = "exp-20250602-100000-a1fa") -> dict[tuple[str, str], Call]:
    t2, span, b1 = HEX["T2"], "0000000000000002", HEX["B1"]
    report = {**WINDOW, "by": "service", "a": "svc-a", "b": "svc-b"}
    calls = {
        ("GET", "/api/v1/traces"): Call("GET", "/api/v1/traces", WINDOW),
        ("GET", "/api/v1/traces/{trace_id}"): Call("GET", f"/api/v1/traces/{t2}"),
        ("GET", "/api/v1/traces/{trace_id}/spans/{span_id}"): Call("GET", f"/api/v1/traces/{t2}/spans/{span}"),
        ("GET", "/api/v1/reports"): Call("GET", "/api/v1/reports", project_param=False),
        ("GET", "/api/v1/projects"): Call("GET", "/api/v1/projects", project_param=False),
        ("GET", "/api/v1/keys"): Call("GET", "/api/v1/keys", need="admin"),
        ("POST", "/api/v1/keys"): Call(
            "POST", "/api/v1/keys", body={"scope": "read", "name": "x"}, need="admin", body_project=True
        ),
        ("DELETE", "/api/v1/keys/{key_id}"): Call("DELETE", f"/api/v1/keys/{alpha_key_id}", need="admin"),
        ("GET", "/api/v1/labels"): Call("GET", "/api/v1/labels", {"trace_id": HEX["T1"]}),
        ("POST", "/api/v1/labels"): Call(
            "POST",
            "/api/v1/labels",
            body={"trace_id": b1, "verdict": "fail", "author": "x"},
            need="write",
            project_param=False,
            body_project=True,
        ),
        ("POST", "/api/v1/feedback"): Call(
            "POST",
            "/api/v1/feedback",
            body={"trace_id": b1, "value": "up"},
            need="write",
            project_param=False,
            body_project=True,
        ),
        ("GET", "/api/v1/labels/agreement"): Call("GET", "/api/v1/labels/agreement"),
        ("GET", "/api/v1/label-schema"): Call("GET", "/api/v1/label-schema"),
        ("PUT", "/api/v1/label-schema"): Call("PUT", "/api/v1/label-schema", body={"version": 0}, need="write"),
        ("POST", "/api/v1/label-schema/failure-modes"): Call(
            "POST", "/api/v1/label-schema/failure-modes", body={"add": ["rude"]}, need="write"
        ),
        ("GET", "/api/v1/datasets"): Call("GET", "/api/v1/datasets"),
        ("POST", "/api/v1/datasets"): Call(
            "POST", "/api/v1/datasets", body={"name": "other"}, need="write", body_project=True
        ),
        ("GET", "/api/v1/datasets/{name}"): Call("GET", "/api/v1/datasets/golden"),
        ("POST", "/api/v1/datasets/{name}/items"): Call(
            "POST", "/api/v1/datasets/golden/items", body={"items": [{"trace_id": b1}]}, need="write", body_project=True
        ),
        ("POST", "/api/v1/datasets/{name}/versions"): Call("POST", "/api/v1/datasets/golden/versions", need="write"),
        ("GET", "/api/v1/datasets/{name}/export"): Call("GET", "/api/v1/datasets/golden/export", {"version": 1}),
        ("GET", "/api/v1/saved-filters"): Call("GET", "/api/v1/saved-filters"),
        ("GET", "/api/v1/saved-filters/{name}"): Call("GET", "/api/v1/saved-filters/failures"),
        ("PUT", "/api/v1/saved-filters/{name}"): Call(
            "PUT", "/api/v1/saved-filters/other", body={"filters": {"outcome": "failure"}}, need="write"
        ),
        ("GET", "/api/v1/budgets"): Call("GET", "/api/v1/budgets"),
        ("GET", "/api/v1/budgets/check"): Call("GET", "/api/v1/budgets/check", {"at": WINDOW["until"]}),
        ("GET", "/api/v1/budgets/status"): Call("GET", "/api/v1/budgets/status"),
        ("GET", "/api/v1/budgets/{name}"): Call("GET", "/api/v1/budgets/spend"),
        ("POST", "/api/v1/budgets"): Call(
            "POST", "/api/v1/budgets", body={"name": "other", **BUDGET}, need="admin", body_project=True
        ),
        ("PUT", "/api/v1/budgets/{name}"): Call(
            "PUT", "/api/v1/budgets/another", body=BUDGET, need="admin", body_project=True
        ),
        ("DELETE", "/api/v1/budgets/{name}"): Call("DELETE", "/api/v1/budgets/spend", need="admin"),
        ("GET", "/api/v1/destinations"): Call("GET", "/api/v1/destinations", need="admin"),
        ("GET", "/api/v1/experiments"): Call("GET", "/api/v1/experiments"),
        ("GET", "/api/v1/experiments/compare"): Call(
            "GET", "/api/v1/experiments/compare", {"a": experiment, "b": experiment}
        ),
        ("GET", "/api/v1/experiments/{experiment_id}"): Call("GET", f"/api/v1/experiments/{experiment}"),
        ("GET", "/api/v1/evaluators"): Call("GET", "/api/v1/evaluators"),
        ("GET", "/api/v1/evaluators/status"): Call("GET", "/api/v1/evaluators/status"),
        ("GET", "/api/v1/evaluators/{name}"): Call("GET", "/api/v1/evaluators/reply"),
        ("PUT", "/api/v1/evaluators/{name}"): Call(
            "PUT", "/api/v1/evaluators/other", body={"kind": "json_valid"}, need="admin", body_project=True
        ),
        ("DELETE", "/api/v1/evaluators/{name}"): Call("DELETE", "/api/v1/evaluators/spare", need="admin"),
        ("GET", "/api/v1/evaluators/{name}/alignment"): Call("GET", "/api/v1/evaluators/reply/alignment"),
        ("GET", "/api/v1/evaluators/{name}/disagreements"): Call("GET", "/api/v1/evaluators/reply/disagreements"),
        ("GET", "/api/v1/evaluators/rules/{name}"): Call("GET", "/api/v1/evaluators/rules/sampled"),
        ("PUT", "/api/v1/evaluators/rules/{name}"): Call(
            "PUT",
            "/api/v1/evaluators/rules/more",
            body={"evaluators": ["reply"], "sample": 0.5},
            need="admin",
            body_project=True,
        ),
        ("DELETE", "/api/v1/evaluators/rules/{name}"): Call("DELETE", "/api/v1/evaluators/rules/sampled", need="admin"),
    }
    from spanlake.server.api.reports import REPORTS

    for name in REPORTS:
        calls[("GET", f"/api/v1/reports/{name}")] = Call("GET", f"/api/v1/reports/{name}", report)
    return calls


@pytest.fixture(scope="module")
def isolated(api_v1: Api) -> tuple[Api, dict[tuple[str, str], Call]]:
    """The seeded collector plus alpha's dataset (T2, frozen as version 1) and a label by ana-alpha."""
    label = {"trace_id": HEX["T1"], "source": "judge", "author": "ana-alpha", "verdict": "fail"}
    assert api_v1.call("POST", "/api/v1/labels", "alpha:write", label).status_code == 200
    assert api_v1.call("POST", "/api/v1/datasets", "alpha:write", {"name": "golden"}).status_code == 200
    items = {"items": [{"trace_id": HEX["T2"]}]}
    assert api_v1.call("POST", "/api/v1/datasets/golden/items", "alpha:write", items).status_code == 200
    api_v1.c.flush()
    assert api_v1.call("POST", "/api/v1/datasets/golden/versions", "alpha:write").status_code == 200
    spend = {"metric": "spend", "window": "1h", "critical": 0.001}
    assert api_v1.call("PUT", "/api/v1/budgets/spend", "alpha:admin", spend).status_code == 200
    for project in ("alpha", "beta"):  # an evaluator `reply` in each; alpha's also `spare` and a rule
        reply = {"kind": "json_valid", "project": project}
        assert api_v1.call("PUT", "/api/v1/evaluators/reply", f"{project}:admin", reply).status_code == 200
    spare = {"kind": "regex", "pattern": "acme-1"}
    assert api_v1.call("PUT", "/api/v1/evaluators/spare", "alpha:admin", spare).status_code == 200
    rule = {"evaluators": ["reply"], "sample": 0.25}
    assert api_v1.call("PUT", "/api/v1/evaluators/rules/sampled", "alpha:admin", rule).status_code == 200
    saved = {"filters": {"outcome": "failure"}}
    assert api_v1.call("PUT", "/api/v1/saved-filters/failures", "alpha:write", saved).status_code == 200
    spare = KeyStore(keys_path(api_v1.c.data_dir)).create("alpha", "read", "spare")[0]
    return api_v1, _calls(spare.id, alpha_experiment(api_v1.c.data_dir))


def alpha_experiment(data_dir: Path) -> str:
    """An experiment on alpha's dataset `golden`, with one result (written by the real store)."""
    store = Store(data_dir)
    record = {"dataset": {"name": "golden", "version": 1, "examples": 1}, "app": "alpha.bot:answer",
              "meta": {"prompt_version": "ana-alpha"}, "trace_project": "alpha-experiments"}  # fmt: skip
    exp = store.create("alpha", record)
    with store.running(exp) as results:
        results.append([{"item_id": HEX["T2"], "status": "ok", "output": "search fox", "success": True}])
    store.update(exp, status="finished")
    return exp.id


def test_every_operation_is_covered(isolated: tuple[Api, dict[tuple[str, str], Call]]) -> None:
    api, calls = isolated
    spec = api.get("/api/v1/openapi.json").json()
    published = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/v1/")}
    assert published == set(calls)


def _send(api: Api, call: Call, key: str | None, **params: Any) -> Any:
    return api.call(call.method, call.path, key, call.body, **{**call.params, **params})


def _ids(calls: dict[tuple[str, str], Call]) -> list[str]:
    return [f"{m} {p}" for m, p in calls]


CALL_IDS = _ids(_calls("00000000"))


def test_beta_gets_404_for_alpha_resources(isolated: tuple[Api, dict[tuple[str, str], Call]]) -> None:
    api, calls = isolated
    for op in ("GET /api/v1/traces/{trace_id}", "GET /api/v1/traces/{trace_id}/spans/{span_id}",
               "GET /api/v1/datasets/{name}", "GET /api/v1/datasets/{name}/export",
               "DELETE /api/v1/keys/{key_id}", "GET /api/v1/budgets/{name}",
               "DELETE /api/v1/budgets/{name}", "GET /api/v1/experiments/{experiment_id}",
               "GET /api/v1/experiments/compare", "GET /api/v1/evaluators/rules/{name}",
               "DELETE /api/v1/evaluators/{name}", "DELETE /api/v1/evaluators/rules/{name}"):  # fmt: skip
        call = calls[tuple(op.split(" ", 1))]  # type: ignore[index]
        problem_of(_send(api, call, f"beta:{call.need}"), 404)
    # T1 exists in both projects: each key sees its own.
    mine = api.get(f"/api/v1/traces/{HEX['T1']}", "beta:read").json()
    assert [s["name"] for s in mine["spans"]] == ["beta-secret"] and mine["project"] == "beta"
    assert api.get("/api/v1/projects", "beta:read").json() == {"projects": [{"name": "beta"}]}
    assert {k["project"] for k in api.get("/api/v1/keys", "beta:admin").json()["keys"]} == {"beta"}
    # alpha's own key reads alpha's experiment; beta's list is empty
    exp = api.get(calls[("GET", "/api/v1/experiments/{experiment_id}")].path, "alpha:read")
    assert exp.status_code == 200 and exp.json()["experiment"]["meta"] == {"prompt_version": "ana-alpha"}
    assert [e["project"] for e in api.get("/api/v1/experiments", "alpha:read").json()["experiments"]] == ["alpha"]
    assert api.get("/api/v1/experiments", "beta:read").json() == {"project": "beta", "experiments": []}


@pytest.mark.parametrize("op", CALL_IDS)
def test_no_key_or_a_bad_key_is_401(isolated: tuple[Api, dict[tuple[str, str], Call]], op: str) -> None:
    api, calls = isolated
    call = calls[tuple(op.split(" ", 1))]  # type: ignore[index]
    # Every failure counts towards the address's lock-out (tested in test_auth.py): start afresh.
    api.c.collector.auth.limiter = FailureLimiter()
    problem_of(_send(api, call, None), 401)
    problem_of(_send(api, call, "slk_not-a-key"), 401)


@pytest.mark.parametrize("op", CALL_IDS)
def test_a_key_of_beta_never_sees_alpha(isolated: tuple[Api, dict[tuple[str, str], Call]], op: str) -> None:
    api, calls = isolated
    call = calls[tuple(op.split(" ", 1))]  # type: ignore[index]
    beta = f"beta:{call.need}"
    if call.project_param:
        body = problem_of(_send(api, call, beta, project="alpha"), 403)
        assert "not 'alpha'" in body["detail"]
    if call.body_project:  # naming alpha in the body is refused too
        named = Call(call.method, call.path, call.params, {**call.body, "project": "alpha"}, call.need)
        assert "not 'alpha'" in problem_of(_send(api, named, beta), 403)["detail"]
    r = _send(api, call, beta)
    assert r.status_code in (200, 201, 404), (r.status_code, r.text)
    text = r.text.lower()
    for sent in [*call.path.split("/"), *(str(v) for v in call.params.values())]:  # echoes are not leaks
        text = text.replace(sent.lower(), "")
    leaked = [m for m in ALPHA_MARKERS if m.lower() in text]
    assert not leaked, (leaked, r.text[:500])


@pytest.mark.parametrize("op", CALL_IDS)
def test_scopes(isolated: tuple[Api, dict[tuple[str, str], Call]], op: str) -> None:
    api, calls = isolated
    call = calls[tuple(op.split(" ", 1))]  # type: ignore[index]
    if call.need == "read":
        return
    problem_of(_send(api, call, "alpha:read"), 403)
    if call.need == "admin":
        problem_of(_send(api, call, "alpha:write"), 403)


def test_admin_keys_round_trip(api_v1: Api) -> None:
    r = api_v1.call("POST", "/api/v1/keys", "beta:admin", {"scope": "write", "name": "ci"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["key"]["project"] == "beta" and created["token"].startswith("slk_")
    token, key_id = created["token"], created["key"]["id"]
    assert api_v1.get("/api/v1/projects", token).status_code == 200  # the new key works at once
    assert api_v1.call("DELETE", f"/api/v1/keys/{key_id}", "beta:admin").json()["revoked_at"] is not None
    problem_of(api_v1.get("/api/v1/projects", token), 401)
    listed = api_v1.get("/api/v1/keys", "beta:admin", include_revoked="true").json()["keys"]
    assert key_id in {k["id"] for k in listed} and all("token" not in k for k in listed)
    assert "token_sha256" not in str(listed)


HOSTILE = [
    "' OR '1'='1",
    "alpha' OR project = 'beta' --",
    '"; DROP TABLE spans; --',
    "x%' UNION SELECT * FROM spans_raw --",
    "$p0",
    "🦆 ünïcödé ‮",
    "a\x00b",
    "../../etc/passwd",
    "x" * 5000,
    'attr:x" , 1 AS "y',
]
TRACE_PARAMS = ["service", "model", "q", "session_id", "task_name", "prompt_version", "attr", "project", "since",
                "until", "cursor", "outcome", "sort", "order", "min_ms", "max_cost", "has_error", "limit"]  # fmt: skip
REPORT_PARAMS = ["service", "model", "provider", "prompt_name", "prompt_version", "attr", "group_by", "project",
                 "since", "default_outcome", "a"]  # fmt: skip


def _no_beta(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert r.status_code in (200, 400, 403, 404, 422), (r.status_code, r.text[:300])
    leaked = [m for m in BETA_MARKERS if m in r.text.replace("'beta'", "")]
    assert not leaked, (leaked, r.text[:300])


@pytest.mark.parametrize("param", TRACE_PARAMS)
def test_hostile_trace_filters(api_v1: Api, param: str) -> None:
    for value in HOSTILE:
        if param == "attr":
            value = f"customer.tier={value}"
        r = api_v1.get("/api/v1/traces", "alpha:read", **{**WINDOW, param: value})
        _no_beta(r)
        if r.status_code == 200:
            assert r.json()["traces"] == [], (param, value)


@pytest.mark.parametrize("param", REPORT_PARAMS)
def test_hostile_report_filters(api_v1: Api, param: str) -> None:
    for value in HOSTILE:
        for name in ("compare",) if param == "a" else ("tasks",):
            params = {**WINDOW, "a": "svc-a", "b": "svc-b", param: value}
            r = api_v1.get(f"/api/v1/reports/{name}", "alpha:read", **params)
            _no_beta(r)
            if r.status_code == 200 and param not in ("group_by", "a", "default_outcome"):
                rows = r.json()["rows"]
                assert all(not row.get("tasks") and not row.get("calls") for row in rows), (name, param, value, rows)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_path_and_label_parameters(api_v1: Api, value: str) -> None:
    for path, params in (
        ("/api/v1/traces/{v}", {}),
        ("/api/v1/datasets/{v}", {}),
        ("/api/v1/datasets/{v}/export", {"format": "csv"}),
        ("/api/v1/labels", {"trace_id": value}),
        ("/api/v1/datasets/golden/export", {"format": value}),
        ("/api/v1/keys", {"project": value}),
    ):
        r = api_v1.get(path.replace("{v}", quote(value, safe="")), "alpha:admin", **params)
        _no_beta(r)
        assert r.status_code != 200, (path, value, r.text[:200])
