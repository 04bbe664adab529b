"""Sessions: traces grouped by session or conversation id, each session's traces in order."""

import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard.components import chat, esc, table
from spanlake.dashboard.context import current

MAX_SESSIONS = 200
COLUMNS = ["start_time", "name", "outcome", "duration_ms", "llm_calls", "total_tokens", "cost_usd", "has_error",
           "trace_id"]  # fmt: skip
MAX_TRANSCRIPT = 20  # traces whose conversation the transcript view loads

ctx = current()
st.title("Sessions")
f = ctx.trace_filters()
sessions = data.sessions(ctx.data_dir, f, MAX_SESSIONS)
st.caption(f"{sessions.height:,} sessions with a trace in {ctx.label.lower()} (most recent first)")
if not sessions.height:
    st.info("No sessions: traces carry a session when `session.id` (or `gen_ai.conversation.id`) is set.")
    st.stop()

event = st.dataframe(
    sessions,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="sessions_table",
    column_config={"cost_usd": st.column_config.NumberColumn("cost ($)", format="%.5f")},
)
chosen = event.selection.rows if event is not None else []
session_id = sessions["session_id"][chosen[0]] if chosen else st.query_params.get("session")
if not session_id:
    st.info("Select a session to see its traces in order.")
    st.stop()
st.query_params["session"] = session_id

st.subheader(f"Session {esc(session_id)}")
rows = data.session_traces(ctx.data_dir, f, session_id)
picked = st.dataframe(
    table(rows).select(COLUMNS),
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="sessions_traces",
)
if picked is not None and picked.selection.rows:
    row = rows.row(picked.selection.rows[0], named=True)
    params = {"trace": row["trace_id"], "project": row["project"], "t": row["start_time"].isoformat()}
    st.switch_page("app_pages/trace.py", query_params=params)

if st.toggle("Show the conversation of each trace", key="sessions_transcript"):
    for row in rows.head(MAX_TRANSCRIPT).iter_rows(named=True):
        st.divider()
        st.caption(esc(f"{row['start_time']:%H:%M:%S} · {row['name']} · {row['outcome']} · trace {row['trace_id']}"))
        d = data.trace(ctx.data_dir, row["trace_id"], row["project"], row["start_time"])
        if d is not None and d.conversation:
            chat(d.conversation)
        else:
            st.text("(no messages recorded)")
