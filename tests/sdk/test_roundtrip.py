"""Round trip of attribute keys: everything the SDK writes is a constant of
spanlake.sdk.attributes (the one definition), and collector/normalize/ reads it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import spanlake.sdk as sl
from spanlake.collector import normalize as N
from spanlake.sdk import attributes as A

CONSTANTS = {v for k, v in vars(A).items() if k.isupper() and isinstance(v, str)}
FIELDS = "|".join(
    re.escape(f) for f in (A.OI_DOCUMENT_ID, A.OI_DOCUMENT_SCORE, A.OI_DOCUMENT_CONTENT, A.OI_DOCUMENT_METADATA)
)
OI_DOCUMENT_KEY = re.compile(rf"^{re.escape(A.OI_RETRIEVAL_DOCUMENTS)}\.\d+\.({FIELDS})$")

# Written by the SDK and kept by the collector in the `attributes` JSON column (query them with
# attr_str(attributes, '...')), but mapped to no typed column. Adding a key here is a decision:
# either give it a column in storage/schema.py + collector/normalize/, or document it in docs/sdk.md.
STORED_ONLY = {
    A.VALIDATION_ERRORS,
    A.POLICY_NAME,
    A.POLICY_DECISION,
    A.FALLBACK_REASON,
    A.FALLBACK_TO,
    A.ESCALATION_REASON,
    A.ESCALATION_TO,
    A.GEN_AI_DATA_SOURCE_ID,
    A.GEN_AI_TOOL_CALL_ID,
    A.GEN_AI_TOOL_TYPE,
    A.GEN_AI_REQUEST_STREAM,
    A.GEN_AI_RESPONSE_ID,
}


def _everything_the_sdk_writes() -> list[dict[str, Any]]:
    """Use every marker with every option, content capture on; return the spans' attributes."""
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    handle = sl.setup(tracer_provider=provider, exporter=exporter, capture_content=True)
    try:
        with sl.session("s", "u"), sl.prompt("p", "v1"), sl.task("t") as t:
            t.succeed("note")
            with sl.llm_call("m", "openai", messages="hi", system="be brief") as call:
                for _ in call.stream(["a"]):
                    pass
                call.set_usage(1, 2, cached_tokens=1, cache_creation_tokens=0, reasoning_tokens=1)
                call.set_response("m-1", "id-1", ["stop"])
                call.set_output("a", "stop")
            with sl.retrieval("q", "kb") as r:
                r.set_documents([{"id": 1, "score": 0.5, "content": "c", "metadata": {"k": "v"}}])
            with sl.tool_call("tool", {"a": 1}, call_id="call-1") as tc:
                tc.set_result("r")
            with sl.validation("v") as v:
                v.failed(["e"])
            with sl.policy("pol", "block"), sl.fallback("why", "to"), sl.escalation("why", "human"):
                pass
        with pytest.raises(ValueError), sl.task("failing"):
            raise ValueError("x")
        assert handle.flush(5)
    finally:
        handle.shutdown()
    # as the collector decodes them from OTLP: arrays are lists
    return [
        {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()}
        for s in exporter.get_finished_spans()
    ]


def test_every_written_key_is_shared_and_read_by_the_collector() -> None:
    written: dict[str, Any] = {}
    for attrs in _everything_the_sdk_writes():
        written.update(attrs)
    not_constants = sorted(k for k in written if k not in CONSTANTS and not OI_DOCUMENT_KEY.match(k))
    assert not not_constants, f"keys written without a constant in attributes.py: {not_constants}"

    empty = N.normalize({}, [], 0, "UNSET")
    unread = set()
    for key, value in written.items():
        if N.is_content(key, value):
            continue  # stored in the `content` column
        if N.normalize({key: value}, [], 0, "UNSET") != empty:
            continue  # feeds a typed column
        unread.add(key)
    assert unread == STORED_ONLY


def test_sdk_categories_are_valid_collector_categories() -> None:
    written = {v for k, v in vars(A).items() if k.startswith("CATEGORY_")}
    assert written <= N.VALID_CATEGORIES
    for category in written:
        assert N.category_and_operation({A.SPAN_CATEGORY: category})[0] == category
