"""Every built-in code evaluator on designed targets, each result worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from spanlake.evaluators.code import CHECKS, find_pii, similarity
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.run import evaluate
from spanlake.evaluators.target import Target


def t(**kw: Any) -> Target:
    return Target(project="p", trace_id="a" * 32, **kw)


def run(kind: str, target: Target, **params: Any) -> Result | None:
    return evaluate(Evaluator(name="e", kind=kind, params=params), target)


def fail(mode: str | None, comment: str, score: float | None = None) -> Result:
    return Result("fail", score, mode, comment)


PASS = Result("pass")
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def test_every_code_kind_has_a_check() -> None:
    from spanlake.evaluators.definition import CODE_KINDS

    assert set(CHECKS) == set(CODE_KINDS) - {"python"}


# --- json ---------------------------------------------------------------------------------------


def test_json_valid() -> None:
    assert run("json_valid", t(output='{"a": [1, "é"]}')) == PASS
    assert run("json_valid", t(output="42")) == PASS  # any JSON value
    assert run("json_valid", t(output=None)) is None  # nothing recorded: not applicable
    assert run("json_valid", t(output="  ")) == fail("format_error", "output is empty, not JSON")
    r = run("json_valid", t(output="{'a': 1}"))
    assert r is not None and r.verdict == "fail" and r.failure_mode == "format_error"
    assert r.comment is not None and r.comment.startswith("output is not JSON (") and r.comment.endswith("\"{'a': 1}\"")
    r = run("json_valid", t(output="nope"), failure_mode="hallucination")  # the evaluator's own mode
    assert r is not None and r.failure_mode == "hallucination"


def test_json_schema(tmp_path: Path) -> None:
    assert run("json_schema", t(output='{"answer": "ok"}'), schema=SCHEMA) == PASS
    assert run("json_schema", t(output='{"reply": "ok"}'), schema=SCHEMA) == fail(
        "format_error", "missing required property 'answer'"
    )
    assert run("json_schema", t(output='{"answer": 3}'), schema=SCHEMA) == fail(
        "format_error", "$.answer: 3 is not of type 'string'"
    )
    nested = {"type": "object", "properties": {"items": {"type": "array", "items": {"required": ["id"]}}}}
    assert run("json_schema", t(output='{"items": [{"id": 1}, {}]}'), schema=nested) == fail(
        "format_error", "missing required property 'id' at $.items[1]"
    )
    r = run("json_schema", t(output="answer: ok"), schema=SCHEMA)
    assert r is not None and r.verdict == "fail" and r.comment is not None and "not JSON" in r.comment
    assert run("json_schema", t(output=None), schema=SCHEMA) is None
    # schema_file, relative to the data directory
    (tmp_path / "reply.json").write_bytes(orjson.dumps(SCHEMA))
    ev = Evaluator(name="e", kind="json_schema", params={"schema_file": "reply.json"})
    assert evaluate(ev, t(output='{"answer": "ünïcødé"}'), data_dir=tmp_path) == PASS
    assert evaluate(ev, t(output="{}"), data_dir=tmp_path) == fail("format_error", "missing required property 'answer'")
    with pytest.raises(EvaluationError, match="relative and no data directory"):
        evaluate(ev, t(output="{}"))
    with pytest.raises(EvaluationError, match="cannot read the schema file"):
        evaluate(ev, t(output="{}"), data_dir=tmp_path / "nowhere")
    with pytest.raises(EvaluationError, match="not a valid JSON Schema"):
        run("json_schema", t(output="{}"), schema={"type": 12})


# --- text ---------------------------------------------------------------------------------------


def test_regex() -> None:
    assert run("regex", t(output="Order ORD-123456 shipped"), pattern=r"ORD-\d{6}") == PASS
    assert run("regex", t(output="no order"), pattern=r"ORD-\d{6}") == fail(
        "format_error", r"pattern 'ORD-\\d{6}' not found in output"
    )
    assert run("regex", t(output="I am sorry, I can't"), pattern="(?i)sorry", expect="absent") == fail(
        "format_error", "pattern '(?i)sorry' found in output: 'sorry'"
    )
    assert run("regex", t(output="Sure!"), pattern="(?i)sorry", expect="absent") == PASS
    assert run("regex", t(input="naïve café", output=None), pattern="café", field="input") == PASS
    assert run("regex", t(output=None), pattern="x") is None
    assert run("regex", t(output=""), pattern="^$") == PASS  # an empty output is text too
    with pytest.raises(EvaluationError, match="invalid regex"):
        run("regex", t(output="x"), pattern="(")


def test_contains_and_equals() -> None:
    assert run("contains", t(output="It ships today.", expected_output=" ships today ")) == PASS
    assert run("contains", t(output="It ships today.", expected_output="Ships")) == fail(
        None, "output does not contain the expected output 'Ships'"
    )
    assert (
        run(
            "contains",
            t(
                output="It SHIPS today.",
                expected_output="ships",
            ),
            case_sensitive=False,
        )
        == PASS
    )
    assert run("contains", t(output="anything")) is None  # no expected output: not applicable
    assert run("contains", t(output=None, expected_output="x")) == fail(None, "no output recorded")
    assert run("equals", t(output=" Paris\n", expected_output="Paris")) == PASS
    assert run("equals", t(output="paris", expected_output="Paris")) == fail(
        None, "output 'paris' differs from the expected output 'Paris'"
    )
    assert run("equals", t(output="ΣΊΣΥΦΟΣ", expected_output="σίσυφος"), case_sensitive=False) == PASS
    assert run("equals", t(output="", expected_output="")) == PASS
    r = run("equals", t(output="a", expected_output="b"), failure_mode="hallucination")
    assert r is not None and r.failure_mode == "hallucination"


def test_fuzzy() -> None:
    # "kitten" vs "sitting": matching blocks "itt" and "n" = 4 characters; 2 * 4 / 13
    assert similarity("kitten", "sitting") == pytest.approx(8 / 13)
    r = run("fuzzy", t(output="kitten", expected_output="sitting"))
    assert r == fail(None, "similarity 0.615 to the expected output < 0.8", round(8 / 13, 6))
    r = run("fuzzy", t(output="kitten", expected_output="sitting"), threshold=0.6)
    assert r == Result("pass", round(8 / 13, 6))
    assert run("fuzzy", t(output="same", expected_output="same")) == Result("pass", 1.0)
    assert run("fuzzy", t(output="", expected_output="")) == Result("pass", 1.0)
    assert run("fuzzy", t(output=None, expected_output="abc")) == fail(
        None, "similarity 0.000 to the expected output < 0.8", 0.0
    )
    assert run("fuzzy", t(output="abc")) is None


# --- PII ----------------------------------------------------------------------------------------


def test_pii_uses_the_collector_detectors() -> None:
    text = "mail bob@example.com or card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwx"
    assert find_pii(text) == {"email": 1, "api_key": 1, "card_number": 1}
    assert find_pii("two: a@b.io, c@d.org") == {"email": 2}
    assert find_pii("card 4111 1111 1111 1112") == {}  # fails the Luhn check
    # unicode around an address; an address with a non-ASCII local part is not one the
    # redaction detector matches (RFC 5322 dot-atom), so neither does the evaluator
    assert run("pii", t(output="Écrivez à zoe@example.com 🙂")) == fail("policy_violation", "PII in output: email (1)")
    assert run("pii", t(output="Écrivez à zoë@example.com")) == PASS
    assert run("pii", t(output="Contact bob@example.com")) == fail("policy_violation", "PII in output: email (1)")
    assert run("pii", t(output="Your card 4111-1111-1111-1111"), detectors=["email"]) == PASS
    assert run("pii", t(output="nothing here, ünïcødé")) == PASS
    assert run("pii", t(output=None)) is None
    assert run("pii", t(input="my mail is bob@example.com", output="ok"), field="input") == fail(
        "policy_violation", "PII in input: email (1)"
    )
    assert run("pii", t(output="bob@example.com"), expect="present") == Result("pass", comment="found email (1)")
    assert run("pii", t(output="nobody"), expect="present") == fail("policy_violation", "no PII in output")
    with pytest.raises(EvaluationError, match="unknown builtin rule 'phone'"):
        run("pii", t(output="x"), detectors=["phone"])


# --- figures ------------------------------------------------------------------------------------


def test_threshold() -> None:
    slow = t(latency_ms=1500.0, cost_usd=0.0024, input_tokens=200, output_tokens=20, total_tokens=220)
    assert run("threshold", slow, metric="latency_ms", max=1000) == fail(
        "too_slow", "latency_ms 1500 > max 1000", 1500.0
    )
    assert run("threshold", slow, metric="latency_ms", max=2000) == Result("pass", 1500.0)
    assert run("threshold", slow, metric="cost_usd", max=0.001) == fail(
        "too_expensive", "cost_usd 0.0024 > max 0.001", 0.0024
    )
    assert run("threshold", slow, metric="total_tokens", min=500) == fail(
        "too_expensive", "total_tokens 220 < min 500", 220.0
    )
    assert run("threshold", slow, metric="output_tokens", min=10, max=20) == Result("pass", 20.0)  # bounds inclusive
    assert run("threshold", t(), metric="cost_usd", max=1) is None  # unpriced: not applicable
    with pytest.raises(EvaluationError, match="metric must be one of"):
        run("threshold", slow, metric="duration", max=1)


def test_retrieval_empty() -> None:
    none = [{"span_id": "1", "name": "kb", "documents": 0}, {"span_id": "2", "name": "web", "documents": 0}]
    some = [{"span_id": "1", "name": "kb", "documents": 0}, {"span_id": "2", "name": "web", "documents": 3}]
    assert run("retrieval_empty", t(retrievals=none)) == fail(
        "retrieval_miss", "2 retrievals returned no document (kb, web)"
    )
    assert run("retrieval_empty", t(retrievals=none[:1])) == fail(
        "retrieval_miss", "1 retrieval returned no document (kb)"
    )
    assert run("retrieval_empty", t(retrievals=some)) == PASS
    assert run("retrieval_empty", t()) is None  # no retrieval: not applicable


def test_tool_call() -> None:
    calls = [
        {"name": "lookup_order", "arguments": {"order_id": "A1"}},
        {"name": "refund", "arguments": "not json {"},
    ]
    target = t(tool_calls=calls)
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
    assert run("tool_call", target, tool="lookup_order") == PASS
    assert run("tool_call", target, tool="lookup_order", arguments_schema=schema) == PASS
    assert run("tool_call", target, tool="escalate") == fail(
        "wrong_tool", "tool 'escalate' was not called (called: lookup_order, refund)"
    )
    assert run("tool_call", t(), tool="escalate") == fail(
        "wrong_tool", "tool 'escalate' was not called (no tool was called)"
    )
    assert run("tool_call", target, tool="refund", called=False) == fail(
        "wrong_tool", "tool 'refund' was called 1 time"
    )
    assert run("tool_call", target, tool="escalate", called=False) == PASS
    assert run("tool_call", target, tool="refund", arguments_schema=schema) == fail(
        "wrong_tool", "call 1 of 'refund': arguments are not JSON: 'not json {'"
    )
    two = t(tool_calls=[calls[0], {"name": "lookup_order", "arguments": {"order": 7}}])
    assert run("tool_call", two, tool="lookup_order", arguments_schema=schema) == fail(
        "wrong_tool", "call 2 of 'lookup_order': arguments missing required property 'order_id'"
    )


def test_unknown_kind_and_missing_params_are_clear_errors() -> None:
    with pytest.raises(EvaluationError, match="unknown evaluator kind 'vibes'"):
        run("vibes", t(output="x"))
    with pytest.raises(EvaluationError, match="regex: bad parameters: KeyError"):
        run("regex", t(output="x"))
    with pytest.raises(EvaluationError, match="no judge clients"):
        run("llm_judge", t(output="x"))
