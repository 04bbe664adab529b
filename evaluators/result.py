"""What an evaluator says about one target, and how that becomes a label event.

A `Result` is a verdict (pass/fail), a score, a failure mode from the project's label schema,
a comment (a judge's reason) and metadata (judge model, tokens, cost, latency). An evaluator
that cannot judge raises `EvaluationError`: `transient` errors (the judge endpoint down, a
timeout, 429 after the retries) are tried again later; the others (a malformed answer, a
callable that raised) are recorded on the evaluator and the target is not retried.

A result is stored as a label (storage.schema.LABELS): source `judge`, author
`<evaluator>@v<version>`. Its `label_id` is a pure function of (project, trace, span,
evaluator, version), so the same evaluator version judging the same target twice (a restart
before the cursor was saved, a backfill over traces already judged online) writes one label:
the lake keeps one event per label_id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SOURCE = "judge"
Verdict = Literal["pass", "fail"]


class EvaluationError(Exception):
    """The evaluator could not judge the target. `transient`: worth trying again later."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Result:
    """One judgment. At least one of verdict and score is set."""

    verdict: Verdict | None
    score: float | None = None
    failure_mode: str | None = None
    comment: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in ("pass", "fail", None):
            raise ValueError(f"verdict must be pass or fail, not {self.verdict!r}")
        if self.verdict is None and self.score is None:
            raise ValueError("a result needs a verdict or a score")


def author(name: str, version: int) -> str:
    """The label author of an evaluator version: `groundedness@v2`."""
    return f"{name}@v{version}"


def parse_author(text: str) -> tuple[str, int] | None:
    """`groundedness@v2` → ("groundedness", 2); None when `text` is not an evaluator's author."""
    name, sep, version = text.rpartition("@v")
    return (name, int(version)) if sep and name and version.isdigit() else None


def label_id(project: str, trace_id: str, span_id: str | None, name: str, version: int) -> str:
    """The label id of an evaluator version's result on a target (the same every time)."""
    key = "\x00".join((project, trace_id.lower(), (span_id or "").lower(), name, str(version)))
    return "ev" + hashlib.sha256(key.encode()).hexdigest()[:30]


def label_event(
    result: Result,
    *,
    project: str,
    trace_id: str,
    span_id: str | None,
    name: str,
    version: int,
    decides_outcome: bool,
    created_at_unix_nano: int,
) -> dict[str, Any]:
    """The label event (the dict the WAL's KIND_LABELS records hold) of `result`."""
    meta = {"evaluator": name, "evaluator_version": version} | dict(result.metadata)
    if decides_outcome:
        meta["decides_outcome"] = True
    return {
        "label_id": label_id(project, trace_id, span_id, name, version),
        "trace_id": trace_id.lower(),
        "span_id": span_id.lower() if span_id else None,
        "created_at_unix_nano": created_at_unix_nano,
        "project": project,
        "source": SOURCE,
        "author": author(name, version),
        "verdict": result.verdict,
        "failure_mode": result.failure_mode,
        "score": result.score,
        "comment": result.comment,
        "expected_output": None,
        "metadata": meta,
    }
