"""Evaluators: each evaluator version with its volume, pass rate, agreement with people (Cohen's
kappa, the judge's precision and recall on "fail"), cost and latency; then one of them: its
confusion matrix, its pass rate per week, its latest results and the items where it and people
disagree, each a click away from its trace. `?evaluator=NAME&version=N` opens one."""

import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard import evaluator_view as evv
from spanlake.dashboard.components import esc, fmt_cost, fmt_int, fmt_ms, fmt_pct
from spanlake.dashboard.context import current

ctx = current()
st.title("Evaluators")
st.caption(
    "Code checks and LLM judges declared in `evaluators.toml` in the data directory (`spanlake evaluators`, "
    "`/api/v1/evaluators`, docs/evaluators.md). Their results are labels of source `judge`; the sidebar's "
    "time range selects the results (by when they were set) and the people's labels they are compared with."
)

declared, file_error = data.evaluators(ctx.data_dir, ctx.project)
if file_error:
    st.error(
        f"`evaluators.toml` does not parse: {esc(file_error)}\n\nThe server keeps running the evaluators it read "
        "last; fix the file (or use `spanlake evaluators`) to change them.",
        icon=":material/error:",
    )
found = data.judge_results(ctx.data_dir, ctx.project, ctx.since, ctx.until)
versions = evv.summaries(declared, found)
if not versions:
    scope = f"project {ctx.project}" if ctx.project else "any project"
    st.info(
        f"No evaluators and no results for {scope} in {ctx.label.lower()}. Declare one in `evaluators.toml`, e.g.\n\n"
        '`[[evaluator]]` `name = "reply_json"` `kind = "json_valid"` and a `[[rule]]` that runs it on sampled '
        "traces, or run one over past traces: `spanlake eval run reply_json --since 7d`.",
        icon=":material/fact_check:",
    )
    st.stop()

agreements = {
    k: a
    for project in sorted({s.project for s in versions if s.results})
    for k, a in data.evaluator_agreements(ctx.data_dir, project, ctx.since, ctx.until).items()
}
judged = sum(s.passed + s.failed for s in versions)
costs = [s.cost_usd for s in versions if s.cost_usd is not None]
m = st.columns(4)
m[0].metric("Evaluators", fmt_int(len({(s.project, s.name) for s in versions})))
m[1].metric("Results", fmt_int(sum(s.results for s in versions)), help=f"Judge labels set in {ctx.label.lower()}")
m[2].metric("Pass rate", fmt_pct(sum(s.passed for s in versions) / judged if judged else None))
m[3].metric("Judge cost", fmt_cost(sum(costs) if costs else None), help="What the LLM judges' calls cost")

