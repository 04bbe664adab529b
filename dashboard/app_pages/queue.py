"""Labelling queue: the next trace matching a saved filter (or the Traces page's filter) that
this reviewer has not labelled, with its conversation and the label form; saving moves on to
the next one. Keyboard: Alt+P pass & next, Alt+F fail & next, Alt+Enter (or Ctrl+Enter in a
text box) save & next, Alt+S skip."""

import polars as pl
import streamlit as st

from spanlake.analytics.traces.filters import TraceFilters
from spanlake.dashboard import data, writes
from spanlake.dashboard.components import chat, esc, fmt_cost, fmt_ms
from spanlake.dashboard.context import current, reviewer
from spanlake.dashboard.labelling import filters_to_saved, label_form, save_label, saved_to_filters
from spanlake.evaluators.rule_actions import QUEUE_PREFIX

CURRENT = "The Traces page's filter"
AHEAD = 20  # unlabelled traces fetched per query
UP_NEXT = ["start_time", "name", "outcome", "duration_ms", "models", "trace_id"]

ctx = current()
st.title("Labelling queue")
if ctx.project is None:
    st.info("Pick a project in the sidebar: a queue, its labels and its label schema belong to one project.")
    st.stop()
project = ctx.project
author, why_not = reviewer(project)
if author is None:
    st.info(why_not)
    st.stop()

saved = {d["name"]: d for d in data.saved_filters(ctx.data_dir).list(project)}
names = data.datasets(ctx.data_dir, project)["dataset"].to_list()
rules = {f"Sent by rule {n.removeprefix(QUEUE_PREFIX)}": n for n in names if n.startswith(QUEUE_PREFIX)}
if st.session_state.get("queue_source_next") in saved:  # just saved: pick it
    st.session_state["queue_source"] = st.session_state.pop("queue_source_next")
c = st.columns([3, 5])
source = c[0].selectbox(
    "Queue", [CURRENT, *saved, *rules], key="queue_source",
    help="A saved filter, the Traces page's, or the traces an evaluation rule sent for review (evaluators.toml).",
)  # fmt: skip
traces_filter = st.session_state.get("traces_filter")
if source in rules:
    f = TraceFilters(project=project, dataset=rules[source])
    where = f"all time: the traces the rule sent for review (dataset {rules[source]})"
elif source == CURRENT:
    f = traces_filter if isinstance(traces_filter, TraceFilters) and traces_filter.project == project else None
    f = f or ctx.trace_filters()
    where = f"{ctx.label} (the sidebar's window and the Traces page's filters)"
else:
    f = saved_to_filters(saved[source], project)
    window = saved[source].get("range_s")
    where = f"the last {window / 3600:g} h" if window else "all time"
doc, _ = filters_to_saved(f)
c[1].caption(esc(f"Traces of {where}; " + (", ".join(f"{k} = {v}" for k, v in doc.items()) or "no other filter")))

with st.expander("Save the Traces page's filter for queues"), st.form("queue_save_form", border=False):
    cc = st.columns([3, 1])
    filter_name = cc[0].text_input("Name", key="queue_save_name", placeholder="e.g. failed validation, last day")
    if cc[1].form_submit_button("Save filter"):
        base = traces_filter if isinstance(traces_filter, TraceFilters) else ctx.trace_filters()
        fields, range_s = filters_to_saved(base)
        try:
            writes.save_filter(project, filter_name.strip(), fields, range_s, author)
        except writes.WriteError as e:
            st.error(f"Not saved: {e}")
        else:
            st.session_state["queue_source_next"] = filter_name.strip()
            st.rerun()

q = data.queue(ctx.data_dir, f, author, AHEAD)
skipped: set[str] = st.session_state.setdefault("queue_skipped", set())
st.progress(
    q.done / q.total if q.total else 1.0,
    text=f"{q.done} of {q.total} labelled by {esc(author)}" + (" (first 10,000 traces)" if q.truncated else ""),
)
if st.session_state.get("queue_last"):
    st.success(st.session_state.pop("queue_last"))
todo = q.next.filter(~pl.col("trace_id").is_in(list(skipped))) if q.next.height else q.next
if not todo.height:
    if skipped and q.remaining:
        st.info(f"{len(skipped)} skipped trace(s) left.")
        if st.button("Show skipped traces again", key="queue_unskip"):
            skipped.clear()
            st.rerun()
    else:
        st.success("Nothing left to label in this queue.")
    st.stop()

row = todo.row(0, named=True)
trace_id = row["trace_id"]
d = data.trace(ctx.data_dir, trace_id, project, row["start_time"])
st.subheader(esc(row["name"] or trace_id))
st.caption(
    esc(
        f"trace {trace_id} · {row['outcome']} · {fmt_ms(row['duration_ms'])} · {fmt_cost(row['cost_usd'])} · "
        f"started {row['start_time']:%Y-%m-%d %H:%M:%S} UTC"
    )
)
st.page_link(
    "app_pages/trace.py",
    label="Open the full trace",
    icon=":material/open_in_new:",
    query_params={"trace": trace_id, "project": project, "t": row["start_time"].isoformat()},
)
CONVERSATION_HEIGHT = 460  # long conversations scroll inside, so the form stays in reach
long = d is not None and len(d.conversation) > 3
with st.container(height=CONVERSATION_HEIGHT if long else "content", border=True, autoscroll=False):
    if d is not None and d.conversation:
        chat(d.conversation)
    else:
        st.info("No messages recorded for this trace (content capture may be off).")

schema = data.label_schema(ctx.data_dir, project)
submitted = label_form(f"queue_form_{trace_id}", schema, shortcuts=True)
if submitted is not None:
    _, fields = submitted
    meta = {"via": "dashboard-queue", "queue": source}
    label_id = save_label(project, trace_id, None, author, fields, schema, meta)
    if label_id:
        st.session_state["queue_last"] = f"Saved {fields.get('verdict') or 'label'} on {row['name'] or trace_id}."
        st.rerun()
if st.button("Skip", key="queue_skip", shortcut="Alt+S", help="Leave this trace for later in this sitting."):
    skipped.add(trace_id)
    st.rerun()

if todo.height > 1:
    st.markdown("**Up next**")
    st.dataframe(todo.slice(1).select(UP_NEXT), hide_index=True, key="queue_up_next")
