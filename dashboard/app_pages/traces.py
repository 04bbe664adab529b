"""Traces: filter, sort and page the traces of the window; selecting a row opens it."""

import polars as pl
import streamlit as st

from spanlake.analytics.traces.filters import MAX_PAGE, SORTS, Page
from spanlake.dashboard import data
from spanlake.dashboard.components import table
from spanlake.dashboard.context import current

ANY = "Any"
ERRORS = {ANY: None, "With errors": True, "Without errors": False}
COLUMNS = ["start_time", "name", "outcome", "duration_ms", "llm_calls", "models", "total_tokens", "cost_usd",
           "has_error", "service_name", "session_id", "project", "trace_id", "open"]  # fmt: skip


def parse_attributes(text: str) -> dict[str, str]:
    """`key = value` pairs, one per line."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


ctx = current()
st.title("Traces")
facets = data.facets(ctx.data_dir, ctx.trace_filters())

with st.container(border=True):
    c = st.columns([3, 2, 2, 2, 2])
    text = c[0].text_input("Search inputs and outputs", key="traces_text", placeholder="text in prompts, answers, docs")
    service = c[1].selectbox("Service", [ANY, *facets["services"]], key="traces_service")
    model = c[2].selectbox("Model", [ANY, *facets["models"]], key="traces_model")
    outcome = c[3].selectbox("Outcome", [ANY, "success", "failure", "unknown"], key="traces_outcome")
    errors = c[4].selectbox("Errors", list(ERRORS), key="traces_errors")
    c = st.columns([2, 2, 2, 2, 3])
    min_ms = c[0].number_input("Min latency (ms)", min_value=0.0, value=None, key="traces_min_ms")
    max_ms = c[1].number_input("Max latency (ms)", min_value=0.0, value=None, key="traces_max_ms")
    min_cost = c[2].number_input("Min cost ($)", min_value=0.0, value=None, format="%.4f", key="traces_min_cost")
    max_cost = c[3].number_input("Max cost ($)", min_value=0.0, value=None, format="%.4f", key="traces_max_cost")
    attrs = c[4].text_area("Attributes (key = value, one per line)", key="traces_attrs", height=68)
    c = st.columns([2, 2, 2, 6])
    sort = c[0].selectbox("Sort by", list(SORTS), key="traces_sort")
    descending = c[1].toggle("Descending", value=True, key="traces_desc")
    limit = int(c[2].selectbox("Rows per page", [25, 50, 100, 200, MAX_PAGE], index=1, key="traces_limit"))

f = ctx.trace_filters(
    text=text.strip() or None,
    service=None if service == ANY else service,
    model=None if model == ANY else model,
    outcome=None if outcome == ANY else outcome,
    has_error=ERRORS[errors],
    min_ms=min_ms,
    max_ms=max_ms,
    min_cost=min_cost,
    max_cost=max_cost,
    attributes=parse_attributes(attrs),
)
st.session_state["traces_filter"] = f  # "the current traces filter" for the Datasets and Labelling pages
key = (f, sort, descending, limit)
if st.session_state.get("traces_key") != key:  # new filters: back to the first page
    st.session_state["traces_key"] = key
    st.session_state["traces_offset"] = 0
offset = st.session_state.get("traces_offset", 0)

result = data.trace_page(ctx.data_dir, f, Page(sort=sort, descending=descending, limit=limit, offset=offset))
rows = result.rows
pages = max(1, -(-result.total // limit))
st.caption(f"{result.total:,} traces · {ctx.label} · page {offset // limit + 1} of {pages}")

if rows.height:
    shown = table(rows).with_columns(
        ("trace?trace=" + pl.col("trace_id") + "&project=" + pl.col("project")).alias("open")
    )
    event = st.dataframe(
        shown.select(COLUMNS),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="traces_table",
        column_config={
            "start_time": st.column_config.DatetimeColumn("start (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "duration_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f"),
            "cost_usd": st.column_config.NumberColumn("cost ($)", format="%.5f"),
            "open": st.column_config.LinkColumn("link", display_text="open"),
        },
    )
    selected = event.selection.rows if event is not None else []
    if selected:
        row = rows.row(selected[0], named=True)
        params = {"trace": row["trace_id"], "project": row["project"], "t": row["start_time"].isoformat()}
        st.switch_page("app_pages/trace.py", query_params=params)
else:
    st.info("No traces match. Widen the time range or clear filters.")

c = st.columns([1, 1, 8])
if c[0].button("Previous", disabled=offset == 0, key="traces_prev"):
    st.session_state["traces_offset"] = max(0, offset - limit)
    st.rerun()
if c[1].button("Next", disabled=not result.has_next, key="traces_next"):
    st.session_state["traces_offset"] = offset + limit
    st.rerun()
