"""`JSONObject`: a JSON object column value kept as its text until something reads it.

A span's attributes are about a kilobyte of JSON, and most readers of many traces at once
(the evaluators' targets) never look at them: parsing every one was the largest single cost
of loading targets. A `JSONObject` is a read-only Mapping that parses its text on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson


class JSONObject(Mapping[str, Any]):
    """A read-only mapping over a JSON object's text, parsed on first read (text that is empty,
    or not an object, reads as an empty mapping)."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str | bytes | None) -> None:
        self._text = text
        self._value: dict[str, Any] | None = None

    def _parsed(self) -> dict[str, Any]:
        value = self._value
        if value is None:
            parsed = orjson.loads(self._text) if self._text else {}
            value = self._value = parsed if isinstance(parsed, dict) else {}
        return value

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._parsed().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._parsed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return repr(self._parsed())

    def __reduce__(self) -> tuple[Any, ...]:
        return (JSONObject, (self._text,))
