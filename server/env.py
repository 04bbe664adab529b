"""Settings of the background jobs read from the environment, with a warning (not a crash)
when a value is not what it should be."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def seconds_from_env(name: str, default: float) -> float:
    """`name` in seconds, 0 or more (0: the job is off); a bad value is logged and `default` used."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        log.warning("%s=%r is not a number of seconds (0: off); using %s", name, raw, default)
        value = default
    return value
