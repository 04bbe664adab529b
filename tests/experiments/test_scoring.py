"""Built-in checks and the verdict of an item (experiments/scoring.py)."""

from __future__ import annotations

import json

import pytest

from spanlake.experiments.items import DatasetItem, DatasetRef
from spanlake.experiments.scoring import Contains, Exact, JsonSchema, Scorer, decide, make_scorers, run_checks

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def item(expected: str | None) -> DatasetItem:
    return DatasetItem(id="t1", input="q", expected_output=expected)


def test_exact_and_contains() -> None:
    assert Exact()("  30 days\n", item("30 days")) is True
    assert Exact()("30 days.", item("30 days")) is False
    assert Exact()(None, item("30 days")) is False
    assert Exact()("anything", item(None)) is None  # no expected output: not applicable
    assert Contains()("Refunds: within 30 days.", item(" 30 days ")) is True
    assert Contains()("Refunds: within 60 days.", item("30 days")) is False


def test_json_schema_from_a_file_or_from_the_expected_output() -> None:
    check = JsonSchema(SCHEMA)
    assert check('{"answer": "30 days"}', item(None)) is True
    assert check('{"reply": "30 days"}', item(None)) is False
    assert check("not json", item(None)) is False
    per_item = JsonSchema()
    assert per_item('{"answer": "x"}', item(json.dumps(SCHEMA))) is True
    assert per_item('{"answer": 3}', item(json.dumps(SCHEMA))) is False
    assert per_item('{"answer": "x"}', item("30 days")) is None  # the expected output is no schema
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        JsonSchema({"type": "nonsense"})


def test_make_scorers_and_run_checks() -> None:
    scorers = make_scorers(["exact", "contains", "exact"])
    assert [s.name for s in scorers] == ["exact", "contains"] and all(isinstance(s, Scorer) for s in scorers)
    assert run_checks(scorers, "answer: 30 days", item("30 days")) == {"exact": False, "contains": True}
    assert run_checks(scorers, "x", item(None)) == {}
    with pytest.raises(ValueError, match="unknown check 'fuzzy'"):
        make_scorers(["fuzzy"])
    with pytest.raises(ValueError, match="the json-schema check is not chosen"):
        make_scorers(["exact"], SCHEMA)


@pytest.mark.parametrize(
    ("result", "figure", "expected"),
    [
        ({"status": "error", "checks": {"exact": True}}, None, (False, "error")),
        ({"status": "timeout"}, None, (False, "timeout")),
        ({"status": "ok", "app_outcome": "failure", "app_reason": "hallucination", "checks": {"exact": True}}, None,
         (False, "hallucination")),
        ({"status": "ok", "app_outcome": "failure"}, None, (False, "app")),
        ({"status": "ok", "checks": {"exact": True}}, {"app_outcome": "failure", "app_reason": "wrong_tool"},
         (False, "wrong_tool")),  # a task of the app's own failed (from the lake)
        ({"status": "ok", "app_outcome": "success", "checks": {"contains": True, "exact": False}}, None,
         (False, "exact")),
        ({"status": "ok", "checks": {"exact": True}}, None, (True, None)),
        ({"status": "ok", "app_outcome": "success"}, None, (True, None)),
        ({"status": "ok", "checks": {}}, None, (None, None)),  # nothing decided
    ],
)  # fmt: skip
def test_verdict_precedence(result: dict, figure: dict | None, expected: tuple) -> None:
    assert decide(result, figure) == expected


def test_dataset_references() -> None:
    assert DatasetRef.parse("refunds@3") == DatasetRef("refunds", 3)
    assert DatasetRef.parse("refunds@v3") == DatasetRef("refunds", 3)
    assert DatasetRef.parse("refunds@latest") == DatasetRef("refunds", None) == DatasetRef.parse("refunds")
    with pytest.raises(ValueError, match="use NAME@VERSION"):
        DatasetRef.parse("refunds@three")
