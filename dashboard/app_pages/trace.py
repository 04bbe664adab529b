"""One trace: `?trace=<id>` (optional `project`, `t` time hint). Timeline, tree, conversation,
documents, validations, markers and the raw spans; the evaluators' results (judge labels), on
the trace and on each span, apart from people's labels; labels (on the trace or a span) with
their history, and "add to dataset"."""

import json
from datetime import datetime
from functools import partial

import polars as pl
import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard import evaluator_view as evv
from spanlake.dashboard.auth import may_see
from spanlake.dashboard.components import PICK, chat, esc, fmt_cost, fmt_int, fmt_ms, lanes, waterfall
from spanlake.dashboard.context import current, reviewer
from spanlake.dashboard.labelling import add_to_dataset, label_form, relevance_form, save_label, show_history
from spanlake.dashboard.span_detail import judge_results
from spanlake.dashboard.trace_tree import OPEN_ROWS, picked_on_timeline, spans_tab

OUTCOME_COLORS = {"success": "green", "failure": "red", "unknown": "gray"}


def hint(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


ctx = current()
params = st.query_params
trace_id = st.text_input("Trace id", value=params.get("trace", ""), key="trace_input").strip().lower()
if trace_id != params.get("trace", ""):
    st.query_params.clear()
    if trace_id:
        st.query_params["trace"] = trace_id
if not trace_id:
    st.info("Open a trace from the Traces page, or paste a trace id.")
    st.stop()

d = data.trace(ctx.data_dir, trace_id, params.get("project") or None, hint(params.get("t")))
if d is None or not may_see(d.project):  # another project's trace looks like none at all
    st.warning(f"No trace {trace_id} in {ctx.data_dir}.")
    st.stop()

s = d.summary()
st.title(esc(s["name"]))
st.badge(s["outcome"], color=OUTCOME_COLORS.get(s["outcome"], "gray"))
if s["outcome_reason"]:
    st.text(f"Reason: {s['outcome_reason']}")
st.caption(
    esc(
        f"trace {d.trace_id} · project {d.project} · service {s['service_name']} · "
        f"started {s['start_time']:%Y-%m-%d %H:%M:%S} UTC · session {s['session_id'] or '-'}"
        + ("" if s["complete"] else " · root span not received yet")
    )
)
m = st.columns(6)
m[0].metric("Latency", fmt_ms(s["duration_ms"]))
m[1].metric("Spans", s["spans"])
m[2].metric("LLM calls", s["llm_calls"])
m[3].metric("Tokens in / out", f"{fmt_int(s['input_tokens'])} / {fmt_int(s['output_tokens'])}")
m[4].metric("Cost", fmt_cost(s["cost_usd"], s["unpriced_calls"]))
m[5].metric("Errors", s["errors"])

st.subheader("Timeline")
big = len(d.spans) > OPEN_ROWS
if big:  # a bar per span would be thousands of pixels tall: a lane per depth, the tree below has the rows
    st.caption("One lane per depth; the Spans tab has a row per span. Click a bar to select its span there.")
st.altair_chart(lanes(d.spans) if big else waterfall(d.spans), width="stretch", key="trace_timeline",
                on_select=partial(picked_on_timeline, d, "trace_timeline"), selection_mode=PICK)  # fmt: skip

names = {sp["span_id"]: sp["name"] for sp in d.spans}
judged = evv.on_trace(data.trace_judge_results(ctx.data_dir, d.trace_id, d.project), names)
on_the_trace = [r for r in judged if r["span_id"] is None]
if judged:
    st.subheader("Evaluator results")
    st.caption(
        "Labels of source `judge` (evaluators.toml; the Evaluators page compares them with people's labels). "
        + (f"{len(judged) - len(on_the_trace)} more on spans: see the Spans tab." if len(judged) > len(on_the_trace)
           else "")
    )  # fmt: skip
    judge_results(on_the_trace, "trace_judge")

tabs = st.tabs(["Conversation", "Spans", "Retrieved documents", "Validations & markers", "Raw"],
               default="Spans" if big else None)  # fmt: skip
with tabs[0]:
    if d.conversation:
        chat(d.conversation)
    else:
        st.info("No messages recorded (content capture may be off).")

with tabs[1]:
    spans_tab(d, judged)

with tabs[2]:
    if d.documents:
        st.dataframe(pl.DataFrame(d.documents).select("span_name", "rank", "id", "score", "content"), hide_index=True)
        judge_as, _ = reviewer(d.project)
        by_span: dict[str, list[str]] = {}
        for doc in d.documents:
            if doc.get("id") and doc.get("span_id"):
                by_span.setdefault(doc["span_id"], []).append(doc["id"])
        if judge_as is not None:
            for rel_span, doc_ids in by_span.items():
                st.markdown(f"**Relevance** of span {esc(rel_span)}'s documents (hit rate and precision at k)")
                saved = relevance_form(d.project, d.trace_id, rel_span, list(dict.fromkeys(doc_ids)), judge_as,
                                       f"relevance_{rel_span}")  # fmt: skip
                if saved:
                    st.success(f"Relevance saved by {esc(judge_as)} ({saved}).")
    else:
        st.info("No retrieved documents in this trace.")

with tabs[3]:
    if d.validations:
        st.markdown("**Validations**")
        vals = [{**v, "errors": "; ".join(str(e) for e in v["errors"])} for v in d.validations]
        st.dataframe(pl.DataFrame(vals).select("name", "passed", "errors"), hide_index=True)
    if d.markers:
        st.markdown("**Policy, fallback and escalation markers**")
        keys = sorted({k for mk in d.markers for k in mk} - {"span_id"})
        st.dataframe(pl.DataFrame([{k: str(mk.get(k, "")) for k in keys} for mk in d.markers]), hide_index=True)
    if not d.validations and not d.markers:
        st.info("No validations or markers in this trace.")

with tabs[4]:
    raw = [{k: v for k, v in sp.items() if k not in ("messages", "logs", "depth")} for sp in d.spans]
    if big:  # megabytes of JSON on every rerun: the whole trace on request (the Spans tab shows each span)
        st.download_button("Download every span as JSON", lambda: json.dumps(raw, default=str, indent=1),
                           file_name=f"trace-{d.trace_id}.json", mime="application/json", on_click="ignore",
                           icon=":material/download:", key="trace_raw_download")  # fmt: skip
        st.caption(f"{len(raw):,} spans: each one's attributes, content, events and log records are in the Spans tab.")
    else:
        st.json(raw, expanded=1)
    if d.orphan_logs:
        st.markdown("**Log records of spans not stored**")
        st.json(d.orphan_logs, expanded=1)

st.subheader("Labels")
targets = {"The whole trace": None} | {
    f"span {i + 1}. {sp['name']} ({sp['span_id']})": sp["span_id"] for i, sp in enumerate(d.spans)
}
target = st.selectbox("Label", list(targets), key="trace_label_target", help="The trace, or one span of it.")
span_id = targets[target]
author, why_not = reviewer(d.project)
if author is None:
    st.info(why_not)
else:
    schema = data.label_schema(ctx.data_dir, d.project)
    submitted = label_form(f"trace_label_{span_id or 'trace'}", schema)
    if submitted is not None:
        _, fields = submitted
        label_id = save_label(d.project, d.trace_id, span_id, author, fields, schema, {"via": "dashboard"})
        if label_id:
            st.success(f"Label saved by {esc(author)} ({label_id}).")
st.markdown(
    "**History** (every label event of people and systems on this trace and its spans, newest first; "
    "evaluator results are above)"
)
history = data.label_history(ctx.data_dir, d.trace_id, d.project)
show_history(history.filter(pl.col("source") != "judge"), names, "trace_label_history")

st.subheader("Add to dataset")
if author is None:
    st.info(why_not)
else:
    add_to_dataset(d.project, d.trace_id, span_id, s["start_time"], author)
