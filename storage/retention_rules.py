"""Per-project retention rules ('alpha=7,*=30'): parsed apart from storage.retention, so a
command line that only takes the option does not load the retention machinery (DuckDB)."""

from __future__ import annotations

from collections.abc import Mapping

from spanlake.storage.layout import ALL_PROJECTS, valid_project


def parse_rules(text: str) -> dict[str, int]:
    """'alpha=7,*=30' → {'alpha': 7, '*': 30}; '' → {} (keep everything)."""
    rules: dict[str, int] = {}
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        project, sep, days = item.partition("=")
        project = project.strip()
        if not sep or not days.strip().isdigit():
            raise ValueError(f"retention rule {item!r}: use PROJECT=DAYS, e.g. alpha=7 or *=30")
        if project != ALL_PROJECTS and not valid_project(project):
            raise ValueError(f"retention rule {item!r}: {project!r} is not a project name")
        rules[project] = int(days)
    for project, days in rules.items():
        if days < 1:
            raise ValueError(f"retention for {project!r} must be at least 1 day")
    return rules


def format_rules(rules: Mapping[str, int]) -> str:
    return ",".join(f"{p}={d}" for p, d in sorted(rules.items()))
