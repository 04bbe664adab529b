"""Reading the app's own `gen_ai.evaluation.result` events (evaluators/external.py): each event
of a designed set, its label worked out by hand; malformed events get a recorded reason, never
an exception. The whole path through a real server: tests/evaluators/test_external_server.py."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from spanlake.evaluators.external import (
    MAX_COMMENT,
    Stored,
    author,
    is_external,
    label_id,
    read_all,
    read_event,
    stored_events,
)
from spanlake.evaluators.result import parse_author

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
NOW = 1_800_000_000_000_000_000
T = 1_799_999_999_000_000_000


def stored(attrs: dict, *, signal: str = "span_event", where: str = f"{SPAN}#0", trace: str | None = TRACE,
           span: str | None = SPAN, t: int = T) -> Stored:  # fmt: skip
    return Stored("shop", trace, span, attrs, signal, where, t, T + 5, "strands.telemetry", "1.0")  # type: ignore[arg-type]


def test_authors_never_meet_spanlakes_own() -> None:
    assert author("relevance") == "relevance@otel" and is_external("relevance@otel")
    assert not is_external("relevance@v1") and not is_external(None) and not is_external("")
    # a name that looks like a version of ours still ends in @otel, and is no evaluator version
    assert author("groundedness@v2") == "groundedness@v2@otel" and parse_author("groundedness@v2@otel") is None
    assert parse_author("relevance@otel") is None


def test_a_fail_label_with_score_and_explanation() -> None:
    attrs = {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.25,
             "gen_ai.evaluation.score.label": "FAIL", "gen_ai.evaluation.explanation": "off topic",
             "gen_ai.response.id": "chatcmpl-1"}  # fmt: skip
    read = read_event(stored(attrs), NOW)
    key = "\x00".join(("shop", TRACE, f"{SPAN}#0", "otel"))
    assert read.error is None and read.problem is None and read.evaluator == "relevance@otel"
    assert read.label == {
        "label_id": "ot" + hashlib.sha256(key.encode()).hexdigest()[:30],
        "trace_id": TRACE,
        "span_id": SPAN,
        "created_at_unix_nano": T,  # when the app evaluated
        "project": "shop",
        "source": "judge",
        "author": "relevance@otel",
        "verdict": "fail",  # FAIL, any case
        "failure_mode": None,
        "score": 0.25,
        "comment": "off topic",
        "expected_output": None,
        "metadata": {
            "origin": "gen_ai.evaluation.result",
            "signal": "span_event",
            "evaluator": "relevance@otel",
            "evaluation_name": "relevance",
            "span_id": SPAN,
            "scope": "strands.telemetry",
            "scope_version": "1.0",
            "event_time_unix_nano": T,
            "label": "FAIL",
            "response_id": "chatcmpl-1",
        },
    }
    assert "decides_outcome" not in read.label["metadata"]  # never decides a task's outcome


@pytest.mark.parametrize(
    ("attrs", "verdict", "score", "label"),
    [
        ({"gen_ai.evaluation.score.label": "Pass"}, "pass", None, "Pass"),
        ({"gen_ai.evaluation.score.label": "relevant", "gen_ai.evaluation.score.value": 1}, None, 1.0, "relevant"),
        ({"gen_ai.evaluation.score.value": 0.0}, None, 0.0, None),  # a score alone: no verdict
        ({"gen_ai.evaluation.score.label": " fail ", "gen_ai.evaluation.score.value": -3}, "fail", -3.0, "fail"),
    ],
)
def test_labels_map_to_verdicts_case_insensitively(attrs: dict, verdict: str | None, score: float | None,
                                                   label: str | None) -> None:  # fmt: skip
    read = read_event(stored({"gen_ai.evaluation.name": "x", **attrs}), NOW)
    assert read.label is not None
    assert (read.label["verdict"], read.label["score"], read.label["metadata"].get("label")) == (verdict, score, label)


def test_error_type_is_an_errored_evaluation_not_a_label() -> None:
    attrs = {"gen_ai.evaluation.name": "toxicity", "error.type": "TimeoutError",
             "gen_ai.evaluation.explanation": "judge timed out", "gen_ai.evaluation.score.value": 0.5}  # fmt: skip
    read = read_event(stored(attrs), NOW)
    assert (read.label, read.error, read.problem) == (None, "TimeoutError: judge timed out", None)
    assert read.evaluator == "toxicity@otel"
    assert read_event(stored({"gen_ai.evaluation.name": "t", "error.type": "500"}), NOW).error == "500"


@pytest.mark.parametrize(
    ("attrs", "evaluator", "problem"),
    [
        (
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": "high"},
            "tone@otel",
            "gen_ai.evaluation.score.value must be a number (double), got 'high'",
        ),
        (
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": "0.5"},
            "tone@otel",
            "gen_ai.evaluation.score.value must be a number (double), got '0.5'",
        ),
        (
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": True},
            "tone@otel",
            "gen_ai.evaluation.score.value must be a number (double), got True",
        ),
        # a NaN double is stored as the text "NaN" (collector.values): no number either
        (
            {"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.value": "NaN"},
            "tone@otel",
            "gen_ai.evaluation.score.value must be a number (double), got 'NaN'",
        ),
        ({"gen_ai.evaluation.score.label": "pass"}, "(no name)@otel", "gen_ai.evaluation.name is missing"),
        (
            {"gen_ai.evaluation.name": "  ", "gen_ai.evaluation.score.label": "pass"},
            "(no name)@otel",
            "gen_ai.evaluation.name is empty",
        ),
        (
            {"gen_ai.evaluation.name": 7, "gen_ai.evaluation.score.label": "pass"},
            "(no name)@otel",
            "gen_ai.evaluation.name is not a text (int)",
        ),
        (
            {"gen_ai.evaluation.name": "n" * 300, "gen_ai.evaluation.score.label": "pass"},
            "n" * 59 + "…@otel",
            "gen_ai.evaluation.name is 300 characters (at most 200)",
        ),
        (
            {"gen_ai.evaluation.name": "verbosity", "gen_ai.evaluation.score.label": "x" * 10_000},
            "verbosity@otel",
            f"gen_ai.evaluation.score.label is 10,000 characters (at most 200): {'x' * 59 + '…'!r}",
        ),
        (
            {"gen_ai.evaluation.name": "verbosity", "gen_ai.evaluation.score.label": ["pass"]},
            "verbosity@otel",
            "gen_ai.evaluation.score.label must be a text, got ['pass']",
        ),
        (
            {"gen_ai.evaluation.name": "empty", "gen_ai.evaluation.explanation": "nothing else"},
            "empty@otel",
            "neither gen_ai.evaluation.score.value nor gen_ai.evaluation.score.label nor error.type",
        ),
    ],
)
def test_malformed_events_get_a_reason_and_no_label(attrs: dict, evaluator: str, problem: str) -> None:
    read = read_event(stored(attrs), NOW)
    assert (read.label, read.error, read.evaluator) == (None, None, evaluator)
    assert read.problem == f"malformed gen_ai.evaluation.result event: {problem}"


def test_a_log_record_without_trace_is_malformed_one_without_span_labels_the_trace() -> None:
    attrs = {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.label": "pass"}
    lost = read_event(stored(attrs, signal="log_record", where="rec1", trace=None, span=None), NOW)
    assert lost.problem == "malformed gen_ai.evaluation.result event: not attached to a trace (no trace id)"
    whole = read_event(stored(attrs, signal="log_record", where="rec1", span=None, t=0), NOW)
    assert whole.label is not None
    assert (whole.label["span_id"], whole.label["verdict"], whole.label["metadata"]["record_id"]) == (
        None,
        "pass",
        "rec1",
    )
    assert whole.label["created_at_unix_nano"] == T + 5  # no event time: the record's observed time
    assert whole.label["label_id"] == label_id("shop", TRACE, "rec1")


def test_a_long_explanation_is_cut_a_future_time_is_now() -> None:
    attrs = {"gen_ai.evaluation.name": "r", "gen_ai.evaluation.score.value": 1.0,
             "gen_ai.evaluation.explanation": "y" * (MAX_COMMENT + 10)}  # fmt: skip
    read = read_event(stored(attrs, t=NOW + 10**12), NOW)
    assert read.label is not None
    assert len(read.label["comment"]) == MAX_COMMENT and read.label["comment"].endswith("y…")
    assert read.label["metadata"]["explanation_chars"] == MAX_COMMENT + 10
    assert read.label["created_at_unix_nano"] == NOW


def test_stored_events_of_a_span_keep_their_positions_and_a_span_stored_twice_labels_once() -> None:
    events = [
        {"time_unix_nano": 1, "name": "exception", "attributes": {"exception.type": "E"}},
        {"time_unix_nano": 2, "name": "gen_ai.evaluation.result",
         "attributes": {"gen_ai.evaluation.name": "a", "gen_ai.evaluation.score.label": "pass"}},
        {"time_unix_nano": 3, "name": "gen_ai.evaluation.result",
         "attributes": {"gen_ai.evaluation.name": "a", "gen_ai.evaluation.score.label": "fail"}},
    ]  # fmt: skip
    row = {"project": "shop", "trace_id": TRACE, "span_id": SPAN, "record_id": None, "payload": orjson.dumps(events),
           "time_unix_nano": 0, "fallback_unix_nano": 9, "scope_name": None, "scope_version": None}  # fmt: skip
    found = stored_events(row)
    assert [(e.where, e.time_unix_nano, e.attributes["gen_ai.evaluation.score.label"]) for e in found] == [
        (f"{SPAN}#1", 2, "pass"),
        (f"{SPAN}#2", 3, "fail"),
    ]
    labels = [r.label for _, r in read_all(found + stored_events(row), NOW)]  # the span again: same ids
    assert [(lb["label_id"], lb["verdict"]) for lb in labels if lb] == [
        (label_id("shop", TRACE, f"{SPAN}#1"), "pass"),
        (label_id("shop", TRACE, f"{SPAN}#2"), "fail"),
    ]
    assert stored_events(row | {"payload": "not json"}) == []
