"""Python evaluators for tests/evaluators/test_run.py (imported by path, `module:function`)."""

from __future__ import annotations

import threading
from typing import Any

from spanlake.evaluators.result import Result
from spanlake.evaluators.target import Target

RELEASE = threading.Event()  # the hanging callable returns once the test sets it
CALLS: list[str] = []


def short_answer(target: Target) -> Any:
    """pass when the output has at most 3 words; None (not applicable) without output."""
    if target.output is None:
        return None
    return len(target.output.split()) <= 3


def graded(target: Target) -> dict[str, Any]:
    words = len((target.output or "").split())
    return {"verdict": "fail" if words > 3 else "pass", "score": words, "comment": f"{words} words"}


def as_result(target: Target) -> Result:
    return Result("fail", 0.25, "hallucination", "made up", {"checked": target.trace_id})


def counted(target: Target) -> bool:
    CALLS.append(target.output or "")
    return True


def raises(target: Target) -> bool:
    raise KeyError("answer")


def hangs(target: Target) -> bool:
    RELEASE.wait(30)
    return True


def returns_text(target: Target) -> str:
    return "looks fine"


def returns_bad_dict(target: Target) -> dict[str, Any]:
    return {"verdict": "ok"}


def returns_unknown_key(target: Target) -> dict[str, Any]:
    return {"verdict": "pass", "grade": "A"}


NOT_CALLABLE = 3
