"""Property tests: normalize() and split_content() hold up against any attribute dict.

Values are any JSON-like shape, wrong types included (strings where ints belong, bools,
lists, huge ints, NaN); keys lean towards the ones normalization reads.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spanlake.collector.content import split_content, split_content_reference
from spanlake.collector.decode import decode_spans
from spanlake.collector.normalize import (
    FIRST,
    FIRST_STR,
    GET,
    GET_STR,
    LOOKUPS,
    _first,
    _first_int,
    _int,
    _otlp,
    _str,
    lookup_index,
    lookup_reference,
    normalize,
    normalize_reference,
)
from spanlake.collector.normalize.dialects import INPUT_EXCLUDES_CACHE_SCOPES
from spanlake.sdk import attributes as A
from spanlake.storage.schema import CATEGORIES, SPANS
from spanlake.storage.writer import columns_to_table
from tests.factories import make_request, make_span

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = (-(2**63), 2**63 - 1)

KNOWN_KEYS = sorted(
    {v for k, v in vars(A).items() if k.isupper() and isinstance(v, str)}
    | {k for _, ks in LOOKUPS for k in ks}  # the dialect keys outside the SDK's table too
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
TOKEN_COLUMNS += ("cache_write_1h_tokens",)
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
    if row["cache_write_1h_tokens"] is not None:  # a part of the cache writes
        assert row["cache_write_tokens"] is not None and row["cache_write_1h_tokens"] <= row["cache_write_tokens"]


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


# --- the fast paths agree with the references -----------------------------------------
# normalize() batches its attribute reads through `lookup` (the C accelerator when built) and
# split_content() runs in C when built; both must give exactly what the references give.

long_texts = st.one_of(
    st.text(min_size=2040, max_size=2060),  # around CONTENT_VALUE_BYTES / 4 characters
    st.sampled_from(["é" * 4096, "é" * 4097, "\U0001f600" * 2048, "\U0001f600" * 2049, "\ud800" * 2731, "x" * 8193]),
)
split_values = st.one_of(json_like, long_texts)


@SETTINGS
@given(
    attr_dicts,
    events,
    st.integers(min_value=0, max_value=2**64 - 1),
    st.sampled_from(["UNSET", "OK", "ERROR"]),
    st.sampled_from([None, "", "openinference.instrumentation.bedrock", *sorted(INPUT_EXCLUDES_CACHE_SCOPES)]),
)
@example({"openinference.span.kind": "llm", "llm.prompts.0.x": 1}, [], 0, "UNSET", None)
@example({"traceloop.span.kind": "workflow", "traceloop.entity.name": 5}, [], 0, "UNSET", None)
@example({"traceloop.span.kind": "tool", "traceloop.entity.name": ""}, [], 0, "ERROR", None)
@example({"traceloop.span.kind": "task", "gen_ai.task.name": "step"}, [], 0, "UNSET", None)
@example({"traceloop.span.kind": "task", "gen_ai.task.name": "step", "spanlake.task.name": 7}, [], 0, "UNSET", None)
@example({"traceloop.span.kind": "task", "gen_ai.task.name": "step", "spanlake.task.name": ""}, [], 0, "UNSET", None)
@example({"gen_ai.usage.input_tokens": 2**63, "llm.token_count.prompt": "7"}, [], 0, "UNSET", None)
@example(
    {"gen_ai.usage.input_tokens": -1, "gen_ai.usage.prompt_tokens": True, "llm.token_count.prompt": 3}, [], 0, "", None
)
@example(
    {"gen_ai.usage.input_tokens": 2**63 - 2, "gen_ai.usage.cache_read.input_tokens": 5, "gen_ai.usage.total_tokens": 9},
    [],
    0,
    "OK",
    "opentelemetry.instrumentation.bedrock",
)
@example(
    {"anthropic.usage.cache_creation.ephemeral_1h_input_tokens": "9", "gen_ai.usage.cache_write.input_tokens": 4},
    [],
    0,
    "OK",
    None,
)
@example({"anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 3}, [], 0, "OK", None)
def test_normalize_equals_the_reference(
    attrs: dict[str, Any], evs: list[dict[str, Any]], start: int, status: str, scope: str | None
) -> None:
    got, want = normalize(attrs, evs, start, status, scope), normalize_reference(attrs, evs, start, status, scope)
    assert repr(got) == repr(want)
    assert repr(lookup_reference(attrs, LOOKUPS)) == repr(tuple(_lookup_via(attrs)))


def _lookup_via(attrs: dict[str, Any]) -> tuple[Any, ...]:
    """The lookups the way the reference rules read them, one helper call each."""
    out = []
    for mode, keys in LOOKUPS:
        if mode == GET:
            out.append(attrs.get(keys[0]))
        elif mode == GET_STR:
            out.append(_str(attrs.get(keys[0])))
        elif mode == FIRST:
            out.append(_first(attrs, keys))
        elif mode == FIRST_STR:
            out.append(_str(_first(attrs, keys)))
        else:
            out.append(_first_int(attrs, keys))
    return tuple(out)


@pytest.mark.skipif(_otlp is None, reason="C accelerator not built (no compiler)")
@SETTINGS
@given(st.dictionaries(keys, json_like, max_size=12), st.lists(st.sampled_from(KNOWN_KEYS), max_size=4))
def test_accelerated_lookup_equals_the_reference(attrs: dict[str, Any], extra_keys: list[str]) -> None:
    rules = (*LOOKUPS, *((mode, tuple(extra_keys)) for mode in range(5)))
    want = repr(lookup_reference(attrs, rules))
    assert repr(_otlp.lookup(attrs, rules, _int)) == want
    assert repr(_otlp.lookup(attrs, rules, _int, lookup_index(rules))) == want  # a span's keys walked once


@pytest.mark.skipif(_otlp is None, reason="C accelerator not built (no compiler)")
@SETTINGS
@given(st.dictionaries(keys, split_values, max_size=12))
@example({"a": "é" * 4097, "b": "é" * 4096, "c": "\ud800" * 2731, "gen_ai.prompt.3.content": 1})
def test_accelerated_split_equals_the_reference(attrs: dict[str, Any]) -> None:
    fast = split_content(attrs)
    ref = split_content_reference(attrs)
    assert repr(fast) == repr(ref)
    assert [list(d) for d in fast] == [list(d) for d in ref]  # same key order too
    assert all(fast[i][k] is ref[i][k] for i in (0, 1) for k in ref[i])
