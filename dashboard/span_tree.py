"""The trace view's span tree, without Streamlit: which spans show (collapsed by depth and per
subtree; a category filter, a text search and "problems only" that keep every match's
ancestors), each subtree's rolled-up figures, retries and errors in tree order, and the rows
the tree grid draws (components.timeline_bar draws their bars).

A span's subtree is the run of spans after it, in tree order (TraceDetail.spans: parents
first), that are deeper than it; so everything here is derived from the spans' depths alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spanlake.analytics.spans import BILLABLE_CATEGORIES

# flags a row may carry, in the order shown
ERROR, RETRY, CHECK_FAILED, CHECK_PASSED = "error", "retry", "check failed", "check passed"
DUPLICATE, ERROR_BELOW = "duplicate", "error below"
FLAGS = (ERROR, RETRY, CHECK_FAILED, CHECK_PASSED, DUPLICATE, ERROR_BELOW)
PROBLEMS = frozenset({ERROR, RETRY, CHECK_FAILED})
SEARCHED = ("name", "category", "request_model", "response_model", "tool_name", "span_id", "status_message",
            "error_type", "validation_name")  # fmt: skip


@dataclass(frozen=True)
class TreeView:
    """What the user chose. `depth`: spans at this depth or deeper start closed (None: all
    open); `toggled`: span id → opened (True) or closed (False) by hand, over the depth rule.
    With a category, a text or `problems_only`, the tree shows exactly the matching spans and
    their ancestors, open (collapsing applies again once the filter is cleared)."""

    depth: int | None = None
    toggled: Mapping[str, bool] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()
    text: str = ""
    problems_only: bool = False

    @property
    def filtering(self) -> bool:
        return bool(self.categories or self.text.strip() or self.problems_only)


@dataclass(frozen=True)
class Rollup:
    """A subtree's figures: spans below it, its calls counted once (no duplicates), their
    tokens and cost, and its spans in error (itself included)."""

    below: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    errors: int


class SpanTree:
    """The spans of one trace (in tree order, each with its `depth`) as a tree."""

    def __init__(self, spans: Sequence[Mapping[str, Any]]) -> None:
        self.spans = spans
        n = len(spans)
        self.position = {s["span_id"]: i for i, s in enumerate(spans)}
        self.parent: list[int | None] = [None] * n
        self.end = list(range(1, n + 1))  # the subtree of i is spans[i:end[i]]
        open_: list[int] = []  # the path from a root to the span before
        for i, s in enumerate(spans):
            while open_ and spans[open_[-1]]["depth"] >= s["depth"]:
                self.end[open_.pop()] = i
            self.parent[i] = open_[-1] if open_ else None
            open_.append(i)
        for i in open_:
            self.end[i] = n
        retries = self._retries()
        self.rollups = self._rollups()
        self.flags = [self._flags(i, i in retries) for i in range(n)]
        self._haystacks = [" ".join(str(s.get(k) or "") for k in SEARCHED).lower() for s in spans]

    def has_children(self, i: int) -> bool:
        return self.end[i] > i + 1

    def ancestors(self, i: int) -> list[int]:
        """The span's ancestors, its parent first."""
        out = []
        p = self.parent[i]
        while p is not None:
            out.append(p)
            p = self.parent[p]
        return out

    def _flags(self, i: int, retry: bool) -> list[str]:
        s = self.spans[i]
        out = []
        if s["status_code"] == "ERROR":
            out.append(ERROR)
        if retry:
            out.append(RETRY)
        if s.get("validation_passed") is not None:
            out.append(CHECK_PASSED if s["validation_passed"] else CHECK_FAILED)
        if s.get("duplicate_of"):
            out.append(DUPLICATE)
        if self.rollups[i].errors > (s["status_code"] == "ERROR"):
            out.append(ERROR_BELOW)
        return out

    def _retries(self) -> set[int]:
        """Spans that repeat a failed attempt: the sibling of their name just before them is in
        error (as the latency report counts retries; siblings are in start order)."""
        last: dict[tuple[int | None, str], int] = {}
        out = set()
        for i, s in enumerate(self.spans):
            key = (self.parent[i], s["name"])
            before = last.get(key)
            if before is not None and self.spans[before]["status_code"] == "ERROR":
                out.add(i)
            last[key] = i
        return out

    def _rollups(self) -> list[Rollup]:
        n = len(self.spans)
        calls, tin, tout, errors = [0] * n, [0] * n, [0] * n, [0] * n
        cost: list[float | None] = [None] * n
        for i in range(n - 1, -1, -1):  # children come after their parent: sum them up the tree
            s = self.spans[i]
            if s["category"] in BILLABLE_CATEGORIES and not s.get("duplicate_of"):
                calls[i] += 1
                tin[i] += s.get("input_tokens") or 0
                tout[i] += s.get("output_tokens") or 0
                if s.get("cost_usd") is not None:
                    cost[i] = (cost[i] or 0.0) + s["cost_usd"]
            errors[i] += s["status_code"] == "ERROR"
            p = self.parent[i]
            if p is not None:
                calls[p] += calls[i]
                tin[p] += tin[i]
                tout[p] += tout[i]
                errors[p] += errors[i]
                if cost[i] is not None:
                    cost[p] = (cost[p] or 0.0) + cost[i]
        return [Rollup(self.end[i] - i - 1, calls[i], tin[i], tout[i], cost[i], errors[i]) for i in range(n)]

    def is_open(self, i: int, view: TreeView) -> bool:
        """Whether a span with children shows them (when no filter is on)."""
        by_hand = view.toggled.get(self.spans[i]["span_id"])
        if by_hand is not None:
            return by_hand
        return view.depth is None or self.spans[i]["depth"] < view.depth

    def matches(self, i: int, view: TreeView) -> bool:
        if view.categories and self.spans[i]["category"] not in view.categories:
            return False
        text = view.text.strip().lower()
        if text and text not in self._haystacks[i]:
            return False
        return not view.problems_only or bool(PROBLEMS.intersection(self.flags[i]))

    def visible(self, view: TreeView) -> list[int]:
        """The spans shown, in tree order."""
        n = len(self.spans)
        if view.filtering:
            shown = [False] * n
            for i in range(n):
                if self.matches(i, view):
                    shown[i] = True
                    p = self.parent[i]
                    while p is not None and not shown[p]:
                        shown[p] = True
                        p = self.parent[p]
            return [i for i in range(n) if shown[i]]
        out = []
        i = 0
        while i < n:
            out.append(i)
            i = i + 1 if not self.has_children(i) or self.is_open(i, view) else self.end[i]
        return out

    def errors(self) -> list[int]:
        """Spans in error, in tree order."""
        return [i for i, f in enumerate(self.flags) if ERROR in f]

    def next_error(self, after: str | None) -> int | None:
        """The first span in error after the span `after` (in tree order, wrapping round)."""
        errs = self.errors()
        if not errs:
            return None
        here = self.position.get(after, -1) if after is not None else -1
        return next((i for i in errs if i > here), errs[0])

    def reveal(self, i: int, view: TreeView) -> dict[str, bool]:
        """`view.toggled` with every ancestor of span i opened (so the span shows)."""
        toggled = dict(view.toggled)
        for a in self.ancestors(i):
            toggled[self.spans[a]["span_id"]] = True
        return toggled

    def open_to(self, depth: int | None, view: TreeView) -> TreeView:
        """The view opened to `depth`, forgetting spans toggled by hand."""
        return TreeView(depth, {}, view.categories, view.text, view.problems_only)

    def max_depth(self) -> int:
        return max((s["depth"] for s in self.spans), default=0)

    def subject(self, i: int) -> str:
        """What a span works with: its model, tool, agent or data source."""
        s = self.spans[i]
        attrs = s.get("attributes") or {}
        for v in (s.get("response_model"), s.get("request_model"), s.get("tool_name"),
                  attrs.get("gen_ai.agent.name"), attrs.get("gen_ai.data_source.id")):  # fmt: skip
            if v:
                return str(v)
        return ""
