"""One span in full, beside the trace view's span tree: figures, flags, its subtree's totals,
evaluator results, messages, attributes, content, events and log records; and the evaluator
results list the trace view shares. Span text is shown as text only (components.esc)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from spanlake.dashboard.components import chat, esc, fmt_cost, fmt_int, fmt_ms
from spanlake.dashboard.span_tree import CHECK_PASSED, DUPLICATE, ERROR_BELOW, RETRY, Rollup

PATH_SEP = f" {chr(0x203A)} "  # a single right-pointing angle quote
FLAG_COLORS = {CHECK_PASSED: "green", DUPLICATE: "gray", RETRY: "orange", ERROR_BELOW: "orange"}  # others: red


def judge_results(rows: Sequence[Mapping[str, Any]], key: str) -> None:
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


def span_detail(
    sp: Mapping[str, Any],
    flags: Sequence[str],
    rollup: Rollup | None,
    judged: Sequence[Mapping[str, Any]],
    path: Sequence[str] = (),
) -> None:
    """The span's detail; `rollup` (its subtree's totals) when it has spans below it, `path` the
    names of its ancestors (the root first)."""
    if path:
        st.caption(esc(PATH_SEP.join([*path, ""])))
    st.subheader(esc(sp["name"]))
    st.caption(esc(f"span {sp['span_id']} · parent {sp['parent_span_id'] or '-'} · {sp['kind']} · {sp['scope_name']}"))
    if flags:
        st.markdown(" ".join(f":{FLAG_COLORS.get(f, 'red')}-badge[{esc(f)}]" for f in flags))
    facts = {"category": sp["category"], "model": sp["response_model"] or sp["request_model"], "tool": sp["tool_name"]}
    if sp["input_tokens"] is not None or sp["output_tokens"] is not None:
        facts["tokens in / out"] = f"{fmt_int(sp['input_tokens'])} / {fmt_int(sp['output_tokens'])}"
    facts["latency"] = fmt_ms(sp["duration_ms"])
    if sp["cost_usd"] is not None or sp["unpriced"]:
        facts["cost"] = fmt_cost(sp["cost_usd"], int(sp["unpriced"]))
    facts["status"] = sp["status_code"]
    st.markdown(" · ".join(f"{name} **{esc(value)}**" for name, value in facts.items() if value))
    if rollup is not None:
        totals = [f"{rollup.below:,} span{'s' if rollup.below > 1 else ''} below"]
        if rollup.calls:
            calls = f"{rollup.calls:,} call" + ("s" if rollup.calls > 1 else "")
            totals += [calls, f"{rollup.input_tokens:,} / {rollup.output_tokens:,} tokens in / out"]
        totals += [f"cost {fmt_cost(rollup.cost_usd)}"] if rollup.cost_usd is not None else []
        totals += [f"{rollup.errors:,} in error"] if rollup.errors else []
        st.caption(esc("With its subtree: " + " · ".join(totals)))
    if sp["duplicate_of"]:
        st.caption(
            esc(
                f"Another span of the call that span {sp['duplicate_of']} describes: that span (the call's most "
                "complete) counts; this one counts as no call, no tokens and no cost."
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
