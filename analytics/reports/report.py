"""What a report declares, once, in its own module (analytics/reports/<name>.py): its name and
summary, the group-by keys it takes, its parameters, how it is computed from raw spans and
how from hourly rollups (with the rollup tables it needs). analytics.reports.registry collects
every declaration; the CLI, the API and the dashboard list and run reports from there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from spanlake.analytics.rollups.tables import Table
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions

Result = tuple[pl.DataFrame, str]  # (frame, source: raw | rollups | rollups+raw)
Style = Literal["cli", "api"]
# `{by=v1&a=v2}` in a summary: the CLI shows `--by v1 --a v2`, the API `by=v1&a=v2`.
_EXAMPLE = re.compile(r"\{([^}]*)\}")


@dataclass(frozen=True)
class Param:
    """A parameter of one report, beside the filters and group-by every report takes."""

    name: str
    type: type  # int, float or str
    default: Any = None
    help: str | None = None  # the API's description; the CLI's option says which reports take it
    choices: tuple[str, ...] = ()
    ge: float | None = None
    le: float | None = None
    required: bool = False
    public: bool = True  # offered by the CLI and the API (else to Python callers only)


@dataclass(frozen=True)
class Request:
    """One run of a report: the window and filters, the grouping, task options, parameters."""

    filters: Filters
    group_by: list[str] = field(default_factory=list)
    bucket: str | None = None
    options: TaskOptions = field(default_factory=TaskOptions)
    params: Mapping[str, Any] = field(default_factory=dict)


Raw = Callable[[Analytics, Request], pl.DataFrame]
Rolled = Callable[[Analytics, Request], Result | None]


@dataclass(frozen=True)
class Report:
    """A report: listed at `position` (CLI help, API, dashboard), computed by `raw` from spans,
    or by `rollup` from the hourly rollups (None when they cannot answer these arguments)."""

    name: str
    position: int
    summary: str  # one line; `{k=v&k2=v2}` is an example of its parameters
    raw: Raw
    rollup: Rolled | None = None
    dimensions: tuple[str, ...] = ()  # group-by keys offered first (empty: not grouped)
    default_group_by: tuple[str, ...] = ()  # the grouping when none is asked for
    params: tuple[Param, ...] = ()
    tables: tuple[Table, ...] = ()  # the rollup tables its `rollup` reads, built by `analytics run`
    description: str | None = None  # more, on the API's page
    shown_group_by: tuple[str, ...] = ()  # the dashboard's first grouping
    chart: str | None = None  # the column the dashboard charts

    @property
    def grouped(self) -> bool:
        return bool(self.dimensions)

    def summary_for(self, style: Style) -> str:
        """The summary with its parameter example as the CLI or the API writes it."""
        return _EXAMPLE.sub(lambda m: _example(m.group(1), style), self.summary)

    def example(self, style: Style) -> str | None:
        """The summary's example of parameters, if any."""
        m = _EXAMPLE.search(self.summary)
        return _example(m.group(1), style) if m else None

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters with their defaults; ValueError for unknown or missing ones."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ValueError(f"{self.name} takes no parameter {', '.join(unknown)}")
        out = {n: given.get(n, p.default) for n, p in known.items()}
        missing = [n for n, p in known.items() if p.required and out[n] is None]
        if missing:
            raise ValueError(f"{self.name} needs {' and '.join(missing)}")
        return out


def _example(text: str, style: Style) -> str:
    if style == "api":
        return text
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, _, v in (pair.partition("=") for pair in text.split("&")))
