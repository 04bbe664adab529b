"""Project isolation on the HTTP API with authentication on: labels, feedback, label reads,
label schemas and datasets. A key of project A never writes into or reads from project B."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanlake.storage.keys import KeyStore, keys_path
from tests.conftest import RunningCollector, start_collector

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
LABEL = {"trace_id": TRACE, "source": "human", "author": "ana", "verdict": "fail"}


@dataclass
class Api:
    c: RunningCollector
    a_write: str
    a_read: str
    b_write: str
    revoked: str

    def call(self, method: str, path: str, token: str | None, body: Any = None, **params: str) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = json.dumps(body) if body is not None else None
        url = f"{self.c.http}/api/v1/{path}"
        return httpx.request(method, url, content=content, headers=headers, params=params, timeout=30)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    data_dir = tmp_path / "data"
    store = KeyStore(keys_path(data_dir))
    tokens = [store.create(p, s)[1] for p, s in (("alpha", "write"), ("alpha", "read"), ("beta", "write"))]
    gone, revoked = store.create("alpha", "write")
    store.revoke(gone.id)
    running, stop = start_collector(data_dir, auth="on")
    try:
        yield Api(running, *tokens, revoked)
    finally:
        stop()


def labels_by_project(api: Api) -> list[dict[str, Any]]:
    api.c.flush()
    return api.c.query("SELECT project, source, author FROM labels ORDER BY project, source, author")


@pytest.mark.parametrize("path", ["labels", "feedback"])
def test_label_writes_need_a_write_key(api: Api, path: str) -> None:
    body = LABEL if path == "labels" else {"trace_id": TRACE, "value": "down"}
    assert api.call("POST", path, None, body).status_code == 401
    assert api.call("POST", path, "slk_wrong", body).status_code == 401
    assert api.call("POST", path, api.revoked, body).status_code == 401
    r = api.call("POST", path, api.a_read, body)
    assert r.status_code == 403 and r.json()["code"] == 7
    assert labels_by_project(api) == []


def test_a_key_of_alpha_cannot_write_into_beta(api: Api) -> None:
    # Body naming another project: refused whole, batch or not, label or feedback.
    r = api.call("POST", "labels", api.a_write, {**LABEL, "project": "beta"})
    assert r.status_code == 403 and "'alpha', not 'beta'" in r.json()["message"]
    assert api.call("POST", "labels", api.a_write, [LABEL, {**LABEL, "project": "beta"}]).status_code == 403
    fb = {"trace_id": TRACE, "value": "up", "project": "beta"}
    assert api.call("POST", "feedback", api.a_write, fb).status_code == 403
    assert labels_by_project(api) == []
    # No project, or its own: stored under the key's project.
    assert api.call("POST", "labels", api.a_write, LABEL).status_code == 200
    assert api.call("POST", "labels", api.a_write, [{**LABEL, "project": "alpha", "author": "bo"}]).status_code == 200
    assert api.call("POST", "feedback", api.b_write, {"trace_id": TRACE, "value": "up"}).status_code == 200
    assert labels_by_project(api) == [
        {"project": "alpha", "source": "human", "author": "ana"},
        {"project": "alpha", "source": "human", "author": "bo"},
        {"project": "beta", "source": "user_feedback", "author": None},
    ]


def test_label_reads_stay_in_the_key_project(api: Api) -> None:
    assert api.call("POST", "labels", api.b_write, {**LABEL, "author": "beta-secret"}).status_code == 200
    assert api.call("POST", "labels", api.a_write, LABEL).status_code == 200
    api.c.flush()
    assert api.call("GET", "labels", None, trace_id=TRACE).status_code == 401
    assert api.call("GET", "labels", api.a_read, trace_id=TRACE, project="beta").status_code == 403
    r = api.call("GET", "labels", api.a_read, trace_id=TRACE)  # no project: the key's
    assert r.status_code == 200, r.text
    assert r.json()["project"] == "alpha"
    assert "beta-secret" not in r.text and [h["author"] for h in r.json()["history"]] == ["ana"]
    agreement = api.call("GET", "labels/agreement", api.a_read, project="beta")
    assert agreement.status_code == 403


def test_label_schema_writes_need_a_write_key_of_the_project(api: Api) -> None:
    r = api.call("GET", "label-schema", api.a_read)
    assert r.status_code == 200 and r.json()["project"] == "alpha"
    edit = {"add": ["rude"]}
    assert api.call("POST", "label-schema/failure-modes", api.a_read, edit).status_code == 403
    assert api.call("POST", "label-schema/failure-modes", api.a_write, edit, project="beta").status_code == 403
    r = api.call("POST", "label-schema/failure-modes", api.a_write, edit)
    assert r.status_code == 200 and r.json()["project"] == "alpha", r.text
    assert "rude" not in api.call("GET", "label-schema", api.b_write).text


def test_datasets_are_isolated(api: Api) -> None:
    assert api.call("POST", "datasets", api.a_read, {"name": "golden"}).status_code == 403
    assert api.call("POST", "datasets", api.a_write, {"name": "golden", "project": "beta"}).status_code == 403
    r = api.call("POST", "datasets", api.a_write, {"name": "golden"})
    assert r.status_code == 200 and r.json()["project"] == "alpha", r.text
    items = {"items": [{"trace_id": TRACE}]}
    assert api.call("POST", "datasets/golden/items", api.a_write, {**items, "project": "beta"}).status_code == 403
    assert api.call("POST", "datasets/golden/items", api.a_write, items).status_code == 200
    assert api.call("POST", "datasets", api.b_write, {"name": "beta-only"}).status_code == 200
    api.c.flush()
    assert api.call("GET", "datasets", api.a_read, project="beta").status_code == 403
    listed = api.call("GET", "datasets", api.a_read).json()["datasets"]
    assert [d["dataset"] for d in listed] == ["golden"]
    assert api.call("GET", "datasets/beta-only", api.a_read).status_code == 404
    assert api.call("GET", "datasets/golden", api.b_write).status_code == 404
    assert api.call("GET", "datasets/golden", api.a_read).status_code == 200


def test_the_internal_token_of_up_s_dashboard_writes_any_project(tmp_path: Path) -> None:
    """`spanlake up` hands its dashboard a secret of the run: labels for any project go through;
    a near miss of that secret is refused like any unknown key."""
    secret = "internal-secret-of-this-run-0123456789"
    running, stop = start_collector(tmp_path / "data", auth="on", internal_token=secret)
    try:
        api = Api(running, "", "", "", "")
        for project in ("alpha", "beta"):
            body = {**LABEL, "project": project, "author": f"reviewer-{project}"}
            assert api.call("POST", "labels", secret, body).status_code == 200
        assert api.call("POST", "labels", secret + "x", {**LABEL, "project": "alpha"}).status_code == 401
        assert api.call("POST", "labels", None, {**LABEL, "project": "alpha"}).status_code == 401
        running.flush()
        rows = running.query("SELECT project, author FROM labels ORDER BY project")
        assert rows == [
            {"project": "alpha", "author": "reviewer-alpha"},
            {"project": "beta", "author": "reviewer-beta"},
        ]
    finally:
        stop()


def test_up_gives_its_dashboard_the_internal_token(tmp_path: Path) -> None:
    """With auth on, `spanlake up` starts its dashboard with $SPANLAKE_API_KEY set to the secret
    the collector trusts (read back from the dashboard process's environment)."""
    import subprocess
    import sys
    import time

    from tests.net import free_port

    data_dir = tmp_path / "data"
    out = tmp_path / "up.out"
    cmd = [sys.executable, "-m", "spanlake.cli.main", "up", "--data-dir", str(data_dir), "--grpc-port", "0",
           "--http-port", "0", "--auth", "on", "--no-demo", "--dashboard-port", str(free_port())]  # fmt: skip
    with open(out, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Press Ctrl+C" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        envs = [Path(f"/proc/{c}/environ").read_bytes().split(b"\0") for c in children]
        keys = [e.split(b"=", 1)[1].decode() for env in envs for e in env if e.startswith(b"SPANLAKE_API_KEY=")]
        assert len(keys) == 1 and len(keys[0]) >= 32, out.read_text()
        http = next(line.split()[1] for line in out.read_text().splitlines() if "OTLP/HTTP" in line)
        body = {**LABEL, "project": "beta"}
        headers = {"Authorization": f"Bearer {keys[0]}"}
        assert httpx.post(f"{http}/api/v1/labels", json=body, headers=headers, timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=60)
