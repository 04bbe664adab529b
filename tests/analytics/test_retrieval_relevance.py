"""Hit rate and precision at k over relevance judgments, against numbers worked out by hand."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.reports import retrieval
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.cli.main import cli
from spanlake.collector.decode import decode_labels
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import LABELS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, sid, span, tid, write
from tests.conftest import RunningCollector
from tests.factories import make_request, make_span

WINDOW = Filters(since=T0, until=T0 + timedelta(hours=1))
PRICES = PriceBook(use_database=False)
KB = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}


def docs(*ids: str | None) -> dict[str, str]:
    return {"gen_ai.retrieval.documents": json.dumps([{"score": 1.0} if i is None else {"id": i} for i in ids])}


def judge(d: Path, span_id: int, relevant: dict[str, bool] | None, author: str, at_s: int, **more: Any) -> None:
    """One label event on span `span_id` of trace 1, set `at_s` seconds after T0."""
    event = {
        "label_id": uuid.uuid4().hex,
        "trace_id": tid(1).hex(),
        "span_id": sid(span_id).hex(),
        "source": "human",
        "author": author,
        "created_at_unix_nano": int((T0 + timedelta(seconds=at_s)).timestamp()) * 10**9,
        "metadata": None if relevant is None else {"relevant": relevant},
        **more,
    }
    batch = decode_labels(orjson.dumps([event]), time.time_ns(), None)
    LakeWriter(DataDir(d).create()).write_batch(LABELS, batch, uuid.uuid4().hex)


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    oi = {"openinference.span.kind": "RETRIEVER", "input.value": "q"}
    oi |= {f"retrieval.documents.{n}.document.id": f"d{n}" for n in (1, 0, 2)}  # out of order on the wire
    write(
        tmp_path,
        [
            span(1, 1, name="T", ms=500),
            span(1, 2, 1, name="kb", **KB, **docs("a", "b", "c")),
            span(1, 3, 1, name="kb", **KB, **docs("x", "y", "z")),
            span(1, 4, 1, name="kb", **KB, **{"gen_ai.retrieval.documents": "[]"}),  # empty retrieval
            span(1, 5, 1, name="kb", **KB, **docs("p", "q")),  # never judged
            span(1, 6, 1, name="kb", **KB, **docs("m", None, "n")),  # the 2nd document has no id
            span(1, 7, 1, name="kb", **KB, **docs("u", "v")),
            span(1, 8, 1, name="retrieve", **oi),
        ],
    )
    d = tmp_path
    judge(d, 2, {"c": True}, "ana", 10)
    judge(d, 2, {"a": True, "b": False}, "bo", 20)  # another reviewer, later: wins
    judge(d, 3, {"z": True}, "ana", 10)  # relevant at rank 3
    judge(d, 4, {"q": True}, "ana", 10)  # nothing came back
    judge(d, 5, None, "ana", 10, verdict="pass")  # a label, but no judgment
    judge(d, 6, {"m": False}, "ana", 10)
    judge(d, 6, {"m": True, "n": True, "elsewhere": True}, "ana", 30)  # same reviewer, later: wins
    judge(d, 7, {"u": False}, "bo", 10)  # judged not relevant
    judge(d, 8, {"d1": True}, "bo", 10)
    return Analytics(tmp_path, prices=PRICES)


def by_source(an: Analytics, k: int) -> dict[str, dict[str, Any]]:
    return {r["data_source"]: r for r in retrieval(an, WINDOW, k=k).to_dicts()}


def test_hit_rate_and_precision_at_k(an: Analytics) -> None:
    # kb, judged: 2 [a b c] {a, not b}; 3 [x y z] {z}; 4 [] {q}; 6 [m - n] {m n}; 7 [u v] {not u}. 5 unjudged.
    kb = by_source(an, 2)["kb"]
    assert kb["queries"] == 6 and kb["judged_queries"] == 5
    # top 2: 2 → a (1 relevant), 3 → x y (z is at k+1: miss), 4 → none, 6 → m (n is 3rd), 7 → u (not relevant)
    assert kb["hit_rate_at_k"] == pytest.approx(2 / 5)
    assert kb["precision_at_k"] == pytest.approx((1 / 2 + 0 + 0 + 1 / 2 + 0) / 5)
    kb3 = by_source(an, 3)["kb"]
    # top 3: 2 → a; 3 → z; 4 → none; 6 → m, n; 7 → none
    assert kb3["hit_rate_at_k"] == pytest.approx(3 / 5)
    assert kb3["precision_at_k"] == pytest.approx((1 / 3 + 1 / 3 + 0 + 2 / 3 + 0) / 5)
    # OpenInference documents by their number: d0 d1 d2, d1 relevant
    oi1, oi2 = by_source(an, 1)["retrieve"], by_source(an, 2)["retrieve"]
    assert (oi1["judged_queries"], oi1["hit_rate_at_k"], oi1["precision_at_k"]) == (1, 0.0, 0.0)
    assert (oi2["judged_queries"], oi2["hit_rate_at_k"], oi2["precision_at_k"]) == (1, 1.0, 0.5)
    # default k = 5: every judged relevant document is in the top 5
    kb5 = retrieval(an, WINDOW, ["data_source"]).filter(data_source="kb").to_dicts()[0]
    assert kb5["hit_rate_at_k"] == pytest.approx(3 / 5)
    assert kb5["precision_at_k"] == pytest.approx((1 + 1 + 0 + 2 + 0) / 5 / 5)


def test_no_judgments_and_bad_k(tmp_path: Path) -> None:
    write(tmp_path, [span(1, 1, name="T"), span(1, 2, 1, name="kb", **KB, **docs("a"))])
    an = Analytics(tmp_path, prices=PRICES)
    (kb,) = retrieval(an, WINDOW).to_dicts()
    assert (kb["judged_queries"], kb["hit_rate_at_k"], kb["precision_at_k"]) == (0, None, None)
    with pytest.raises(ValueError, match="k must be"):
        retrieval(an, WINDOW, k=0)


def test_rollups_carry_the_same_relevance(an: Analytics) -> None:
    rollups.run(an)
    for group in (["data_source"], ["data_source", "model"]):
        rolled, source = run_report(an, "retrieval", WINDOW, group, source="rollups", k=2)
        assert source == "rollups"
        raw = retrieval(an, WINDOW, group, k=2)
        cols = ["data_source", "judged_queries", "hit_rate_at_k", "precision_at_k"]
        assert rolled.select(cols).to_dicts() == raw.select(cols).to_dicts()


def post(collector: RunningCollector, body: object) -> httpx.Response:
    return httpx.post(
        f"{collector.http}/api/v1/labels",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=60,  # a first write may wait for the query workers to start on a loaded machine
    )


def test_judgment_through_the_labels_api(collector: RunningCollector) -> None:
    t0 = time.time_ns() - 60 * 10**9
    root = make_span("ask", start_ns=t0, duration_ns=10**9)
    hit = make_span("kb", trace_id=root.trace_id, parent_span_id=root.span_id, start_ns=t0 + 10**6,
                    duration_ns=10**6, attributes={**KB, **docs("a", "b")})  # fmt: skip
    r = httpx.post(f"{collector.http}/v1/traces", content=make_request([root, hit]).SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"})  # fmt: skip
    assert r.status_code == 200, r.text
    ids = {"trace_id": root.trace_id.hex(), "span_id": hit.span_id.hex(), "source": "human", "author": "ana"}
    bad = [
        ({**ids, "metadata": {"relevant": {"a": "yes"}}}, "metadata.relevant.a: must be true or false"),
        ({**ids, "metadata": {"relevant": ["a"]}}, "metadata.relevant: must be an object"),
        ({**ids, "metadata": {"relevant": {}}}, "metadata.relevant: judge at least one document"),
        ({**ids, "span_id": None, "metadata": {"relevant": {"a": True}}}, "set span_id"),
        ([{**ids, "verdict": "pass"}, {**ids, "metadata": {"relevant": {"a": 1}}}], "[1].metadata.relevant.a"),
    ]
    for body, detail in bad:
        r = post(collector, body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert detail in r.json()["detail"], r.json()
    r = post(collector, {**ids, "metadata": {"relevant": {"b": True, "a": False}}})  # no other field needed
    assert r.status_code == 200, r.text
    collector.flush()
    deadline = time.monotonic() + 10
    while not collector.query("SELECT 1 FROM spans WHERE span_id = $s", {"s": hit.span_id.hex()}):
        assert time.monotonic() < deadline, "spans never reached the lake"
        time.sleep(0.05)
    an = Analytics(collector.lake, prices=PRICES)
    f = Filters(since=datetime.fromtimestamp(t0 / 1e9 - 60, UTC), until=datetime.now(UTC))
    (kb,) = retrieval(an, f, k=1).to_dicts()
    assert (kb["judged_queries"], kb["hit_rate_at_k"], kb["precision_at_k"]) == (1, 0.0, 0.0)  # a is first
    (kb,) = retrieval(an, f, k=2).to_dicts()
    assert (kb["judged_queries"], kb["hit_rate_at_k"], kb["precision_at_k"]) == (1, 1.0, 0.5)
    window = {"since": f.since.isoformat(), "until": f.until.isoformat(), "k": 2}
    r = httpx.get(f"{collector.http}/api/v1/reports/retrieval", params=window, timeout=60)
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert (row["judged_queries"], row["hit_rate_at_k"], row["precision_at_k"]) == (1, 1.0, 0.5)
    assert httpx.get(f"{collector.http}/api/v1/reports/retrieval", params={"k": 0}, timeout=60).status_code == 422
    # a later judgment from the CLI wins
    args = ["labels", "judge", ids["trace_id"], ids["span_id"], "--relevant", "a", "--not-relevant", "b"]
    out = CliRunner().invoke(cli, [*args, "--url", collector.http, "--author", "bo", "--project", "default"])
    assert out.exit_code == 0, out.output
    collector.flush()
    (kb,) = retrieval(an, f, k=1).to_dicts()
    assert (kb["judged_queries"], kb["hit_rate_at_k"], kb["precision_at_k"]) == (1, 1.0, 1.0)
