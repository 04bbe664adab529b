"""The trace view's Spans tab: the span tree as a grid, a row per span (open/close button,
indented name, category, a bar on the trace's time axis, duration, tokens and cost of its
subtree, flags, model or tool), its controls (open to a depth, a category filter, a search,
problems only, next error) and the selected span's detail beside it, so a 300-span agent run
reads without scrolling the page past it.

The grid scrolls inside a fixed height and draws only the rows in view, so a trace of
thousands of spans stays quick. State lives in session_state under `trace_tree_*` and starts
afresh when another trace opens; the rules of what shows are in span_tree.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl
import streamlit as st

from spanlake.analytics.traces.detail import TraceDetail
from spanlake.dashboard.components import BAR_WIDTH, CATEGORY_COLORS, PICK, fmt_cost, fmt_ms, timeline_bar
from spanlake.dashboard.span_detail import span_detail
from spanlake.dashboard.span_tree import (
    CHECK_FAILED,
    CHECK_PASSED,
    DUPLICATE,
    ERROR,
    ERROR_BELOW,
    FLAGS,
    RETRY,
    Rollup,
    SpanTree,
    TreeView,
)
from spanlake.storage.schema import CATEGORIES

KEY = "trace_tree"
GRID_HEIGHT = 560  # px: about 17 rows (at most); the detail beside it is as tall
ROW_PX = 30
OPEN_ROWS = 60  # a trace opens to the deepest depth that shows at most this many rows,
MIN_ROWS = 10  # and deeper while it shows fewer than this
ALL = "all"
INDENT = chr(0xA0) * 3
FLAG_COLORS = {ERROR: "#d63031", RETRY: "#e17055", CHECK_FAILED: "#d63031", CHECK_PASSED: "#00b894",
               DUPLICATE: "#b2bec3", ERROR_BELOW: "#fab1a0"}  # fmt: skip
SHOWN = ["open", "span", "category", "flags", "duration", "timeline", "tokens", "cost", "model / tool"]


def _k(name: str) -> str:
    return f"{KEY}_{name}"


def default_depth(tree: SpanTree) -> int | str:
    """The deepest "open to depth" that shows at most OPEN_ROWS rows, then deeper while it shows
    fewer than MIN_ROWS (all, for a small trace)."""
    if len(tree.spans) <= OPEN_ROWS:
        return ALL
    deepest = tree.max_depth()
    rows = {d: len(tree.visible(TreeView(depth=d))) for d in range(deepest + 1)}
    depth = max((d for d in rows if rows[d] <= OPEN_ROWS), default=0)
    while depth < deepest and rows[depth] < MIN_ROWS:
        depth += 1
    return ALL if depth >= deepest else depth


def _start(trace_id: str, tree: SpanTree) -> None:
    """Forget the state of another trace's tree."""
    if st.session_state.get(_k("trace")) == trace_id:
        return
    for key in [k for k in st.session_state if str(k).startswith(KEY + "_")]:
        del st.session_state[key]
    st.session_state[_k("trace")] = trace_id
    st.session_state[_k("depth")] = default_depth(tree)
    st.session_state[_k("toggled")] = {}
    st.session_state[_k("gen")] = 0


def _view() -> TreeView:
    """The user's choices, from session_state."""
    depth = st.session_state.get(_k("depth"), ALL)
    return TreeView(
        depth=None if depth in (ALL, None) else int(depth),
        toggled=st.session_state.get(_k("toggled"), {}),
        categories=frozenset(st.session_state.get(_k("categories")) or ()),
        text=st.session_state.get(_k("search")) or "",
        problems_only=bool(st.session_state.get(_k("problems"))),
    )


def _select(tree: SpanTree, i: int) -> None:
    """Select span i and show it in the grid: open its ancestors, drop a filter that hides it."""
    view = _view()
    if view.filtering and i not in tree.visible(view):
        st.session_state[_k("categories")] = []
        st.session_state[_k("search")] = ""
        st.session_state[_k("problems")] = False
    st.session_state[_k("toggled")] = tree.reveal(i, view)
    st.session_state[_k("selected")] = tree.spans[i]["span_id"]
    st.session_state[_k("gen")] = st.session_state.get(_k("gen"), 0) + 1  # a new grid, this row selected


