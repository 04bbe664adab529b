"""The API's error shape, body and rate limits, readiness and the published spec, over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.rpc import status_pb2

from spanlake.server.api.limits import ENV_BURST, ENV_MAX_BODY, ENV_RATE
from tests.server.api_helpers import Api, problem_of, seeded_api


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Auth on, 1 request/s in bursts of 3 per key, bodies up to 64 KiB."""
    env = {ENV_RATE: "1", ENV_BURST: "3", ENV_MAX_BODY: str(64 * 1024)}
    api, stop = seeded_api(tmp_path_factory.mktemp("limited") / "data", env=env)
    try:
        yield api
    finally:
        stop()


def test_rate_limit_per_key(limited: Api) -> None:
    statuses = [limited.get("/api/v1/projects", "alpha:read").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = limited.get("/api/v1/projects", "alpha:read")
    body = problem_of(r, 429)
    assert int(r.headers["Retry-After"]) >= 1 and "rate limit" in body["detail"]
    assert limited.get("/api/v1/projects", "beta:read").status_code == 200  # another key has its own bucket
    assert limited.get("/health").status_code == 200  # probes are not limited


def test_oversized_bodies(limited: Api) -> None:
    big = {"trace_id": "ab" * 16, "comment": "x" * (100 * 1024)}
    r = limited.call("POST", "/api/v1/labels", "beta:write", big)  # declared length over the API limit
    assert "65536 byte limit" in problem_of(r, 413)["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"name": "'
        for _ in range(100):
            yield b"y" * 1024
        yield b'"}'

    headers = {"Authorization": f"Bearer {limited.keys['beta:write']}", "Content-Type": "application/json"}
    r = httpx.post(f"{limited.c.http}/api/v1/datasets", content=chunks(), headers=headers, timeout=30)
    problem_of(r, 413)


def test_otlp_keeps_its_error_bodies(tmp_path: Path) -> None:
    api, stop = seeded_api(tmp_path / "data")
    try:
        r = httpx.post(
            f"{api.c.http}/v1/traces", content=b"\x01\x02", headers={"Content-Type": "application/x-protobuf"}
        )
        assert r.status_code == 401 and r.headers["content-type"] == "application/x-protobuf"
        assert status_pb2.Status.FromString(r.content).code == 16
        # The API's errors, unknown paths and methods included, are problems.
        problem_of(api.get("/api/v1/nowhere", "alpha:read"), 404)
        problem_of(api.call("PATCH", "/api/v1/traces", "alpha:write"), 405)
        problem_of(api.call("POST", "/api/v1/labels", "alpha:write", {"trace_id": "zz"}), 400)
        r = api.call("POST", "/api/v1/labels", None, {"trace_id": "ab" * 16, "verdict": "pass"})
        assert problem_of(r, 401) and r.headers["WWW-Authenticate"].startswith("Bearer")
        # Readiness: WAL, flusher and lake; 503 with the failing check once the flusher stops.
        ready = api.get("/ready")
        assert ready.json() == {"status": "ready", "checks": {"wal": "ok", "flusher": "ok", "lake": "ok"}}
        api.c.collector.flusher.close()
        down = api.get("/ready")
        body = problem_of(down, 503)
        assert body["checks"]["flusher"] != "ok" and body["checks"]["wal"] == "ok" and down.headers["Retry-After"]
    finally:
        stop()


def test_published_spec_declares_every_error(limited: Api) -> None:
    spec = httpx.get(f"{limited.c.http}/api/v1/openapi.json").json()  # public, no key
    assert spec["info"]["title"] == "spanlake API" and "Problem" in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if path.startswith("/api/v1/"):
                assert {"401", "429"} <= codes, (method, path, codes)
            for code, resp in op["responses"].items():
                if int(code) >= 400:
                    assert list(resp["content"]) == ["application/problem+json"], (method, path, code)
    assert httpx.get(f"{limited.c.http}/api/v1/docs").status_code == 200
