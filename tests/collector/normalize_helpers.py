"""Helpers shared by the normalization tests."""

from __future__ import annotations

from typing import Any

from spanlake.collector.decode import decode_spans
from spanlake.collector.normalize import normalize
from tests.factories import make_request, make_span


def norm(attrs: dict[str, Any], events: list[dict[str, Any]] | None = None, status: str = "UNSET") -> dict[str, Any]:
    return normalize(attrs, events or [], 1_000, status)


def set_columns(attrs: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Only the columns normalize() filled in (so a test states everything it expects)."""
    return {k: v for k, v in norm(attrs, **kw).items() if v is not None}


def decoded_row(attrs: dict[str, Any], **span_fields: Any) -> dict[str, Any]:
    """Run one span through decode_spans (the collector's real path) and return its row."""
    batch = decode_spans(make_request([make_span(attributes=attrs, **span_fields)]), ingested_at_ns=0)
    (cols,) = batch.values()
    return {k: v[0] for k, v in cols.items()}