st.dataframe(
    evv.list_rows(versions, agreements),
    hide_index=True,
    key="evaluators_table",
    width="stretch",
    column_order=[c for c in evv.list_rows(versions[:1], {})[0] if ctx.project is None or c != "project"],
    column_config={
        "version": st.column_config.NumberColumn("version", format="v%d"),
        "results": st.column_config.NumberColumn("results", help="In the time range"),
        "pass_rate": st.column_config.NumberColumn("pass rate", format="percent"),
        "kappa": st.column_config.NumberColumn("kappa", format="%.2f", help="Cohen's kappa with people's verdicts"),
        "precision_fail": st.column_config.NumberColumn(
            "precision on fail", format="percent", help="Of the judge's fails, the share people also failed"
        ),
        "recall_fail": st.column_config.NumberColumn(
            "recall on fail", format="percent", help="Of people's fails, the share the judge also failed"
        ),
        "compared": st.column_config.NumberColumn("compared", help="Items both the judge and people labelled"),
        "cost_usd": st.column_config.NumberColumn("cost ($)", format="%.6f"),
        "mean_latency_ms": st.column_config.NumberColumn("mean latency (ms)", format="%.0f"),
        "latest": st.column_config.DatetimeColumn("latest result (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    },
)

# --- one evaluator version: ?evaluator=&version= picks it, else the first with results ------------
keys = [s.key for s in versions]
by_key = {s.key: s for s in versions}
wanted = st.query_params.get("evaluator")
if wanted and st.session_state.get("_evaluators_link") != (wanted, st.query_params.get("version")):
    st.session_state["_evaluators_link"] = (wanted, st.query_params.get("version"))  # applied once
    match = [
        s.key for s in versions if s.name == wanted and str(s.version) == st.query_params.get("version", str(s.version))
    ]
    if match:
        st.session_state["evaluators_pick"] = match[0]
if st.session_state.get("evaluators_pick") not in keys:
    st.session_state["evaluators_pick"] = next((s.key for s in versions if s.results), keys[0])
key = st.selectbox(
    "Evaluator", keys, key="evaluators_pick", format_func=lambda k: evv.label(by_key[k], ctx.project is None)
)
s = by_key[key]
st.query_params["evaluator"], st.query_params["version"] = s.name, str(s.version)
st.session_state["_evaluators_link"] = (s.name, str(s.version))

st.subheader(esc(evv.title(s)))
facts = [s.kind or "not in evaluators.toml now", f"project {s.project}"]
if s.version is None:
    facts.append("gen_ai.evaluation.result events: they never decide a task's outcome")
elif not s.declared:
    facts.append("an older version, or an evaluator removed from the file")
st.caption(esc(" · ".join(facts)))
if s.description:
    st.caption(esc(s.description))
a = agreements.get(s.key) or evv.Agreement()
c = st.columns(6)
c[0].metric("Results", fmt_int(s.results))
c[1].metric("Pass rate", fmt_pct(s.pass_rate))
c[2].metric("Kappa", "-" if a.kappa is None else f"{a.kappa:.2f}", help="Cohen's kappa with people's verdicts")
c[3].metric("Precision on fail", fmt_pct(a.precision), help="Of the judge's fails, the share people also failed")
c[4].metric("Recall on fail", fmt_pct(a.recall), help="Of people's fails, the share the judge also failed")
c[5].metric("Compared", fmt_int(a.items), help="Items with a verdict from both the judge and people")
c = st.columns(6)
c[0].metric("Cost", fmt_cost(s.cost_usd))
c[1].metric("Cost per result", fmt_cost(s.cost_per_result))
c[2].metric("Mean latency", fmt_ms(s.mean_latency_ms))
if not s.results:
    st.info(
        "No results in the time range yet: a rule runs this evaluator on sampled traces once they are complete, "
        "or `spanlake eval run` runs it over past traces.",
        icon=":material/schedule:",
    )
    st.stop()

mine = evv.of_version(found, s)
left, right = st.columns([3, 2])
with left:
    weeks = evv.weekly(mine)
    st.altair_chart(evv.weekly_chart(weeks, "Pass rate per week (UTC)"), width="stretch", key="evaluators_weekly")
with right:
    st.markdown("**Judge against people** (items both labelled)")
    st.dataframe(evv.confusion_rows(a), hide_index=True, key="evaluators_confusion")

st.subheader("Disagreements with people")
disagreements = data.evaluator_disagreements(ctx.data_dir, s.project, s.name, s.version, ctx.since, ctx.until)
if disagreements:
    st.caption(
        f"{len(disagreements):,} items where the judge's verdict differs from people's: where a rubric gets fixed."
    )
    st.dataframe(
        evv.disagreement_rows(s.project, disagreements),
        hide_index=True,
        key="evaluators_disagreements",
        width="stretch",
        column_config={
            "trace": st.column_config.LinkColumn("trace", display_text="open"),
            "judge score": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    row = st.container(horizontal=True)
    for r in disagreements[: evv.MAX_BUTTONS]:
        row.link_button(
            f"Trace {evv.short_id(str(r['trace_id']))}",
            evv.trace_link(s.project, str(r["trace_id"])),
            icon=":material/account_tree:",
            help=f"Judge {r.get('judge_verdict')}, people {r.get('human_verdict')}: open the trace",
        )
else:
    st.caption("None: on every item people labelled, they and the judge agree (or people labelled none yet).")

thumbs = evv.feedback_disagreements(
    mine, data.user_feedback(ctx.data_dir, s.project, tuple(sorted(set(mine["trace_id"].to_list()))))
)
if thumbs:
    st.markdown(f"**Disagreements with end users' feedback** ({len(thumbs):,}: thumbs up is a pass, down a fail)")
    st.dataframe(
        thumbs,
        hide_index=True,
        key="evaluators_feedback_disagreements",
        width="stretch",
        column_config={"trace": st.column_config.LinkColumn("trace", display_text="open")},
    )

st.subheader("Latest results")
st.dataframe(
    evv.latest_rows(mine),
    hide_index=True,
    key="evaluators_latest",
    width="stretch",
    column_config={
        "created_at": st.column_config.DatetimeColumn("set at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "cost_usd": st.column_config.NumberColumn("cost ($)", format="%.6f"),
        "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f"),
        "trace": st.column_config.LinkColumn("trace", display_text="open"),
    },
)