def picked_on_timeline(d: TraceDetail, key: str) -> None:
    """A bar of the timeline chart (`key`) was clicked: select its span in the tree."""
    picked = st.session_state[key].selection.get(PICK) or []
    wanted = picked[0].get("span_id") if picked else None
    tree = SpanTree(d.spans)
    if wanted in tree.position:
        _select(tree, tree.position[wanted])


def _next_error(tree: SpanTree) -> None:
    i = tree.next_error(st.session_state.get(_k("selected")))
    if i is not None:
        _select(tree, i)


def _toggle(tree: SpanTree, i: int) -> None:
    """Close span i if open, else open it."""
    toggled = dict(st.session_state.get(_k("toggled"), {}))
    toggled[tree.spans[i]["span_id"]] = not tree.is_open(i, _view())
    st.session_state[_k("toggled")] = toggled


def _clicked(tree: SpanTree, rows: Sequence[int]) -> None:
    """A row's open/close button was clicked (its row in the grid drawn before)."""
    click = st.session_state.get(_k("click"))
    if click is not None and 0 <= click["row"] < len(rows):
        _toggle(tree, rows[click["row"]])


def _depth_changed() -> None:
    st.session_state[_k("toggled")] = {}  # "open to depth" starts the tree afresh


def _controls(tree: SpanTree) -> None:
    present = [c for c in CATEGORIES if any(s["category"] == c for s in tree.spans)]
    counts = {c: sum(1 for s in tree.spans if s["category"] == c) for c in present}
    depths = [*range(tree.max_depth()), ALL]
    if st.session_state.get(_k("depth")) not in depths:  # the trace grew or shrank since (spans still arriving)
        st.session_state[_k("depth")] = default_depth(tree)
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.segmented_control(
            "Open to depth",
            depths,
            key=_k("depth"),
            required=True,
            on_change=_depth_changed,
            help="Spans deeper than this start closed; the buttons in the first column open and close one span.",
        )
        st.pills(
            "Categories",
            present,
            selection_mode="multi",
            key=_k("categories"),
            format_func=lambda c: f"{c} {counts[c]}",
            help="Only spans of these categories, with their ancestors.",
        )
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input(
            "Search spans",
            key=_k("search"),
            placeholder="name, model, tool, status message, span id",
            help="Matching spans, with their ancestors.",
        )
        st.toggle("Only errors, retries and failed checks", key=_k("problems"))
        errors = len(tree.errors())
        st.button(
            "Next error",
            key=_k("next_error"),
            icon=":material/error:",
            disabled=not errors,
            on_click=_next_error,
            args=(tree,),
            shortcut="Alt+E",
            help="Select the next span in error (Alt+E).",
        )


def grid_frame(tree: SpanTree, rows: Sequence[int], view: TreeView, total_ms: float) -> pl.DataFrame:
    """The grid's rows: the columns shown (SHOWN) and the span's own tokens, cost and status."""
    cols: dict[str, list[Any]] = {c: [] for c in SHOWN}
    for c in ("input_tokens", "output_tokens", "cost_usd", "status_code"):
        cols[c] = []
    for i in rows:
        s, r = tree.spans[i], tree.rollups[i]
        parent = tree.has_children(i)
        if view.filtering or not parent:
            toggle = None
        elif tree.is_open(i, view):
            toggle = ":material/expand_more:"
        else:
            toggle = f":material/chevron_right: {r.below}"
        cols["open"].append(toggle)
        cols["span"].append(INDENT * s["depth"] + s["name"])
        cols["category"].append([s["category"]])
        cols["timeline"].append(
            timeline_bar(s["offset_ms"], s["duration_ms"], total_ms, s["category"], s["status_code"] == "ERROR")
        )
        cols["duration"].append(fmt_ms(s["duration_ms"]))
        counted = parent or s["input_tokens"] is not None or s["output_tokens"] is not None
        cols["tokens"].append(_tokens(r, parent) if counted else "")  # a call that reported none (refused)
        cols["cost"].append(_cost(r, parent))
        cols["flags"].append(tree.flags[i])
        cols["model / tool"].append(tree.subject(i))
        for c in ("input_tokens", "output_tokens", "cost_usd", "status_code"):
            cols[c].append(s[c])
    return pl.DataFrame(cols, schema_overrides={"open": pl.String, "input_tokens": pl.Int64,
                                                "output_tokens": pl.Int64, "cost_usd": pl.Float64})  # fmt: skip


def _tokens(r: Rollup, parent: bool) -> str:
    if not r.calls:
        return ""
    return ("Σ " if parent else "") + f"{r.input_tokens:,} → {r.output_tokens:,}"


