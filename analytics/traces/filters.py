"""What a trace list looks at: time window first, then trace-level filters, a sort and a page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from spanlake.analytics.spans import Filters

OUTCOMES = ("success", "failure", "unknown")
JUDGE_VERDICTS = ("pass", "fail")
# Sort name → column of the trace relation (identifiers only ever come from here).
SORTS = {
    "start_time": "start_time",
    "duration_ms": "duration_ms",
    "cost_usd": "cost_usd",
    "total_tokens": "total_tokens",
    "span_count": "span_count",
    "llm_calls": "llm_calls",
}
# Spans of a trace are read this long after the window's end (a trace that started inside
# it may run on) and before its start (children whose clocks run early).
HORIZON = timedelta(hours=1)
SKEW = timedelta(minutes=5)
MAX_PAGE = 500


@dataclass(frozen=True)
class TraceFilters:
    """Which traces to show. A trace is in the window when its first span starts in
    [since, until). `model` matches any call's requested or answering model (`provider`,
    `prompt_name`: any span's); `attributes`
    match when any span has `attr = value`; `text` is a case-insensitive substring of any
    span's name or content, or of any log record's body or attributes. `judge`: traces with
    a current judge label of that verdict (on the trace or any span): `fail`, `pass`, or
    `EVALUATOR:fail` (`EVALUATOR` a name, every version, or `name@vN`, or `name@otel` for results
    the app sent) — see `parse_judge`.
    `dataset`: traces that are current members of that dataset of `project` (the trace or a
    span of it), e.g. `queue.<rule>`, where an evaluation rule sends traces for review."""

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    service: str | None = None
    model: str | None = None
    outcome: str | None = None  # success | failure | unknown
    has_error: bool | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    session_id: str | None = None
    task_name: str | None = None
    prompt_version: str | None = None
    provider: str | None = None  # any LLM call of this provider
    prompt_name: str | None = None  # any span of this prompt
    judge: str | None = None  # fail | pass | EVALUATOR:fail | EVALUATOR:pass
    dataset: str | None = None  # members of this dataset of `project`

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if self.dataset is not None and self.project is None:
            raise ValueError("a dataset filter needs a project (datasets belong to one project)")
        if self.judge is not None:
            parse_judge(self.judge)

    @classmethod
    def last(cls, span: timedelta, now: datetime | None = None, **kw: Any) -> TraceFilters:
        """The window of length `span` ending now."""
        now = now or datetime.now(UTC)
        return cls(since=now - span, until=now, **kw)

    def with_(self, **kw: Any) -> TraceFilters:
        return replace(self, **kw)

    def window(self) -> Filters:
        """The analytics filters that bound which spans are read (time, project, attributes)."""
        return Filters(since=self.since, until=self.until, project=self.project, attributes=dict(self.attributes))


def parse_judge(text: str) -> tuple[str | None, str]:
    """A judge filter as (evaluator or None for any, verdict): `fail` → (None, 'fail'),
    `groundedness:fail` → ('groundedness', 'fail'). ValueError when it is neither."""
    name, sep, verdict = text.strip().rpartition(":")
    name = name.strip()
    if verdict.strip() not in JUDGE_VERDICTS or (sep and not name):
        raise ValueError(f"judge must be pass, fail or EVALUATOR:pass / EVALUATOR:fail, not {text!r}")
    return (name or None), verdict.strip()


@dataclass(frozen=True)
class Page:
    """Sort and page of a trace list; `sort` is a key of SORTS."""

    sort: str = "start_time"
    descending: bool = True
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if not 1 <= self.limit <= MAX_PAGE or self.offset < 0:
            raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")

    @property
    def order_by(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{SORTS[self.sort]} {direction} NULLS LAST, trace_id {direction}"
