"""Every report, collected from the modules of analytics/reports (each declares a `Report`),
and `run_report`, which the CLI, the API and the dashboard all run reports through.

Adding a report is adding one module here that declares a module-level `Report` (see
analytics.reports.report); nothing else lists reports.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any

from spanlake.analytics import reports as _package
from spanlake.analytics.reports.report import Param, Report, Request, Result
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.task_outcomes import TaskOptions

SOURCES = ("auto", "raw", "rollups")


def _discover() -> dict[str, Report]:
    found: list[Report] = []
    for info in pkgutil.iter_modules(_package.__path__):
        module = importlib.import_module(f"{_package.__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, Report)]
    out: dict[str, Report] = {}
    for r in sorted(found, key=lambda r: (r.position, r.name)):
        if out.setdefault(r.name, r) is not r:
            raise ValueError(f"two reports are named {r.name!r}")
    return out


REPORTS: dict[str, Report] = _discover()


def get(name: str) -> Report:
    """The report called `name` (ValueError naming the reports when there is none)."""
    try:
        return REPORTS[name]
    except KeyError:
        raise ValueError(f"no report {name!r}; reports: {', '.join(REPORTS)}") from None


def public_params() -> dict[str, tuple[Param, list[str]]]:
    """Every public parameter by name, with the reports that take it (in listing order)."""
    out: dict[str, tuple[Param, list[str]]] = {}
    for r in REPORTS.values():
        for p in r.params:
            if p.public:
                out.setdefault(p.name, (p, []))[1].append(r.name)
    return out


def run_report(
    an: Analytics,
    name: str,
    filters: Filters,
    group_by: Sequence[str] = (),
    source: str = "auto",
    *,
    bucket: str | None = None,
    options: TaskOptions | None = None,
    **params: Any,
) -> Result:
    """Run report `name`: from hourly rollups where they can answer ('auto'), only from them
    ('rollups': ValueError when they cannot) or from raw spans ('raw'). Returns (frame, source
    used: raw | rollups | rollups+raw). A report that is not grouped ignores `group_by` and
    `bucket`; a grouped one without `group_by` uses its `default_group_by`."""
    report = get(name)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}")
    grouping = (list(group_by) or list(report.default_group_by)) if report.grouped else []
    q = Request(
        filters,
        grouping,
        bucket if report.grouped else None,
        options or TaskOptions(),
        report.bind(params),
    )
    if source != "raw" and report.rollup is not None:
        got = report.rollup(an, q)
        if got is not None:
            return got
    if source == "rollups":
        raise ValueError(
            f"{name}: rollups cannot answer (no rolled-up hour in the window, or attribute filters or "
            "groupings, minute buckets, a non-default slow threshold, a task name where the rollups do not "
            "carry one; for task-list also service, model, provider or prompt filters, or a limit over 100): "
            "use --source raw or auto"
        )
    return report.raw(an, q), "raw"
