"""The 500s of issue 14 item 2, one test each, over the real API of a collector seeded over OTLP
(authentication off): validation grouped by an attribute, attribute keys holding JSON-path
characters, the cost report grouped with a filter matching nothing, and calendar-end cursors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from spanlake.analytics.rollups.materialize import run_job
from spanlake.collector.errors import InvalidRequest
from spanlake.server.api.common import event_bytes
from spanlake.server.api.limits import ENV_RATE
from tests.conftest import RunningCollector, start_collector
from tests.factories import make_request, make_span
from tests.server.api_helpers import MS, PRICES, T0_NS, T1, T2, T3, WINDOW, alpha_requests, problem_of, send, sid

# Keys a JSON path would mis-read: quotes, backslashes, dots, brackets, '$', '~', '/', unicode, NUL.
ODD_KEYS = ['q"uote', "back\\slash", '\\"', "a.b", "a[0]", "$", "$.x", "*", "~0", "a/b", "ünï\u202e", "", "n\x00l"]


T4, T5 = bytes([0x44]) * 16, bytes([0x55]) * 16


def checks_requests() -> list[Any]:
    """Validation checks: a failing one in T1 (tier gold on its task), a passing one in T2 (silver),
    one in T3 that carries its own tier (platinum), and one in T4 carrying every odd key; in T5
    a retrieval whose document keys hold a quote and whose scores are no numbers."""
    passed, name = "spanlake.validation.passed", "spanlake.validation.name"
    odd = {passed: True, name: "odd"} | {k: f"v{i}" for i, k in enumerate(ODD_KEYS)}
    spans = [
        make_span("check", T1, sid(10), sid(1), T0_NS + 10 * MS, MS, {passed: False, name: "schema"}),
        make_span("check", T2, sid(10), sid(1), T0_NS + 600_010 * MS, MS, {passed: True, name: "schema"}),
        make_span("check", T3, sid(10), sid(1), T0_NS + 1_200_010 * MS, MS,
                  {passed: True, name: "schema", "customer.tier": "platinum"}),
        make_span("odd-root", T4, sid(1), b"", T0_NS + 1_500_000 * MS, 10 * MS),
        make_span("odd", T4, sid(2), sid(1), T0_NS + 1_500_001 * MS, MS, odd),
    ]  # fmt: skip
    docs = {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "d1",
        'retrieval.documents.0.document.a"b\\.document.score': "0.5",  # a quote in a content key
        "retrieval.documents.1.document.id": "d2",
        "retrieval.documents.1.document.score": "not a number",
    }
    retrieval = [make_span("search", T5, sid(1), b"", T0_NS + 1_600_000 * MS, 5 * MS, docs)]
    return [make_request(spans, {"service.name": "svc-b"}), make_request(retrieval, {"service.name": "svc-r"})]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCollector]:
    data_dir = tmp_path_factory.mktemp("api500") / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "prices.toml").write_text(PRICES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_RATE, "0")
        running, stop = start_collector(data_dir, auth="off")
    try:
        for req in [*alpha_requests(), *checks_requests()]:
            send(running.http, req, None)
        running.flush()
        run_job(data_dir)  # hourly rollups, which the cost report reads where they are up to date
        yield running
    finally:
        stop()


def get(c: RunningCollector, path: str, **params: Any) -> httpx.Response:
    return httpx.get(c.http + path, params={**WINDOW, **params}, timeout=60)


def rows(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()["rows"]


def test_validation_grouped_by_an_attribute(api: RunningCollector) -> None:
    """The check's own attribute, else its task's: gold 1 check 1 failure, silver 1/0, platinum 1/0,
    and the check of T4 (no tier anywhere) under null."""
    got = rows(get(api, "/api/v1/reports/validation", group_by="attr:customer.tier"))
    assert [(r["attr:customer.tier"], r["checks"], r["failures"], r["failure_rate"]) for r in got] == [
        ("gold", 1, 1, 1.0),
        ("platinum", 1, 0, 0.0),
        ("silver", 1, 0, 0.0),
        (None, 1, 0, 0.0),
    ]
    got = rows(get(api, "/api/v1/reports/validation", group_by="validator,attr:customer.tier", source="raw"))
    assert [(r["validator"], r["attr:customer.tier"], r["checks"]) for r in got] == [
        ("odd", None, 1),
        ("schema", "gold", 1),
        ("schema", "platinum", 1),
        ("schema", "silver", 1),
    ]
    got = rows(get(api, "/api/v1/reports/validation", group_by="attr:customer.tier", attr="customer.tier=platinum"))
    assert [(r["attr:customer.tier"], r["checks"]) for r in got] == [("platinum", 1)]


def test_retrieval_with_odd_document_keys_and_scores(api: RunningCollector) -> None:
    got = rows(get(api, "/api/v1/reports/retrieval", source="raw"))
    assert [(r["data_source"], r["queries"], r["docs_per_query"]) for r in got] == [("search", 1, 2.0)]
    got = rows(get(api, "/api/v1/reports/retrieved-documents", source="raw"))
    assert sorted(r["document_id"] for r in got) == ["d1", "d2"]


def escaped(key: str) -> str:
    """A key as the `attr` parameter names it (backslash and '=' escaped)."""
    return key.replace("\\", "\\\\").replace("=", "\\=")


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_attribute_keys_filter_and_group_exactly(api: RunningCollector, key: str) -> None:
    value = f"v{ODD_KEYS.index(key)}"
    r = get(api, "/api/v1/traces", attr=f"{escaped(key)}={value}")
    if key == "":  # refused as the likely mistake it is (docs/security.md); grouping takes it
        problem_of(r, 400)
    else:
        assert r.status_code == 200, r.text[:500]
        assert [t["trace_id"] for t in r.json()["traces"]] == [T4.hex()]
        assert get(api, "/api/v1/traces", attr=f"{escaped(key)}=v999").json()["traces"] == []
    got = rows(get(api, "/api/v1/reports/validation", group_by_attr=key))
    assert [(r[f"attr:{key}"], r["checks"]) for r in got] == [(value, 1), (None, 3)]


@pytest.mark.parametrize("source", ["auto", "rollups", "raw"])
def test_cost_grouped_with_a_filter_matching_nothing(api: RunningCollector, source: str) -> None:
    for group_by in ("model", "service,day", "prompt_version"):
        r = get(api, "/api/v1/reports/cost", group_by=group_by, service="no-such-service", source=source)
        assert rows(r) == [], (group_by, source)
        assert r.json()["source"] == ("raw" if source == "raw" else "rollups")
    # Calls but no tasks of the group's service, and tasks but no calls (svc-b has no LLM call).
    got = rows(get(api, "/api/v1/reports/cost", group_by="service", service="svc-b", source=source))
    assert [(r["service"], r.get("calls"), r["tasks"]) for r in got] == [("svc-b", None, 2)]  # T3 and T4


def _cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


@pytest.mark.parametrize(
    "since, until",
    [
        ("0001-01-01T00:00:00+00:00", "2025-06-02T11:00:00+00:00"),
        ("2025-06-02T09:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"),
        ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00"),
        ("9999-12-31T23:59:59+14:00", "9999-12-31T23:59:59-14:00"),
    ],
)
def test_cursor_at_the_ends_of_the_calendar(api: RunningCollector, since: str, until: str) -> None:
    r = httpx.get(api.http + "/api/v1/traces", params={"cursor": _cursor({"o": 0, "s": since, "u": until})}, timeout=60)
    assert "cursor" in problem_of(r, 400)["detail"]


@pytest.mark.parametrize("start", ["0345-10-22T04:29:30.2Z", "9999-12-31T23:59:59-11:00", "1969-12-31T23:59:59Z"])
def test_a_dataset_item_starting_off_the_lakes_calendar_is_a_400(api: RunningCollector, start: str) -> None:
    """Found by schemathesis: a trace_start in year 345 overflowed the event's nanoseconds (500)."""
    body = {"items": [{"trace_id": "ab" * 16, "trace_start": start}]}
    r = httpx.post(api.http + "/api/v1/datasets/odd/items", json=body, timeout=60)
    assert "trace_start" in problem_of(r, 400)["detail"]
    assert httpx.get(api.http + "/health", timeout=10).status_code == 200


def test_event_bytes_refuses_integers_beyond_64_bits() -> None:
    with pytest.raises(InvalidRequest, match="64 bits"):
        event_bytes([{"metadata": {"n": 2**70}}])