def _cost(r: Rollup, parent: bool) -> str:
    if r.cost_usd is None:
        return ""
    return ("Σ " if parent else "") + fmt_cost(r.cost_usd)


def _column_config(tree: SpanTree, rows: Sequence[int]) -> dict[str, Any]:
    return {
        "open": st.column_config.ButtonColumn("", key=_k("click"), on_click=_clicked, args=(tree, rows),
                                              type="tertiary", width=56, pinned=True,
                                              help="Open or close the span (the number: spans below it)"),
        "span": st.column_config.TextColumn("span", width=210, pinned=True),
        "category": st.column_config.MultiselectColumn(
            "category", options=list(CATEGORIES), color=[CATEGORY_COLORS.get(c, "#636e72") for c in CATEGORIES],
            width=72),
        "timeline": st.column_config.ImageColumn("timeline", width=BAR_WIDTH + 10,
                                                 help="Each span on the trace's time axis, coloured by category"),
        "duration": st.column_config.TextColumn("duration", width=64),
        "tokens": st.column_config.TextColumn("tokens in → out", width=120,
                                              help="Σ: of the calls in the subtree, each counted once"),
        "cost": st.column_config.TextColumn("cost", width=70),
        "flags": st.column_config.MultiselectColumn(
            "flags", options=list(FLAGS), color=[FLAG_COLORS[f] for f in FLAGS], width=96),
        "model / tool": st.column_config.TextColumn("model / tool", width=110),
    }  # fmt: skip


def _grid(tree: SpanTree, rows: list[int], view: TreeView, total_ms: float) -> None:
    """The tree grid; a row picked in it becomes the selected span."""
    selected = tree.position.get(st.session_state.get(_k("selected")))
    where = {i: n for n, i in enumerate(rows)}
    # a new grid whenever its rows change or a span is selected from outside it, so its own
    # selection (row numbers) always refers to these rows
    key = f"{KEY}_grid_{st.session_state.get(_k('gen'), 0)}_{hash(tuple(rows)) & 0xFFFFFFFF:x}"
    event = st.dataframe(
        grid_frame(tree, rows, view, total_ms),
        key=key,
        height=min(GRID_HEIGHT, ROW_PX * (len(rows) + 1) + 3),  # a small trace: no empty rows
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        selection_default={"selection": {"rows": [where[selected]] if selected in where else []}},
        column_order=SHOWN,
        column_config=_column_config(tree, rows),
        row_height=ROW_PX,
    )
    picked = event.selection.rows if event is not None else []
    if picked and 0 <= picked[0] < len(rows):
        st.session_state[_k("selected")] = tree.spans[rows[picked[0]]]["span_id"]


@st.fragment
def spans_tab(d: TraceDetail, judged: Sequence[Mapping[str, Any]]) -> None:
    """The tree, its controls and the selected span's detail (the root until one is picked).
    A fragment: opening, closing, filtering and selecting rerun this tab only, not the page."""
    tree = SpanTree(d.spans)
    _start(d.trace_id, tree)
    _controls(tree)
    view = _view()
    rows = tree.visible(view)
    n, problems = len(tree.spans), sum(1 for f in tree.flags if RETRY in f)
    st.caption(
        f"Showing {len(rows):,} of {n:,} spans · {len(tree.errors())} in error · {problems} "
        + ("retry" if problems == 1 else "retries")
        + (" · the filter shows every match with its ancestors, all open" if view.filtering else "")
    )
    left, right = st.columns([2, 1], gap="small")
    with left:
        _grid(tree, rows, view, d.duration_ms)
    i = tree.position.get(st.session_state.get(_k("selected")), 0)
    with right, st.container(height=GRID_HEIGHT, border=True, key=_k("detail")):
        if tree.has_children(i):
            opened = tree.is_open(i, view)
            below = f"{tree.rollups[i].below:,} span" + ("s" if tree.rollups[i].below > 1 else "")
            st.button(
                f"Close the {below} below" if opened else f"Open the {below} below",
                key=_k("toggle_selected"),
                icon=":material/unfold_less:" if opened else ":material/unfold_more:",
                on_click=_toggle,
                args=(tree, i),
                disabled=view.filtering,
            )
        path = [d.spans[a]["name"] for a in reversed(tree.ancestors(i))]
        span_detail(d.spans[i], tree.flags[i], tree.rollups[i] if tree.has_children(i) else None, judged, path)
