"""The span tree's rules (dashboard/span_tree.py) on a small tree written out by hand:

0 root            task                                   depth 0
1   agent         agent                                  depth 1
2     chat        llm ERROR, 10 in                       depth 2
3     chat        llm 100 in / 5 out, $0.5  (a retry)    depth 2
4     tool x      tool                                   depth 2
5       lookup    retrieval                              depth 3
6     wrapper     llm 100 / 5, duplicate of 7            depth 2
7       client    llm 100 / 5, $0.5                      depth 3
8   check         guardrail, validation failed           depth 1
9 orphan          other ERROR (a second root)            depth 0
"""

from __future__ import annotations

from typing import Any

from spanlake.dashboard.span_tree import (
    CHECK_FAILED,
    DUPLICATE,
    ERROR,
    ERROR_BELOW,
    RETRY,
    Rollup,
    SpanTree,
    TreeView,
)
from spanlake.dashboard.trace_tree import ALL, default_depth


def span(n: int, depth: int, name: str, category: str, **kw: Any) -> dict[str, Any]:
    return {"span_id": f"s{n}", "name": name, "depth": depth, "category": category, "status_code": "UNSET",
            "input_tokens": None, "output_tokens": None, "cost_usd": None, "duplicate_of": None,
            "validation_passed": None, "request_model": None, "response_model": None, "tool_name": None,
            "attributes": {}, **kw}  # fmt: skip


SPANS = [
    span(0, 0, "root", "task"),
    span(1, 1, "agent", "agent", attributes={"gen_ai.agent.name": "helper"}),
    span(2, 2, "chat", "llm", status_code="ERROR", input_tokens=10, request_model="m1", status_message="429"),
    span(3, 2, "chat", "llm", input_tokens=100, output_tokens=5, cost_usd=0.5, request_model="m1"),
    span(4, 2, "tool x", "tool", tool_name="x"),
    span(5, 3, "lookup", "retrieval"),
    span(6, 2, "wrapper", "llm", input_tokens=100, output_tokens=5, duplicate_of="s7"),
    span(7, 3, "client", "llm", input_tokens=100, output_tokens=5, cost_usd=0.5, response_model="m2"),
    span(8, 1, "check", "guardrail", validation_passed=False),
    span(9, 0, "orphan", "other", status_code="ERROR"),
]


def test_structure_from_depths() -> None:
    tree = SpanTree(SPANS)
    assert tree.parent == [None, 0, 1, 1, 1, 4, 1, 6, 0, None]
    assert tree.end == [9, 8, 3, 4, 6, 6, 8, 8, 9, 10]
    assert [tree.has_children(i) for i in range(10)] == [True, True, False, False, True, False, True] + [False] * 3
    assert tree.ancestors(5) == [4, 1, 0] and tree.ancestors(9) == []
    assert tree.max_depth() == 3
    assert [tree.subject(i) for i in (1, 2, 4, 7, 0)] == ["helper", "m1", "x", "m2", ""]


def test_flags_retries_and_rollups() -> None:
    tree = SpanTree(SPANS)
    assert tree.flags == [[ERROR_BELOW], [ERROR_BELOW], [ERROR], [RETRY], [], [], [DUPLICATE], [], [CHECK_FAILED],
                          [ERROR]]  # fmt: skip
    # calls 2, 3 and 7 (6 repeats 7's call); 10 + 100 + 100 in, 5 + 5 out, $0.5 + $0.5
    assert tree.rollups[0] == Rollup(below=8, calls=3, input_tokens=210, output_tokens=10, cost_usd=1.0, errors=1)
    assert tree.rollups[6] == Rollup(below=1, calls=1, input_tokens=100, output_tokens=5, cost_usd=0.5, errors=0)
    assert tree.rollups[4] == Rollup(below=1, calls=0, input_tokens=0, output_tokens=0, cost_usd=None, errors=0)
    assert tree.rollups[9] == Rollup(below=0, calls=0, input_tokens=0, output_tokens=0, cost_usd=None, errors=1)


def test_a_repeat_after_a_success_is_no_retry() -> None:
    spans = [span(0, 0, "root", "task"), span(1, 1, "chat", "llm"), span(2, 1, "chat", "llm"),
             span(3, 1, "chat", "llm", status_code="ERROR"), span(4, 1, "other", "tool"),
             span(5, 1, "chat", "llm")]  # fmt: skip
    assert [RETRY in f for f in SpanTree(spans).flags] == [False, False, False, False, False, True]


def test_open_to_a_depth_and_by_hand() -> None:
    tree = SpanTree(SPANS)
    assert tree.visible(TreeView()) == list(range(10))
    assert tree.visible(TreeView(depth=0)) == [0, 9]
    assert tree.visible(TreeView(depth=1)) == [0, 1, 8, 9]
    # the agent opened by hand: its children show, closed (they are at depth 2 >= 1)
    assert tree.visible(TreeView(depth=1, toggled={"s1": True})) == [0, 1, 2, 3, 4, 6, 8, 9]
    assert tree.visible(TreeView(toggled={"s1": False})) == [0, 1, 8, 9]
    assert tree.visible(TreeView(toggled={"s4": False, "s6": False})) == [0, 1, 2, 3, 4, 6, 8, 9]


def test_filters_keep_ancestors_and_ignore_collapsing() -> None:
    tree = SpanTree(SPANS)
    closed = {"s0": False}
    assert tree.visible(TreeView(toggled=closed, categories=frozenset({"retrieval"}))) == [0, 1, 4, 5]
    assert tree.visible(TreeView(depth=0, text="CLIENT")) == [0, 1, 6, 7]
    assert tree.visible(TreeView(text="429")) == [0, 1, 2]  # the status message is searched
    assert tree.visible(TreeView(problems_only=True)) == [0, 1, 2, 3, 8, 9]
    assert tree.visible(TreeView(categories=frozenset({"llm"}), text="wrap")) == [0, 1, 6]
    assert tree.visible(TreeView(text="nothing like it")) == []
    assert tree.visible(TreeView(text="   ")) == list(range(10))  # blank is no filter


def test_next_error_wraps_and_reveal_opens_the_path() -> None:
    tree = SpanTree(SPANS)
    assert tree.errors() == [2, 9]
    assert [tree.next_error(a) for a in (None, "s2", "s5", "s9", "unknown")] == [2, 9, 9, 2, 2]
    view = TreeView(depth=0)
    opened = tree.reveal(5, view)
    assert opened == {"s4": True, "s1": True, "s0": True}
    assert 5 in tree.visible(TreeView(depth=0, toggled=opened))
    assert SpanTree([span(0, 0, "a", "task")]).next_error(None) is None


def test_default_depth() -> None:
    assert default_depth(SpanTree(SPANS)) == ALL  # a small trace opens fully
    # 1 root, 3 children of 30 spans each (a child with 29 leaves): 91 spans
    spans = [span(0, 0, "root", "task")]
    for c in range(3):
        spans.append(span(100 + c, 1, f"child {c}", "chain"))
        spans += [span(1000 * (c + 1) + k, 2, "leaf", "tool") for k in range(29)]
    # depth 1 shows 4 rows (fewer than 10): one deeper, where all 91 show
    assert default_depth(SpanTree(spans)) == ALL
    spans.append(span(9999, 3, "deep", "llm"))  # under the last leaf: depth 2 shows 92 rows of 93
    assert default_depth(SpanTree(spans)) == 2
