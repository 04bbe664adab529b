"""Links to a filtered trace list: the query parameters of the dashboard's Traces page
(`/traces?project=shop&since=...&until=...&task=answer&sort=duration&outcome=failure`), made
from trace filters (an alert links the traces that broke its budget) and read back into them.

    project, since, until        the window (ISO 8601 times, UTC unless they say otherwise)
    task, service, model, provider, prompt_name, prompt_version   as TraceFilters
    attr=KEY=VALUE               repeatable; in KEY, `\\=` stands for '=' and `\\\\` for '\\'
    sort=duration|cost|start     slowest, most expensive or newest first
    outcome=failure|success|unknown
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spanlake.analytics.spans import parse_attr_filter
from spanlake.analytics.traces.filters import OUTCOMES, TraceFilters

# link sort → TraceFilters sort key (always descending: the worst or newest first)
SORTS = {"duration": "duration_ms", "cost": "cost_usd", "start": "start_time"}
TEXT_PARAMS = {"project": "project", "task": "task_name", "service": "service", "model": "model",
               "provider": "provider", "prompt_name": "prompt_name", "prompt_version": "prompt_version"}  # fmt: skip
PARAMS = ("since", "until", *TEXT_PARAMS, "attr", "sort", "outcome")
MAX_TEXT = 1024


@dataclass(frozen=True)
class TraceLink:
    """What a link asks for; `problems` lists the parameters that were ignored, and why."""

    filters: TraceFilters
    sort: str | None = None  # a key of filters.SORTS
    problems: tuple[str, ...] = field(default=())


def link_params(f: TraceFilters, sort: str | None = None) -> list[tuple[str, str]]:
    """The query parameters of a link to the traces `f` selects, `sort` one of SORTS' keys."""
    out: list[tuple[str, str]] = []
    if f.project is not None:
        out.append(("project", f.project))
    for name, t in (("since", f.since), ("until", f.until)):
        if t is not None:
            out.append((name, t.astimezone(UTC).isoformat().replace("+00:00", "Z")))
    out += [(p, getattr(f, a)) for p, a in TEXT_PARAMS.items() if p != "project" and getattr(f, a) is not None]
    for k, v in f.attributes.items():
        out.append(("attr", f"{k.replace(chr(92), chr(92) * 2).replace('=', chr(92) + '=')}={v}"))
    if sort is not None:
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        out.append(("sort", sort))
    if f.outcome is not None:
        out.append(("outcome", f.outcome))
    return out


def parse_link(params: Mapping[str, Sequence[str]]) -> TraceLink | None:
    """The trace list a link's parameters (name → values) ask for; None when it names none of them."""
    if not any(params.get(p) for p in PARAMS):
        return None
    problems: list[str] = []

    def one(name: str) -> str | None:
        values = [v for v in params.get(name, ()) if v]
        if not values:
            return None
        if len(values[-1]) > MAX_TEXT or any(ord(c) < 32 for c in values[-1]):
            problems.append(f"{name}: too long or not text")
            return None
        return values[-1]

    fields: dict[str, object] = {a: one(p) for p, a in TEXT_PARAMS.items()}
    for name in ("since", "until"):
        fields[name] = _time(one(name), name, problems)
    attributes: dict[str, str] = {}
    for item in params.get("attr", ()):
        try:
            key, value = parse_attr_filter(item)
        except ValueError:
            key, value = "", ""
        if key:
            attributes[key] = value
        else:
            problems.append(f"attr {item!r}: use KEY=VALUE")
    outcome = one("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        problems.append(f"outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
        outcome = None
    sort = one("sort")
    if sort is not None and sort not in SORTS:
        problems.append(f"sort {sort!r}: one of {', '.join(SORTS)}")
        sort = None
    since, until = fields["since"], fields["until"]
    if isinstance(since, datetime) and isinstance(until, datetime) and since >= until:
        problems.append("since must be before until")
        fields["since"] = fields["until"] = None
    filters = TraceFilters(attributes=attributes, outcome=outcome, **fields)  # type: ignore[arg-type]
    return TraceLink(filters, SORTS[sort] if sort else None, tuple(problems))


def _time(text: str | None, name: str, problems: list[str]) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' of an offset that was not URL-encoded
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        problems.append(f"{name} {text!r}: an ISO 8601 time such as 2025-06-02T10:00:00Z")
        return None
