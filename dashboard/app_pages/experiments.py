"""Experiments: the runs of `spanlake experiment run`, and two (or more) compared: aggregates with
intervals side by side, the release gate's verdict for rules pasted in, the items that
regressed, improved or changed output, and one item in both runs with its traces one click away.
`?a=ID&b=ID` (b repeatable) opens a comparison. Figures are the CLI's (experiments.offline)."""

import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard import experiment_view as ev
from spanlake.dashboard.components import esc, fmt_cost, fmt_ms
from spanlake.dashboard.context import current
from spanlake.experiments.gate import GateError
from spanlake.experiments.store import ExperimentError

CONFIDENCES = (0.8, 0.9, 0.95, 0.99)
MAX_ITEMS = 1000  # rows of the items table (and choices of the item picker)
RULES_EXAMPLE = """min_items = 30
[success_rate]
max_drop_points = 2
[cost_per_successful_task]
max_increase_pct = 10
[no_critical_regressions]
modes = ["error", "timeout"]"""

ctx = current()
st.title("Experiments")
st.caption(
    "Runs of an app over a frozen dataset version (`spanlake experiment run`, docs/experiments.md), on the "
    "sidebar's project (its datasets, or their traces' project). The time range does not apply here."
)
rows = data.experiments(ctx.data_dir, ctx.project)
if not rows:
    scope = f"project {ctx.project}" if ctx.project else "any project"
    st.info(
        f"No experiments on {scope} yet. Freeze a dataset version and run your app over it, e.g.\n\n"
        "`spanlake dataset export refunds --project shop --format jsonl` then\n"
        "`spanlake experiment run --dataset refunds@1 --dataset-project shop --app myapp.bot:answer "
        "--check contains --meta prompt_version=v1`",
        icon=":material/science:",
    )
    st.stop()

by_id = {r["id"]: r for r in rows}
st.dataframe(
    ev.list_rows(rows),
    hide_index=True,
    key="experiments_table",
    column_config={
        "id": st.column_config.TextColumn("experiment"),
        "items": st.column_config.TextColumn("items", help="With a result / in the dataset version"),
        "success_pct": st.column_config.NumberColumn("success", format="%.1f%%"),
        "cost_per_successful_task": st.column_config.NumberColumn("$ / successful task", format="%.6f"),
        "p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.0f"),
        "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    },
)

# --- which runs to compare: ?a=&b= (b repeatable), else the two newest over one dataset ------------
wanted = [i for i in [st.query_params.get("a"), *st.query_params.get_all("b")] if i]
link_key = tuple(wanted)
if wanted and st.session_state.get("_experiments_link") != link_key:
    st.session_state["_experiments_link"] = link_key  # a link is applied once; later picks stick
    st.session_state["experiments_pick"] = [i for i in wanted if i in by_id][: ev.MAX_PICKED]
if "experiments_pick" not in st.session_state:
    st.session_state["experiments_pick"] = ev.default_pick(rows)
st.session_state["experiments_pick"] = [i for i in st.session_state["experiments_pick"] if i in by_id]
c = st.columns([6, 1])
picked = c[0].multiselect(
    "Compare (the first is the baseline A; the others are candidates B, C, ...)",
    list(by_id),
    key="experiments_pick",
    format_func=lambda i: ev.label(by_id[i]),
    max_selections=ev.MAX_PICKED,
)
confidence = c[1].selectbox(
    "Confidence",
    CONFIDENCES,
    index=CONFIDENCES.index(0.95),
    key="experiments_confidence",
    format_func=lambda x: f"{x:.0%}",
    help="Of every interval: Wilson for the success rate, Newcombe for its difference, bootstrap for cost "
    "and latency ratios.",
)
if len(picked) < 2:
    st.info("Pick two experiments (or more) to compare them.", icon=":material/compare_arrows:")
    st.stop()
if picked != wanted:
    st.query_params["a"] = picked[0]
    st.query_params["b"] = picked[1:]
    st.session_state["_experiments_link"] = tuple(picked)

try:
    comparisons = [data.experiment_comparison(ctx.data_dir, picked[0], b, confidence) for b in picked[1:]]
except ExperimentError as e:
    st.error(f"Cannot compare: {esc(e)}", icon=":material/error:")
    st.stop()

st.subheader("Aggregates")
st.caption(
    esc(" · ".join(f"{ev.letter(n)} = {ev.label(by_id[i])}" for n, i in enumerate(picked)))
    + f" · {confidence:.0%} intervals"
)
st.dataframe(ev.aggregate_rows(comparisons), hide_index=True, key="experiments_aggregates", width="stretch")
for n, comp in enumerate(comparisons, 1):
    if not comp.paired:
        st.caption(f"{ev.letter(n)} ran over another dataset than A: compared as two samples, not item by item.")
    elif comp.only_in_a or comp.only_in_b:
        st.caption(
            f"A and {ev.letter(n)} compared on the items both ran ({comp.only_in_a} only in A, "
            f"{comp.only_in_b} only in {ev.letter(n)})."
        )
modes = ev.failure_mode_rows(comparisons)
if modes:
    with st.expander("Failure modes"):
        st.dataframe(modes, hide_index=True, key="experiments_modes")

# --- the release gate, for rules pasted in ---------------------------------------------------------
with st.expander("Release gate", expanded=bool(st.session_state.get("experiments_rules"))):
    rules_text = st.text_area(
        "Gate rules (the TOML of `spanlake gate --rules`)",
        key="experiments_rules",
        placeholder=RULES_EXAMPLE,
        height=160,
        help="docs/experiments.md, The gate. Each candidate is judged against A.",
    ).strip()
