"""Bearer keys on OTLP ingest (gRPC and HTTP): refusals with the right status, project pinning.

A real collector with authentication on, on loopback; both raw requests and the standard
OpenTelemetry exporters (which send `OTEL_EXPORTER_OTLP_HEADERS` as headers / metadata).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.collector.grpc_receiver import TRACE_SERVICE
from spanlake.storage.keys import KeyStore, keys_path
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span

PROTOBUF = "application/x-protobuf"
UNAUTHENTICATED, PERMISSION_DENIED = 16, 7


@dataclass
class Keys:
    alpha_write: str
    alpha_read: str
    beta_write: str
    revoked: str


@dataclass
class Authed:
    collector: RunningCollector
    keys: Keys
    store: KeyStore


def make_keys(data_dir: Path) -> tuple[KeyStore, Keys]:
    store = KeyStore(keys_path(data_dir))
    _, aw = store.create("alpha", "write", "alpha ingest")
    _, ar = store.create("alpha", "read", "alpha reader")
    _, bw = store.create("beta", "write")
    old, rv = store.create("alpha", "write", "leaked")
    store.revoke(old.id)
    return store, Keys(aw, ar, bw, rv)


@pytest.fixture
def authed(tmp_path: Path) -> Iterator[Authed]:
    data_dir = tmp_path / "data"
    store, keys = make_keys(data_dir)
    running, stop = start_collector(data_dir, auth="on")
    try:
        yield Authed(running, keys, store)
    finally:
        stop()


def body(name: str, project: str | None = None) -> bytes:
    resource = {"service.name": "svc", **({"spanlake.project": project} if project else {})}
    return make_request([make_span(name)], resource=resource).SerializeToString()


def http_export(c: RunningCollector, data: bytes, token: str | None, json_body: bool = False) -> httpx.Response:
    headers = {"Content-Type": "application/json" if json_body else PROTOBUF}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if json_body:
        data = b'{"resourceSpans": []}'
    return httpx.post(f"{c.http}/v1/traces", content=data, headers=headers, timeout=10)


def grpc_export(c: RunningCollector, data: bytes, token: str | None) -> grpc.StatusCode:
    md = (("authorization", f"Bearer {token}"),) if token is not None else None
    with grpc.insecure_channel(c.grpc) as channel:
        try:
            channel.unary_unary(f"/{TRACE_SERVICE}/Export")(data, metadata=md, timeout=10)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def token_for(keys: Keys, case: str) -> str | None:
    return {"none": None, "wrong": "slk_not-a-real-key", "revoked": keys.revoked, "read": keys.alpha_read}[case]


REFUSALS = [
    ("none", 401, UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
    ("wrong", 401, UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
    ("revoked", 401, UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
    ("read", 403, PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED),
]


@pytest.mark.parametrize(("case", "http_status", "rpc_code", "grpc_code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_raw_requests_are_refused(
    authed: Authed, case: str, http_status: int, rpc_code: int, grpc_code: grpc.StatusCode
) -> None:
    c, token = authed.collector, token_for(authed.keys, case)
    r = http_export(c, body(f"refused-{case}"), token)
    assert r.status_code == http_status
    assert r.headers["content-type"] == PROTOBUF
    assert status_pb2.Status.FromString(r.content).code == rpc_code
    if http_status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = http_export(c, b"", token, json_body=True)
    assert (r.status_code, r.json()["code"]) == (http_status, rpc_code)
    assert grpc_export(c, body(f"refused-{case}"), token) == grpc_code
    # Malformed Authorization values are refused the same way as no key.
    if case == "none":
        for value in ("Basic abc", "Bearer", "Token x", authed.keys.alpha_write):  # last: no scheme
            headers = {"Content-Type": PROTOBUF, "Authorization": value}
            r = httpx.post(f"{c.http}/v1/traces", content=body("x"), headers=headers)
            assert r.status_code == 401, value
    c.flush()
    assert c.query("SELECT count(*) AS n FROM spans") == [{"n": 0}]


def test_write_key_pins_the_project(authed: Authed) -> None:
    c, k = authed.collector, authed.keys
    assert http_export(c, body("http-says-beta", project="beta"), k.alpha_write).status_code == 200
    assert grpc_export(c, body("grpc-says-beta", project="beta"), k.alpha_write) == grpc.StatusCode.OK
    assert grpc_export(c, body("grpc-says-nothing"), k.beta_write) == grpc.StatusCode.OK
    # Bearer scheme is case-insensitive (RFC 7235).
    headers = {"Content-Type": PROTOBUF, "Authorization": f"bearer {k.alpha_write}"}
    r = httpx.post(f"{c.http}/v1/traces", content=body("lower"), headers=headers)
    assert r.status_code == 200
    c.flush()
    rows = c.query("SELECT name, project FROM spans ORDER BY name")
    assert rows == [
        {"name": "grpc-says-beta", "project": "alpha"},
        {"name": "grpc-says-nothing", "project": "beta"},
        {"name": "http-says-beta", "project": "alpha"},
        {"name": "lower", "project": "alpha"},
    ]


def finished_spans(name: str, project: str) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "spanlake.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test").start_as_current_span(name):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_real_exporters_with_headers(authed: Authed, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    c, k = authed.collector, authed.keys

    def exporter(token: str | None, via_env: bool = False) -> GrpcSpanExporter | HttpSpanExporter:
        headers = {"authorization": f"Bearer {token}"} if token and not via_env else None
        if via_env:
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"Authorization=Bearer%20{token}")
        else:
            monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", raising=False)
        if transport == "grpc":
            return GrpcSpanExporter(endpoint=c.grpc, insecure=True, headers=headers, timeout=5)
        return HttpSpanExporter(endpoint=f"{c.http}/v1/traces", headers=headers, timeout=5)

    for case in ("none", "wrong", "revoked", "read"):
        e = exporter(token_for(k, case))
        assert e.export(finished_spans(f"refused-{case}", "alpha")) == SpanExportResult.FAILURE, case
        e.shutdown()
    e = exporter(k.alpha_write, via_env=True)  # the way deployments configure it
    assert e.export(finished_spans(f"{transport}-env", "beta")) == SpanExportResult.SUCCESS
    e.shutdown()
    e = exporter(k.beta_write)
    assert e.export(finished_spans(f"{transport}-arg", "alpha")) == SpanExportResult.SUCCESS
    e.shutdown()
    c.flush()
    assert c.query("SELECT name, project FROM spans ORDER BY name") == [
        {"name": f"{transport}-arg", "project": "beta"},
        {"name": f"{transport}-env", "project": "alpha"},
    ]


def test_revocation_applies_to_a_running_collector(authed: Authed) -> None:
    c = authed.collector
    key, token = authed.store.create("gamma", "write")
    assert http_export(c, body("before"), token).status_code == 200  # picked up without a restart
    authed.store.revoke(key.id)
    assert http_export(c, body("after"), token).status_code == 401
    assert grpc_export(c, body("after"), token) == grpc.StatusCode.UNAUTHENTICATED
    c.flush()
    assert c.query("SELECT name, project FROM spans") == [{"name": "before", "project": "gamma"}]


def test_repeated_failures_lock_the_address_out(authed: Authed) -> None:
    c = authed.collector
    limiter = c.collector.auth.limiter
    codes = [http_export(c, body("x"), "slk_guess").status_code for _ in range(limiter.max_failures)]
    assert codes == [401] * limiter.max_failures
    for token in ("slk_guess", "slk_another-guess", authed.keys.revoked, None):  # failing tokens wait now
        r = http_export(c, body("x"), token)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert grpc_export(c, body("x"), token) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_bad_keys_from_an_address_do_not_lock_out_its_valid_keys(authed: Authed) -> None:
    """Any local process sending bad keys must not block the local exporters that send good ones."""
    c = authed.collector
    for _ in range(3 * c.collector.auth.limiter.max_failures):
        assert http_export(c, body("x"), "slk_guess").status_code in (401, 429)
    assert http_export(c, body("good"), authed.keys.alpha_write).status_code == 200
    assert grpc_export(c, body("good-grpc"), authed.keys.alpha_write) == grpc.StatusCode.OK
    # a first read starts the query workers: more than httpx's default 5 s on a loaded machine
    auth = {"Authorization": f"Bearer {authed.keys.alpha_read}"}
    r = httpx.get(f"{c.http}/api/v1/datasets", headers=auth, timeout=60)
    assert r.status_code == 200
    assert http_export(c, body("x"), "slk_guess").status_code == 429  # while the failing token still waits
    c.flush()
    assert sorted(r["name"] for r in c.query("SELECT name FROM spans")) == ["good", "good-grpc"]


def test_health_needs_no_key(authed: Authed) -> None:
    assert httpx.get(f"{authed.collector.http}/health").json() == {"status": "ok"}


def test_keys_file_holds_only_hashes(authed: Authed) -> None:
    text = authed.store.path.read_text()
    for token in vars(authed.keys).values():
        assert token not in text and token.removeprefix("slk_") not in text
    doc = json.loads(text)
    assert {k["project"] for k in doc["keys"]} == {"alpha", "beta"}
    assert all(len(k["token_sha256"]) == 64 for k in doc["keys"])
    assert authed.store.path.stat().st_mode & 0o077 == 0  # not readable by others
