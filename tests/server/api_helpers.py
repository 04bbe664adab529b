"""A collector with authentication on, two projects seeded over OTLP/HTTP with known traces,
and a client for the HTTP API (tests/server/test_api_*.py).

Project alpha (prices: acme-1 at $1 input / $4 output per million tokens):

    trace  start     service  root          duration  status  LLM call (acme-1)             cost
    T1     T0        svc-a    answer        1000 ms   ok      400 ms, 1000 in / 500 out      0.003
    T2     T0+10min  svc-a    answer        3000 ms   ERROR   600 ms, 2000 in / 1000 out     0.006
    T3     T0+20min  svc-b    search fox     200 ms   ok      -                              -

T1 and T2 are tasks named "answer" (T1 records outcome success); attribute customer.tier is gold
on T1 and T3, silver on T2.
Project beta holds one trace with T1's id (root "beta-secret") and one of its own (B1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from spanlake.experiments.store import Experiment, Store
from spanlake.server.api.experiments import EXAMPLE_A, EXAMPLE_B
from spanlake.server.api.limits import ENV_RATE
from spanlake.storage.keys import KeyStore, keys_path
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9
MS = 1_000_000
SINCE, UNTIL = (T0 - timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=1)).isoformat()
WINDOW = {"since": SINCE, "until": UNTIL}
T1, T2, T3, B1 = (bytes([n]) * 16 for n in (0x11, 0x22, 0x33, 0xB1))
HEX = {name: tid.hex() for name, tid in (("T1", T1), ("T2", T2), ("T3", T3), ("B1", B1))}
PRICES = '[[price]]\nmodel = "acme-1"\ninput_mtok = 1.0\noutput_mtok = 4.0\n'


def sid(n: int) -> bytes:
    return n.to_bytes(8, "big")


def llm(trace: bytes, parent: int, at_ms: int, ms: int, tokens_in: int, tokens_out: int) -> Any:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "acme-1", "gen_ai.provider.name": "acme"}
    attrs |= {"gen_ai.usage.input_tokens": tokens_in, "gen_ai.usage.output_tokens": tokens_out}
    return make_span("chat acme-1", trace, sid(parent + 1), sid(parent), T0_NS + at_ms * MS, ms * MS, attrs)


def alpha_requests() -> list[Any]:
    ten = 10 * 60 * 1000
    svc_a = [
        make_span("answer", T1, sid(1), b"", T0_NS, 1000 * MS,
                  {"spanlake.task.name": "answer", "spanlake.task.outcome": "success", "customer.tier": "gold"}),
        llm(T1, 1, 100, 400, 1000, 500),
        make_span("answer", T2, sid(1), b"", T0_NS + ten * MS, 3000 * MS,
                  {"spanlake.task.name": "answer", "customer.tier": "silver"}, status_code=2),
        llm(T2, 1, ten + 100, 600, 2000, 1000),
    ]  # fmt: skip
    svc_b = [make_span("search fox", T3, sid(1), b"", T0_NS + 2 * ten * MS, 200 * MS, {"customer.tier": "gold"})]
    return [make_request(svc_a, {"service.name": "svc-a"}), make_request(svc_b, {"service.name": "svc-b"})]


def beta_requests() -> list[Any]:
    spans = [
        make_span("beta-secret", T1, sid(1), b"", T0_NS + 5 * MS, 50 * MS, {"customer.tier": "gold"}),
        make_span("beta-only", B1, sid(1), b"", T0_NS + 7 * MS, 70 * MS),
    ]
    return [make_request(spans, {"service.name": "svc-a"})]


def seed_experiments(data_dir: Path, project: str = "alpha") -> None:
    """The two experiments the API's examples name (EXAMPLE_A, baseline, and EXAMPLE_B,
    candidate), over alpha's dataset faq@1 of three items: the candidate regresses on q2 (its
    `exact` check fails), improves q3 (the baseline raised), keeps q1; lake figures for q1-q2."""
    store = Store(data_dir)
    runs = {
        EXAMPLE_A: [("q1", "ok", "a1", True), ("q2", "ok", "a2", True), ("q3", "error", None, None)],
        EXAMPLE_B: [("q1", "ok", "a1", True), ("q2", "ok", "a2?", False), ("q3", "ok", "a3", True)],
    }
    for n, (exp_id, rows) in enumerate(runs.items()):
        folder = store.folder(project, exp_id)
        folder.mkdir(parents=True)
        record = {"id": exp_id, "project": project, "dataset": {"name": "faq", "version": 1, "examples": 3},
                  "app": "bot:answer", "checks": ["exact"], "meta": {"prompt_version": f"v{n + 1}"},
                  "trace_project": f"{project}-experiments", "status": "finished",
                  "created_at": (T0 + timedelta(minutes=n)).isoformat()}  # fmt: skip
        exp = Experiment(folder, record)
        store.save(exp)
        lines = [
            {"item_id": item, "status": status, "output": out, "error": None if out else "RuntimeError: down",
             "checks": {} if ok is None else {"exact": ok}, "trace_id": f"{n}{i}".rjust(32, "0"),
             "wall_ms": 100.0 * (i + 1)}
            for i, (item, status, out, ok) in enumerate(rows)
        ]  # fmt: skip
        with store.running(exp) as results:
            results.append(lines)
        figures = {"q1": {"cost_usd": 0.001 * (n + 1), "duration_ms": 90.0},
                   "q2": {"cost_usd": 0.002, "duration_ms": 150.0}}  # fmt: skip
        store.write_figures(exp, figures, found=2, expected=3)


@dataclass
class Api:
    """The collector and one key per (project, scope)."""

    c: RunningCollector
    keys: dict[str, str]  # "alpha:read" → token

    def call(self, method: str, path: str, key: str | None = None, body: Any = None, **params: Any) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        content = json.dumps(body) if body is not None else None
        return httpx.request(method, self.c.http + path, content=content, headers=headers, params=params, timeout=60)

    def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return self.call("GET", path, key, **params)


def send(http: str, request: Any, token: str | None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = httpx.post(f"{http}/v1/traces", content=request.SerializeToString(), headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def seeded_api(data_dir: Path, env: dict[str, str] | None = None, **overrides: Any) -> tuple[Api, Any]:
    """Start a collector with auth on and keys for alpha and beta, seed both; (api, stop).
    `env` is set while the collector starts (SPANLAKE_API_*; rate limiting is off by default here)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "prices.toml").write_text(PRICES)
    store = KeyStore(keys_path(data_dir))
    keys = {f"{p}:{s}": store.create(p, s)[1] for p in ("alpha", "beta") for s in ("read", "write", "admin")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ({ENV_RATE: "0"} | (env or {})).items():
            mp.setenv(k, v)
        running, stop = start_collector(data_dir, auth="on", **overrides)
    try:
        for req in alpha_requests():
            send(running.http, req, keys["alpha:write"])
        for req in beta_requests():
            send(running.http, req, keys["beta:write"])
        running.flush()
    except BaseException:
        stop()
        raise
    return Api(running, keys), stop


def problem_of(r: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of an error response, checked for RFC 9457 shape."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert body["status"] == status and body["type"].startswith("urn:spanlake:problem:")
    assert body["title"] and body["detail"] and body["instance"] == r.request.url.path
    return body