if rules_text:
    for n, b in enumerate(picked[1:], 1):
        try:
            result = data.experiment_gate(ctx.data_dir, picked[0], b, rules_text)
        except GateError as e:
            st.error(esc(e), icon=":material/error:")
            break
        v = ev.verdict(result.verdict)
        st.markdown(
            f"**{ev.letter(n)} against A:** :{v.color}-badge[{v.icon} {v.title}] "
            f"(`spanlake gate` would exit {result.exit_code})"
        )
        lines = []
        for r in result.rules:
            rv = ev.verdict(r.verdict)
            lines.append(f"- :{rv.color}-badge[{rv.icon} {rv.title}] **{esc(r.rule)}**: {esc(r.detail)}")
        st.markdown("\n".join(lines))

# --- item by item ----------------------------------------------------------------------------------
paired = [(n, comp) for n, comp in enumerate(comparisons, 1) if comp.paired]
if not paired:
    st.stop()
st.subheader("Item by item")
if len(paired) > 1:
    n, comp = paired[
        st.selectbox(
            "Candidate", range(len(paired)), key="experiments_candidate", format_func=lambda k: ev.letter(paired[k][0])
        )
    ]
else:
    n, comp = paired[0]
b_id = picked[n]
counts = {f: len(ev.diffs(comp, f)) for f in ev.FILTERS}
if st.session_state.get("_experiments_filter_for") != (picked[0], b_id):  # another pair: start afresh
    st.session_state["_experiments_filter_for"] = (picked[0], b_id)
    st.session_state.pop("experiments_filter", None)
which = st.segmented_control(
    "Show",
    ev.FILTERS,
    key="experiments_filter",
    default=ev.first_filter(counts),
    format_func=lambda f: f"{ev.FILTER_TITLES[f]} ({counts[f]})",
    help=" · ".join(f"{ev.FILTER_TITLES[f]}: {ev.FILTER_HELP[f]}" for f in ev.FILTERS),
)
which = which or "all"
shown = ev.diffs(comp, which)
projects = (by_id[picked[0]]["trace_project"], by_id[b_id]["trace_project"])
if not shown:
    st.caption(f"No {ev.FILTER_TITLES[which].lower()} items between A and {ev.letter(n)}.")
    st.stop()
if len(shown) > MAX_ITEMS:
    st.caption(
        f"The first {MAX_ITEMS:,} of {len(shown):,} items (`spanlake experiment compare --format json` lists all)."
    )
    shown = shown[:MAX_ITEMS]
event = st.dataframe(
    ev.item_rows(shown, *projects),
    hide_index=True,
    key=f"experiments_items_{which}",
    on_select="rerun",
    selection_mode="single-row",
    column_config={
        "baseline cost": st.column_config.NumberColumn("A cost ($)", format="%.6f"),
        "candidate cost": st.column_config.NumberColumn(f"{ev.letter(n)} cost ($)", format="%.6f"),
        "baseline ms": st.column_config.NumberColumn("A ms", format="%.0f"),
        "candidate ms": st.column_config.NumberColumn(f"{ev.letter(n)} ms", format="%.0f"),
        "baseline": st.column_config.TextColumn("A"),
        "candidate": st.column_config.TextColumn(ev.letter(n)),
        "baseline output": st.column_config.TextColumn("A output"),
        "candidate output": st.column_config.TextColumn(f"{ev.letter(n)} output"),
        "candidate failure": st.column_config.TextColumn(f"{ev.letter(n)} failure mode"),
        "baseline trace": st.column_config.LinkColumn("A trace", display_text="open"),
        "candidate trace": st.column_config.LinkColumn(f"{ev.letter(n)} trace", display_text="open"),
    },
)
keys = [d.key for d in shown]
selected = event.selection.rows if event is not None else []
if selected:
    st.session_state["experiments_item"] = keys[selected[0]]
if st.session_state.get("experiments_item") not in keys:
    st.session_state["experiments_item"] = keys[0]
key = st.selectbox("Item", keys, key="experiments_item", help="Or click a row of the table.")
d = next(x for x in shown if x.key == key)

# --- one item in both runs -------------------------------------------------------------------------
record = by_id[picked[0]]
name, _, version = str(record["dataset"]).rpartition("@")
try:
    item = data.experiment_dataset(ctx.data_dir, record["project"], name, int(version)).get(key)
except (LookupError, ValueError):
    item = None
with st.container(border=True):
    st.markdown(f"**Item {esc(key)}**")
    if item is not None:
        st.caption("Input")
        st.text(item.input or "-")
        st.caption("Expected output")
        st.text(item.expected_output if item.expected_output is not None else "- (none: checks did not apply)")
    else:
        st.caption("The dataset version is not in this lake: input and expected output cannot be shown.")
    cols = st.columns(2)
    for col, letter, side, project in ((cols[0], "A", d.a, projects[0]), (cols[1], ev.letter(n), d.b, projects[1])):
        with col:
            verdict = ev.VERDICTS[side.success]
            color = {"pass": "green", "fail": "red"}.get(verdict, "gray")
            mode = f" · {side.failure_mode}" if side.failure_mode else ""
            st.markdown(f"**{letter}** :{color}-badge[{verdict}{esc(mode)}]")
            st.caption(
                esc(f"{ev.check_marks(side.checks)} · cost {fmt_cost(side.cost_usd)} · {fmt_ms(side.duration_ms)}")
            )
            if side.error is not None:
                st.error(esc(side.error), icon=":material/error:")
            st.text(side.output if side.output is not None else "- (no output)")
            url = ev.trace_link(project, side)
            if url is not None:
                st.link_button(f"Open {letter}'s trace", url, icon=":material/account_tree:")
