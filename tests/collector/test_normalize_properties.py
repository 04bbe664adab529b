"""Property tests: normalize() and split_content() hold up against any attribute dict.

Values are any JSON-like shape, wrong types included (strings where ints belong, bools,
lists, huge ints, NaN); keys lean towards the ones normalization reads.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spanlake.collector.content import split_content
from spanlake.collector.decode import decode_spans
from spanlake.collector.normalize import normalize
from spanlake.sdk import attributes as A
from spanlake.storage.schema import CATEGORIES, SPANS
from spanlake.storage.writer import columns_to_table
from tests.factories import make_request, make_span

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = (-(2**63), 2**63 - 1)

KNOWN_KEYS = sorted(
    {v for k, v in vars(A).items() if k.isupper() and isinstance(v, str)}
    | {"spanlake.span.category", "db.system", "traceloop.association.properties.session_id", "llm.prompts.0.x"}
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=20))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: huge ints too
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["42", "-1", " 7 ", "1e3", "NaN", "Infinity", "²", "--5", "true", "LLM", "workflow", "pass"]),
    st.sampled_from(["chat", "execute_tool", "task", "AGENT", "openai", "AZ.AI.OPENAI", "success", "FAILURE", ""]),
)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)


json_like = st.recursive(scalars, containers)
attr_dicts = st.dictionaries(keys, json_like, max_size=12)
events = st.lists(
    st.fixed_dictionaries(
        {
            "time_unix_nano": st.integers(min_value=0, max_value=2**64 - 1),
            "name": st.sampled_from(["exception", "First Token Stream Event", "gen_ai.evaluation.result", "x"]),
            "attributes": st.dictionaries(
                st.sampled_from(["exception.type", "gen_ai.evaluation.score.label", "k"]), json_like, max_size=2
            ),
        }
    ),
    max_size=3,
)

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
STRING_COLUMNS = ("operation", "provider", "request_model", "response_model", "session_id", "user_id")
STRING_COLUMNS += ("prompt_name", "prompt_version", "error_type", "task_name", "task_outcome_reason")
STRING_COLUMNS += ("validation_name", "tool_name")
NORMALIZED = set(SPANS.names) & set(normalize({}, [], 0, "UNSET"))


@SETTINGS
@given(attr_dicts, events, st.integers(min_value=0, max_value=2**64 - 1), st.sampled_from(["UNSET", "OK", "ERROR"]))
@example({"gen_ai.usage.input_tokens": "²", "llm.cost.total": 10**400}, [], 0, "UNSET")
@example({"gen_ai.usage.input_tokens": 1e30, "gen_ai.usage.output_tokens": "--5"}, [], 0, "UNSET")
@example({"gen_ai.usage.input_tokens": 2**63 - 1, "gen_ai.usage.output_tokens": 2**63 - 1}, [], 0, "UNSET")
@example({"gen_ai.response.time_to_first_chunk": 1e307, "llm.cost.total": "-Infinity"}, [], 0, "UNSET")
def test_normalize_never_raises_and_returns_typed_columns(
    attrs: dict[str, Any], evs: list[dict[str, Any]], start: int, status: str
) -> None:
    row = normalize(attrs, evs, start, status)
    assert set(row) == NORMALIZED
    assert row["category"] in CATEGORIES
    for col in (*TOKEN_COLUMNS, "total_tokens"):
        v = row[col]
        assert v is None or (type(v) is int and 0 <= v <= INT64[1]), (col, v)
    for col in STRING_COLUMNS:
        assert row[col] is None or isinstance(row[col], str), col
    for col in ("reported_cost", "time_to_first_token_ms"):
        assert row[col] is None or (isinstance(row[col], float) and math.isfinite(row[col])), col
    assert row["validation_passed"] in (None, True, False)
    assert row["task_outcome"] in (None, "success", "failure")
    fr = row["finish_reasons"]
    assert fr is None or (isinstance(fr, list) and all(isinstance(x, str) for x in fr))
    if attrs.get("spanlake.span.category") not in CATEGORIES:  # no explicit override
        assert (row["category"] == "task") == (row["task_name"] is not None)


@SETTINGS
@given(attr_dicts)
def test_split_content_partitions_the_keys(attrs: dict[str, Any]) -> None:
    facts, content = split_content(attrs)
    assert not set(facts) & set(content)
    assert set(facts) | set(content) == set(attrs)
    assert {**facts, **content} == attrs
    assert all(facts[k] is attrs[k] for k in facts) and all(content[k] is attrs[k] for k in content)


# OTLP carries int64 ints only; everything else normalize sees can arrive over the wire.
otlp_scalars = st.one_of(
    st.booleans(), st.integers(*INT64), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20)
)
otlp_values = st.recursive(otlp_scalars, containers)


@SETTINGS
@given(st.dictionaries(keys, otlp_values, max_size=12))
@example({"gen_ai.usage.input_tokens": 1e30, "llm.token_count.total": float("inf"), "llm.cost.total": float("nan")})
def test_any_decoded_span_fits_the_arrow_schema(attrs: dict[str, Any]) -> None:
    """The writer must never refuse a normalized row: that would lose the whole batch."""
    (cols,) = decode_spans(make_request([make_span(attributes=attrs)]), ingested_at_ns=0).values()
    assert columns_to_table(SPANS, cols).num_rows == 1
