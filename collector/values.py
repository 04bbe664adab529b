"""OTLP AnyValue / KeyValue → plain Python values, and the JSON text stored in the lake.

Mapping (documented in docs/schema.md): string, bool, int and double map to themselves;
arrays to lists; kvlists to objects; bytes to a base64 string; non-finite doubles to the
strings "NaN", "Infinity" and "-Infinity" (JSON has no such numbers). Nothing is dropped.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

import orjson

_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def any_value(v: Any) -> Any:
    """Convert an `opentelemetry.proto.common.v1.AnyValue` to a JSON-compatible value."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        d = v.double_value
        if math.isfinite(d):
            return d
        return "NaN" if math.isnan(d) else _NON_FINITE[d]
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return key_values(v.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


def key_values(kvs: Iterable[Any]) -> dict[str, Any]:
    """Convert repeated KeyValue to a dict (a repeated key keeps its last value)."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def to_json(value: Any) -> str:
    """Serialize to compact JSON text (orjson: UTF-8, no NaN, keys as given)."""
    return orjson.dumps(value).decode("utf-8")


def to_json_or_none(value: Any) -> str | None:
    """Like to_json, but None and empty containers become NULL to keep the lake small."""
    if not value:
        return None
    return to_json(value)
