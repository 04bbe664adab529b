"""/api/v1/saved-filters on a real collector with authentication on: a write key saves in its own
project only, a read key reads, bad input gets a 4xx problem, and the file on disk keeps its format."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanlake.storage.keys import KeyStore, keys_path
from spanlake.storage.saved_filters import SavedFilters
from tests.conftest import RunningCollector, start_collector

PROBLEM = "application/problem+json"
FAILED = {"filters": {"outcome": "error", "attributes": {"customer.tier": "gold"}}, "range_s": 86400, "saved_by": "ana"}


class Api:
    def __init__(self, c: RunningCollector, data_dir: Path, tokens: dict[str, str]) -> None:
        self.c, self.data_dir, self.tokens = c, data_dir, tokens

    def call(self, method: str, path: str, who: str | None, body: Any = None, **params: str) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        content = body if isinstance(body, bytes) else json.dumps(body) if body is not None else None
        url = f"{self.c.http}/api/v1/{path}"
        return httpx.request(method, url, content=content, headers=headers, params=params, timeout=30)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    data_dir = tmp_path / "data"
    store = KeyStore(keys_path(data_dir))
    tokens = {f"{p}_{s}": store.create(p, s)[1] for p, s in (("alpha", "write"), ("alpha", "read"), ("beta", "write"))}
    gone, tokens["revoked"] = store.create("alpha", "write")
    store.revoke(gone.id)
    running, stop = start_collector(data_dir, auth="on")
    try:
        yield Api(running, data_dir, tokens)
    finally:
        stop()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status
    return doc


def test_save_list_and_get(api: Api) -> None:
    r = api.call("PUT", "saved-filters/failed today", "alpha_write", FAILED)
    assert r.status_code == 200, r.text
    saved = r.json()
    assert {k: saved[k] for k in ("name", "project", "range_s", "filters", "saved_by")} == {
        "name": "failed today", "project": "alpha", **FAILED}  # fmt: skip
    on_disk = api.data_dir / "config" / "saved_filters" / "alpha" / "failed today.json"
    assert json.loads(on_disk.read_bytes()) == saved  # the format the dashboard and CLI read
    assert SavedFilters(api.data_dir).get("alpha", "failed today") == saved

    r = api.call("GET", "saved-filters", "alpha_read")
    assert r.status_code == 200 and r.json() == {"project": "alpha", "saved_filters": [saved]}
    assert api.call("GET", "saved-filters/failed today", "alpha_read").json() == saved
    again = api.call("PUT", "saved-filters/failed today", "alpha_write", {"filters": {}, "range_s": None}).json()
    assert again["filters"] == {} and again["range_s"] is None and again["saved_by"] is None  # replaced


def test_scopes_and_projects(api: Api) -> None:
    problem(api.call("PUT", "saved-filters/x", None, FAILED), 401)
    problem(api.call("PUT", "saved-filters/x", "revoked", FAILED), 401)
    problem(api.call("PUT", "saved-filters/x", "slk_not-a-key", FAILED), 401)
    problem(api.call("PUT", "saved-filters/x", "alpha_read", FAILED), 403)  # a read key cannot save
    problem(api.call("GET", "saved-filters", None), 401)
    problem(api.call("PUT", "saved-filters/x", "beta_write", FAILED, project="alpha"), 403)
    problem(api.call("GET", "saved-filters", "alpha_read", project="beta"), 403)
    assert api.call("PUT", "saved-filters/beta only", "beta_write", FAILED).json()["project"] == "beta"
    assert api.call("GET", "saved-filters", "alpha_read").json()["saved_filters"] == []
    problem(api.call("GET", "saved-filters/beta only", "alpha_read"), 404)
    assert not (api.data_dir / "config" / "saved_filters" / "alpha").exists()


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("-starts-badly", FAILED, 422),
        ("x" * 65, FAILED, 422),
        ("ok", b"{not json", 422),
        ("ok", {"filters": "outcome=error"}, 422),
        ("ok", {**FAILED, "project": "beta"}, 422),  # unknown field
        ("ok", {**FAILED, "range_s": -1}, 422),
        ("ok", {**FAILED, "saved_by": "a\x00b"}, 422),
        ("ok", {"filters": {"text": "x" * 70_000}}, 400),  # over the 64 KiB a saved filter may hold
    ],
)
def test_bad_input_is_a_4xx_problem(api: Api, name: str, body: Any, status: int) -> None:
    problem(api.call("PUT", f"saved-filters/{name}", "alpha_write", body), status)
    assert not (api.data_dir / "config" / "saved_filters" / "alpha").exists() or not list(
        (api.data_dir / "config" / "saved_filters" / "alpha").glob("*.json")
    )
