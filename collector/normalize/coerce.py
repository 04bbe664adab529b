"""Value rules shared by every normalized column: what counts as a string, a count, a number,
a boolean, and the first usable value of a key table.

Attribute values arrive in any shape (strings where counts belong, bools, lists, huge ints,
NaN); a value that does not fit its column is ignored, never guessed at.
"""

from __future__ import annotations

import math
import re
from typing import Any

INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"^\s*\+?([0-9]+)\s*$")


def first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The value of the first key present and not empty."""
    get = attrs.get
    for k in keys:
        v = get(k)
        if v is not None and v != "":
            return v
    return None


def as_str(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def as_int(v: Any) -> int | None:
    """A count: int, integral float or ASCII decimal string in [0, 2**63). Anything else is ignored."""
    if type(v) is int:  # the common case, first (bool is a subclass, so it can't take this path)
        return v if 0 <= v <= INT64_MAX else None
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float) and v.is_integer():  # False for inf and NaN
        v = int(v)
    elif isinstance(v, str) and (m := _DECIMAL.match(v)):
        v = int(m.group(1))
    return v if isinstance(v, int) and 0 <= v <= INT64_MAX else None


def first_int(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first value of `keys` that is a count (a key whose value is not one is skipped)."""
    get = attrs.get
    for k in keys:
        v = get(k)
        if v is not None and (v := as_int(v)) is not None:
            return v
    return None


def as_float(v: Any) -> float | None:
    """A finite float from a number or numeric string; NaN, infinities and others are ignored."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        return None
    try:
        f = float(v)
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None
