"""Links to a trace list (analytics.traces.links): made from filters and read back the same,
and a parameter that is not valid is left out with a reason, never an error. (The dashboard
opening such a link: tests/dashboard/test_trace_links.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.links import link_params, parse_link

SINCE, UNTIL = datetime(2025, 6, 2, 10, 0, tzinfo=UTC), datetime(2025, 6, 2, 10, 15, tzinfo=UTC)


def as_query(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {k: [v for kk, v in pairs if kk == k] for k, _ in pairs}


def test_params_and_back() -> None:
    f = TraceFilters(since=SINCE, until=UNTIL, project="shop", task_name="answer", outcome="failure",
                     attributes={"a=b\\c": "x=y", "tier": "gold"}, provider="openai")  # fmt: skip
    pairs = link_params(f, "duration")
    assert pairs == [("project", "shop"), ("since", "2025-06-02T10:00:00Z"), ("until", "2025-06-02T10:15:00Z"),
                     ("task", "answer"), ("provider", "openai"), ("attr", "a\\=b\\\\c=x=y"), ("attr", "tier=gold"),
                     ("sort", "duration"), ("outcome", "failure")]  # fmt: skip
    link = parse_link(as_query(pairs))
    assert link is not None and link.filters == f and link.sort == "duration_ms" and link.problems == ()
    with pytest.raises(ValueError, match="sort must be one of"):
        link_params(f, "slowest")


def test_no_link() -> None:
    assert parse_link({}) is None
    assert parse_link({"trace": ["ab" * 16], "session": ["s1"]}) is None  # other pages' parameters


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"outcome": ["broken"]}, "outcome 'broken'"),
        ({"sort": ["fastest"]}, "sort 'fastest'"),
        ({"since": ["yesterday"]}, "since 'yesterday': an ISO 8601 time"),
        ({"since": ["0001-01-01T00:00:00+14:00"]}, "since '0001-01-01T00:00:00+14:00'"),
        ({"since": ["2025-06-02T11:00:00Z"], "until": ["2025-06-02T10:00:00Z"]}, "since must be before until"),
        ({"attr": ["tier"]}, "attr 'tier': use KEY=VALUE"),
        ({"task": ["a\x00b"]}, "task: too long or not text"),
    ],
)
def test_a_bad_parameter_is_left_out_with_a_reason(params: dict[str, list[str]], problem: str) -> None:
    link = parse_link({"project": ["shop"], **params})
    assert link is not None and link.filters.project == "shop"
    assert any(problem in p for p in link.problems), link.problems
    f = link.filters
    assert (f.outcome, f.since, f.until, f.task_name, dict(f.attributes), link.sort) == (
        None,
        None,
        None,
        None,
        {},
        None,
    )


def test_an_offset_whose_plus_was_not_encoded() -> None:
    link = parse_link({"since": ["2025-06-02T12:00:00 02:00"]})  # '+' arrives as a space
    assert link is not None and link.filters.since == SINCE
