"""One trace: `?trace=<id>` (optional `project`, `t` time hint). Timeline, tree, conversation,
documents, validations, markers and the raw spans; the evaluators' results (judge labels), on
the trace and on each span, apart from people's labels; labels (on the trace or a span) with
their history, and "add to dataset"."""

from datetime import datetime
from typing import Any

import polars as pl
import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard import evaluator_view as evv
from spanlake.dashboard.auth import may_see
from spanlake.dashboard.components import chat, esc, fmt_cost, fmt_int, fmt_ms, waterfall
from spanlake.dashboard.context import current, reviewer
from spanlake.dashboard.labelling import add_to_dataset, label_form, relevance_form, save_label, show_history

OUTCOME_COLORS = {"success": "green", "failure": "red", "unknown": "gray"}
SPAN_COLUMNS = ["span", "category", "model", "input_tokens", "output_tokens", "duration_ms", "status_code", "cost_usd",
                "counted"]  # fmt: skip


def judge_results(rows: list[dict[str, Any]], key: str) -> None:
    """Evaluator results: a line each (verdict, evaluator@version, score, failure mode, judge, cost,
    latency) with the judge's reason as plain text."""
    for n, r in enumerate(rows):
        color = {"pass": "green", "fail": "red"}.get(r["verdict"], "gray")
        facts = [r["target"]] if r["span_id"] is not None else []
        facts += [f"score {r['score']:g}"] if r["score"] is not None else []
        facts += [f"failure mode {r['failure_mode']}"] if r["failure_mode"] else []
        facts += [f"judge {r['judge_model']}"] if r["judge_model"] else []
        facts += [fmt_cost(r["cost_usd"])] if r["cost_usd"] is not None else []
        facts += [fmt_ms(r["latency_ms"])] if r["latency_ms"] is not None else []
        facts += ["decides the outcome"] if r["decides_outcome"] else []
        with st.container(border=True, key=f"{key}_{n}"):
            head = f":{color}-badge[{esc(r['verdict'] or 'scored')}] **{esc(r['evaluator'])}**"
            st.markdown(head + (" · " + esc(" · ".join(facts)) if facts else ""))
            if r["reason"]:
                st.text(r["reason"])


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
st.altair_chart(waterfall(d.spans), width="stretch")

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

tabs = st.tabs(["Conversation", "Spans", "Retrieved documents", "Validations & markers", "Raw"])
with tabs[0]:
    if d.conversation:
        chat(d.conversation)
    else:
        st.info("No messages recorded (content capture may be off).")

with tabs[1]:
    frame = pl.DataFrame(
        [
            {
                "span": f"{chr(0xA0) * 3 * sp['depth']}{sp['name']}",
                "category": sp["category"],
                "model": sp["response_model"] or sp["request_model"],
                "input_tokens": sp["input_tokens"],
                "output_tokens": sp["output_tokens"],
                "duration_ms": sp["duration_ms"],
                "status_code": sp["status_code"],
                "cost_usd": sp["cost_usd"],
                # a second span of a call the client's own span counts (docs/instrumentations.md)
                "counted": "duplicate" if sp["duplicate_of"] else "",
            }
            for sp in d.spans
        ]
    )
    event = st.dataframe(
        frame.select(SPAN_COLUMNS), hide_index=True, on_select="rerun", selection_mode="single-row", key="trace_spans"
    )
    picked = event.selection.rows[0] if event is not None and event.selection.rows else 0
    sp = d.spans[picked]
    st.subheader(esc(sp["name"]))
    st.caption(esc(f"span {sp['span_id']} · parent {sp['parent_span_id'] or '-'} · {sp['kind']} · {sp['scope_name']}"))
    c = st.columns(5)
    c[0].metric("Model", sp["response_model"] or sp["request_model"] or "-")
    c[1].metric("Tokens in / out", f"{fmt_int(sp['input_tokens'])} / {fmt_int(sp['output_tokens'])}")
    c[2].metric("Latency", fmt_ms(sp["duration_ms"]))
    c[3].metric("Status", sp["status_code"])
    c[4].metric("Cost", fmt_cost(sp["cost_usd"], int(sp["unpriced"])))
    if sp["duplicate_of"]:
        st.caption(
            esc(
                f"Another span of the call that span {sp['duplicate_of']} (nearer the wire) describes: "
                "that span counts; this one counts as no call, no tokens and no cost."
            )
        )
    if sp["status_message"]:
        st.text(f"Status message: {sp['status_message']}")
    span_judged = [r for r in judged if r["span_id"] == sp["span_id"]]
    if span_judged:
        st.markdown("**Evaluator results on this span**")
        judge_results(span_judged, "span_judge")
    if sp["messages"]:
        chat(sp["messages"])
    st.markdown("**Attributes**")
    st.json(sp["attributes"], expanded=1)
    if sp["content"]:
        st.markdown("**Content**")
        st.json(sp["content"], expanded=1)
    if sp["events"]:
        st.markdown("**Events**")
        st.json(sp["events"], expanded=1)
    if sp["logs"]:
        st.markdown("**Log records**")
        st.json([{k: v for k, v in rec.items() if k != "time"} for rec in sp["logs"]], expanded=1)

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
