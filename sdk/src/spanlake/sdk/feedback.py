"""Feedback after the fact: an end user's thumbs up/down, score or comment on a trace.

    trace_id = sl.current_trace_id()          # while handling the request; hand it to the UI
    ...
    sl.feedback(trace_id, value="down", comment="wrong order", user_id="u-42")

`feedback()` POSTs JSON to spanlake's `/api/v1/feedback` (the collector's OTLP/HTTP port) with
the standard library only. It never raises into the app and is bounded in time: it returns
True once spanlake answered that the label is stored, False otherwise (bad arguments,
collector down, slow or refusing), logging why on the `spanlake.sdk` logger.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from spanlake.sdk import provider
from spanlake.sdk._state import VERSION, logger

FEEDBACK_PATH = "/api/v1/feedback"
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "http://localhost:4318"
_TRACES_PATH = "/v1/traces"
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_warned = False


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (what feedback() takes), or None."""
    try:
        ctx = trace.get_current_span().get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None
    except Exception:
        return None


def _hex_id(value: Any, width: int, pattern: re.Pattern[str]) -> str | None:
    """An id as lowercase hex of `width` digits (from a hex string or an int), or None if invalid."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = format(value, f"0{width}x") if 0 < value < 16**width else ""
    else:
        text = value.strip() if isinstance(value, str) else ""
    if not pattern.match(text) or int(text, 16) == 0:
        return None
    return text.lower()


def _problem(value: Any, score: Any, comment: Any, user_id: Any) -> str | None:
    """Why these fields cannot be sent, or None."""
    if value not in (None, "up", "down"):
        return f"value must be 'up', 'down' or None, not {value!r}"
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
    ):
        return f"score must be a finite number, not {score!r}"
    if comment is not None and not isinstance(comment, str):
        return "comment must be a string"
    if user_id is not None and (not isinstance(user_id, str) or not user_id):
        return "user_id must be a non-empty string"
    if value is None and score is None and comment is None:
        return "feedback needs at least one of value, score or comment"
    return None


def _base_url(endpoint: str) -> str:
    """The collector's base URL from a base URL or an OTLP traces URL."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint.removesuffix(_TRACES_PATH)


def _defaults() -> tuple[str, dict[str, str], str | None]:
    """Endpoint, headers and project from setup(), else from the environment (as setup reads it)."""
    handle = provider._current
    env = (os.environ.get(n) for n in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    endpoint = getattr(handle, "base_endpoint", None) or next((e for e in env if e), DEFAULT_ENDPOINT)
    headers = dict(getattr(handle, "headers", None) or {})
    if not headers and os.environ.get("SPANLAKE_API_KEY"):
        headers["authorization"] = f"Bearer {os.environ['SPANLAKE_API_KEY']}"
    project = getattr(handle, "project", None) or os.environ.get("SPANLAKE_PROJECT") or None
    return _base_url(endpoint), headers, project


def _post(url: str, body: bytes, headers: Mapping[str, str], deadline: float) -> tuple[bool, str]:
    """POST until stored or out of time (one retry on 429/503); (stored, why not)."""
    why = "no answer"
    for attempt in range(2):
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return False, f"timed out ({why})"
        try:
            request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
            with urllib.request.urlopen(request, timeout=remaining) as response:
                answer = json.loads(response.read() or b"{}")
                if isinstance(answer, dict) and answer.get("label_id"):
                    return True, ""
                return False, f"unexpected answer {answer!r}"
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            why = f"HTTP {e.code}: {detail}"
            if e.code not in (429, 503) or attempt:
                return False, why
            retry_after = e.headers.get("Retry-After", "")
            delay = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 0.2
            time.sleep(max(0.0, min(delay, deadline - time.monotonic() - 0.1)))
        except Exception as e:  # connection refused, bad URL, non-JSON answer, ...
            return False, f"{type(e).__name__}: {e}"
    return False, why


def feedback(
    trace_id: str | int | None,
    *,
    value: str | None = None,
    score: float | None = None,
    comment: str | None = None,
    user_id: str | None = None,
    span_id: str | int | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    project: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bool:
    """Record an end user's reaction to a trace (or one span of it) in spanlake.

    trace_id: 32 hex digits (see current_trace_id()) or the OTel int id.
    value: "up", "down" or None; score: any finite number; comment, user_id: text.
        At least one of value, score or comment.
    span_id: 16 hex digits or int, to label one span instead of the trace.
    endpoint: spanlake's base URL (default: setup()'s, else OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT,
        else http://localhost:4318). api_key: default setup()'s, else SPANLAKE_API_KEY.
    project: default setup()'s, else SPANLAKE_PROJECT, else the collector's default project.
    timeout_s: the whole call's bound, retries included.

    Returns True once spanlake stored the label, else False. Never raises.
    """
    try:
        return _feedback(trace_id, value, score, comment, user_id, span_id, endpoint, api_key, project, timeout_s)
    except Exception:
        _warn("feedback failed unexpectedly", exc_info=True)
        return False


async def afeedback(trace_id: str | int | None, **kwargs: Any) -> bool:
    """feedback() for async code: runs it on a worker thread. Never raises."""
    try:
        return await asyncio.to_thread(feedback, trace_id, **kwargs)
    except Exception:
        _warn("feedback failed unexpectedly", exc_info=True)
        return False


def _feedback(
    trace_id: Any,
    value: Any,
    score: Any,
    comment: Any,
    user_id: Any,
    span_id: Any,
    endpoint: str | None,
    api_key: str | None,
    project: str | None,
    timeout_s: float,
) -> bool:
    tid = _hex_id(trace_id, 32, _HEX32)
    sid = _hex_id(span_id, 16, _HEX16) if span_id is not None else None
    problem = (
        "trace_id must be 32 hex digits (not all zero)"
        if tid is None
        else "span_id must be 16 hex digits (not all zero)"
        if span_id is not None and sid is None
        else _problem(value, score, comment, user_id)
    )
    if problem:
        logger.warning("spanlake sdk: feedback not sent: %s", problem)
        return False
    base, headers, default_project = _defaults()
    if endpoint:
        base = _base_url(endpoint)
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    headers |= {"content-type": "application/json", "user-agent": f"spanlake-sdk/{VERSION}"}
    body = {
        "trace_id": tid,
        "span_id": sid,
        "value": value,
        "score": score,
        "comment": comment,
        "user_id": user_id,
        "project": project or default_project,
    }
    data = json.dumps(body).encode()
    deadline = time.monotonic() + max(0.1, float(timeout_s))
    result: list[tuple[bool, str]] = []
    worker = threading.Thread(
        target=lambda: result.append(_post(base + FEEDBACK_PATH, data, headers, deadline)),
        name="spanlake-sdk-feedback",
        daemon=True,
    )
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()) + 0.05)  # DNS and connect are bounded too
    stored, why = result[0] if result else (False, "timed out")
    if not stored:
        _warn(f"feedback not stored by {base}: {why}")
    return stored


def _warn(message: str, exc_info: bool = False) -> None:
    """Warn the first time, then log at debug level (a down collector must not flood the app's logs)."""
    global _warned
    try:
        (logger.debug if _warned else logger.warning)("spanlake sdk: %s", message, exc_info=exc_info)
        _warned = True
    except Exception:
        pass
