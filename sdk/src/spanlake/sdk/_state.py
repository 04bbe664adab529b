"""Process-wide SDK state and the guard that keeps SDK failures away from the app."""

from __future__ import annotations

import logging
import os

from opentelemetry import context, trace

logger = logging.getLogger("spanlake.sdk")

VERSION = "0.1.0"
TRACER_NAME = "spanlake.sdk"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# OTel context keys: the innermost spanlake scope, and attributes every new span inherits.
ACTIVE_KEY = context.create_key("spanlake-active")
SCOPE_ATTRS_KEY = context.create_key("spanlake-scope-attributes")


def env_flag(name: str) -> bool:
    """True when the environment variable is set to a true value (`true`, `1`, `yes`)."""
    return os.environ.get(name, "").strip().lower() in ("true", "1", "yes", "on")


class State:
    """What setup() configured; markers read it on every span."""

    __slots__ = ("capture_content", "scopes_used", "tracer")

    def __init__(self) -> None:
        self.tracer: trace.Tracer | None = None
        self.capture_content = env_flag(CAPTURE_ENV)
        self.scopes_used = False  # until a prompt()/session() opens, on_start has nothing to copy


STATE = State()
# Without setup(), markers use the global provider (resolved lazily by the proxy tracer).
_FALLBACK_TRACER = trace.get_tracer(TRACER_NAME, VERSION)


def tracer() -> trace.Tracer:
    """The tracer markers start spans with."""
    return STATE.tracer or _FALLBACK_TRACER


_reported: set[str] = set()


def internal_error(where: str) -> None:
    """Log an SDK-internal failure (with traceback the first time per place), never raise."""
    try:
        if where in _reported:
            logger.debug("spanlake sdk: internal error in %s", where, exc_info=True)
        else:
            _reported.add(where)
            logger.warning("spanlake sdk: internal error in %s (ignored; the app is unaffected)", where, exc_info=True)
    except Exception:
        pass
