"""Modules that once imported each other (hidden behind function-level imports) now import one way.

Read from the source: every `import spanlake...` of a module, at any depth, counts; a pair is
fine when one module reaches the other and not the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("collector", "storage", "analytics", "server")


def _modules() -> dict[str, Path]:
    out = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT).with_suffix("").parts if p != "__init__"]
            out[".".join(["spanlake", *parts])] = path
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            if nxt == goal:
                return True
            seen.add(nxt)
            todo.append(nxt)
    return False


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        ("spanlake.analytics.traces.relation", "spanlake.analytics.runner"),
        ("spanlake.analytics.pricing", "spanlake.analytics.price_database"),
        ("spanlake.storage.writer", "spanlake.storage.layout"),
        ("spanlake.storage.writer", "spanlake.storage.objectstore"),
        ("spanlake.storage.layout", "spanlake.storage.objectstore"),
        ("spanlake.analytics.traces.detail", "spanlake.storage.trace_index"),
    ],
)
def test_one_way(upper: str, lower: str) -> None:
    graph = _graph()
    assert _reaches(graph, upper, lower)
    assert not _reaches(graph, lower, upper), f"{lower} imports {upper} (directly or through others): a cycle"


def test_the_trace_view_does_not_need_the_rollup_job() -> None:
    graph = _graph()
    rollups = [m for m in graph if m.startswith("spanlake.analytics.rollup")]
    assert rollups
    assert not any(_reaches(graph, "spanlake.analytics.traces.detail", r) for r in rollups)
