"""Validation failures, retrieval stats and compare, against numbers worked out by hand."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import compare, retrieval, retrieved_documents, validation, validation_errors
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.analytics.helpers import T0, span, write

WINDOW = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
PRICES = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)


def _llm(version: str, inp: int) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "acme-1",
        "gen_ai.prompt.version": version,
        "gen_ai.usage.input_tokens": inp,
    }


def _check(name: str, passed: bool, errors: list[str] | None = None) -> dict[str, object]:
    attrs: dict[str, object] = {"spanlake.validation.name": name, "spanlake.validation.passed": passed}
    if errors:
        attrs["spanlake.validation.errors"] = errors
    return attrs


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    write(
        tmp_path,
        [
            span(30, 1, name="T30", ms=100),
            span(30, 2, 1, name="chat", **_llm("v1", 1000)),
            span(
                30,
                3,
                1,
                name="check",
                **_check("schema", False, ["missing field 'age' at 3", "missing field 'name' at 7"]),
            ),
            span(31, 1, name="T31", ms=200),
            span(31, 2, 1, name="chat", **_llm("v1", 3000)),
            span(31, 3, 1, name="check", **_check("schema", True)),
            span(31, 4, 1, name="pii", **_check("no_pii", False, ["found email 'a@b.c'"])),
            span(32, 1, name="T32", ms=300, **{"spanlake.task.outcome": "success"}),
            span(32, 2, 1, name="chat", **_llm("v2", 2000)),
            span(32, 3, 1, name="check", **_check("schema", True)),
            span(33, 1, name="T33", ms=500),
            span(33, 2, 1, name="chat", **_llm("v2", 2000)),
            span(33, 3, 1, name="check", **_check("schema", False, ["missing field 'zip' at 12"])),
        ],
    )
    return Analytics(tmp_path, prices=PRICES)


def test_failure_rate_per_validator_and_prompt_version(an: Analytics) -> None:
    got = {r["validator"]: r for r in validation(an, WINDOW).to_dicts()}
    # schema: 4 checks (T30 fail, T31 pass, T32 pass, T33 fail); no_pii: 1 check, failed
    assert (got["schema"]["checks"], got["schema"]["failures"], got["schema"]["failure_rate"]) == (4, 2, 0.5)
    assert (got["no_pii"]["checks"], got["no_pii"]["failures"], got["no_pii"]["failure_rate"]) == (1, 1, 1.0)
    # the check has no prompt version of its own: it takes its task's (that of the task's LLM call)
    by_version = {
        (r["validator"], r["prompt_version"]): (r["checks"], r["failures"])
        for r in validation(an, WINDOW, ["validator", "prompt_version"]).to_dicts()
    }
    assert by_version == {("schema", "v1"): (2, 1), ("schema", "v2"): (2, 1), ("no_pii", "v1"): (1, 1)}
    only_v2 = Filters(since=WINDOW.since, until=WINDOW.until, prompt_version="v2")
    assert validation(an, only_v2).to_dicts() == [
        {"validator": "schema", "checks": 2, "failures": 1, "failure_rate": 0.5}
    ]


def test_most_frequent_messages_grouped(an: Analytics) -> None:
    rows = validation_errors(an, WINDOW).to_dicts()
    # 3 "missing field" messages differing only in the quoted name and the number; 1 pii message
    assert [(r["validator"], r["pattern"], r["occurrences"]) for r in rows] == [
        ("schema", "missing field '…' at #", 3),
        ("no_pii", "found email '…'", 1),
    ]


def test_compare_prompt_versions(an: Analytics) -> None:
    rows = {r["prompt_version"]: r for r in compare(an, WINDOW, "prompt_version", "v1", "v2").to_dicts()}
    v1, v2, delta = rows["v1"], rows["v2"], rows["b - a"]
    # v1: T30 (failed check) and T31 (failed no_pii) → 0 successes; cost 1000 + 3000 → $0.004
    assert (v1["tasks"], v1["success_rate"], v1["cost_per_successful_task"]) == (2, 0.0, None)
    assert v1["cost_per_task"] == pytest.approx(4000 / 1e6 / 2)
    assert v1["validation_failure_rate"] == pytest.approx(2 / 3)  # 3 checks, 2 failed
    # v2: T32 success (app), T33 failed check; cost 2000 + 2000 → $0.004 over 1 success
    assert (v2["tasks"], v2["success_rate"]) == (2, 0.5)
    assert v2["cost_per_successful_task"] == pytest.approx(4000 / 1e6)
    assert v2["validation_failure_rate"] == pytest.approx(1 / 2)
    # task latency: v1 100, 200 → p50 150; v2 300, 500 → p50 400
    assert (v1["p50_ms"], v2["p50_ms"], delta["p50_ms"]) == (150, 400, 250)
    assert delta["success_rate"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        compare(an, WINDOW, "attributes", "a", "b")


def test_retrieval_per_data_source(tmp_path: Path) -> None:
    docs = json.dumps([{"id": "a", "score": 0.9}, {"id": "b", "score": 0.5}])
    oi_docs = {
        "retrieval.documents.0.document.id": "x",
        "retrieval.documents.0.document.score": 0.7,
        "retrieval.documents.1.document.id": "a",
        "retrieval.documents.1.document.score": 0.3,
    }
    gen = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}
    write(
        tmp_path,
        [
            span(40, 1, name="T", ms=200),
            span(40, 2, 1, ms=30, name="kb", **gen, **{"gen_ai.retrieval.documents": docs}),
            span(40, 3, 1, ms=10, name="kb", **gen, **{"gen_ai.retrieval.documents": "[]"}),  # empty result
            span(
                40,
                4,
                1,
                ms=20,
                name="retrieve",
                **{"openinference.span.kind": "RETRIEVER", "input.value": "q"},
                **oi_docs,
            ),
            span(40, 5, 1, ms=40, name="retrieve", **{"openinference.span.kind": "RETRIEVER"}),  # content not recorded
        ],
    )
    an = Analytics(tmp_path, prices=PRICES)
    got = {r["data_source"]: r for r in retrieval(an, WINDOW).to_dicts()}
    kb = got["kb"]
    # docs 2 and 0 → 1 per query, half empty; top-1 0.9 (the empty one has none); mean over docs (0.9+0.5)/2
    assert (kb["queries"], kb["docs_per_query"], kb["empty_rate"]) == (2, 1.0, 0.5)
    assert (kb["avg_top1_score"], kb["mean_score"]) == (pytest.approx(0.9), pytest.approx(0.7))
    assert kb["p50_ms"] == pytest.approx(20)  # 10, 30
    oi = got["retrieve"]
    # one query with 2 docs, one whose content was not recorded: unknown, not empty
    assert (oi["queries"], oi["queries_without_content"], oi["docs_per_query"], oi["empty_rate"]) == (2, 1, 2.0, 0.0)
    assert (oi["avg_top1_score"], oi["mean_score"]) == (pytest.approx(0.7), pytest.approx(0.5))
    top = {(r["data_source"], r["document_id"]): r["retrievals"] for r in retrieved_documents(an, WINDOW).to_dicts()}
    assert top == {("kb", "a"): 1, ("kb", "b"): 1, ("retrieve", "x"): 1, ("retrieve", "a"): 1}
