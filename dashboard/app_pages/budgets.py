"""Budgets: each budget's last figure against its thresholds, its trend with the thresholds
drawn, its state and alert history, failed deliveries, and a click through to its traces."""

import streamlit as st

from spanlake.analytics.budgets.definition import format_duration
from spanlake.dashboard import budget_status as bs
from spanlake.dashboard.components import fmt_int
from spanlake.dashboard.context import current

ctx = current()
st.title("Budgets")
st.caption(
    "Budgets are declared in `budgets.toml` in the data directory, with `spanlake budgets add`, or through "
    "`/api/v1/budgets`; the running server evaluates them every minute and alerts (docs/budgets.md, docs/alerts.md). "
    "The sidebar's time range does not apply here: each budget has its own window."
)

found = bs.load(ctx.data_dir, ctx.project)
statuses = found.statuses
if found.error:
    st.error(
        f"`budgets.toml` does not parse: {bs.md_text(found.error)}\n\nA running server keeps evaluating the "
        "budgets it read last; fix the file (or use `spanlake budgets add`) to change them.",
        icon=":material/error:",
    )
if found.unknown:
    st.subheader("Last known alert states" if found.error else "Alert states of budgets no longer in the file")
    st.dataframe(
        [{"budget": s.key, "state": s.status.replace("_", " "), "severity": s.severity or "",
          "alert open": s.alerting, "last figure": None if s.last is None else s.last.figure,
          "evaluated": bs.when(s.last.at if s.last else None), "why": s.last.reason if s.last else ""}
         for s in found.unknown],
        hide_index=True,
    )  # fmt: skip
if not statuses and not found.error:
    scope = f"project {ctx.project}" if ctx.project else "any project"
    st.info(
        f"No budgets for {scope} yet. Add one, e.g. "
        "`spanlake budgets add p95 --metric p95_latency --window 15m --warning 3000`.",
        icon=":material/info:",
    )

if statuses and all(s.state is None for s in statuses):
    st.info(
        "Not evaluated yet: the server (`spanlake up`) evaluates budgets every minute and keeps their states "
        "in `alerts/` of the data directory. `spanlake budgets check` evaluates them once, now.",
        icon=":material/schedule:",
    )
if statuses:
    m = st.columns(4)
    m[0].metric("Budgets", fmt_int(len(statuses)))
    m[1].metric("Firing", fmt_int(sum(1 for s in statuses if s.alerting)))
    m[2].metric("Pending", fmt_int(sum(1 for s in statuses if s.state is not None and s.state.status == "pending")))
    m[3].metric("No data", fmt_int(sum(1 for s in statuses if s.level == "no_data")))

for i, s in enumerate(statuses):
    b, spec, last = s.budget, s.budget.spec, s.last
    with st.expander(bs.header(s, with_project=ctx.project is None), expanded=s.alerting):
        c = st.columns(4)
        c[0].metric(
            f"{bs.upper_first(bs.metric_name(b))} ({format_duration(b.window)})",
            bs.fmt_value(spec.unit, last.figure if last else None),
            help=spec.summary,
        )
        c[1].metric("Warning at", bs.fmt_value(spec.unit, last.warning_at if last and b.baseline else b.warning))
        c[2].metric("Critical at", bs.fmt_value(spec.unit, last.critical_at if last and b.baseline else b.critical))
        c[3].metric(
            "Samples",
            fmt_int(last.samples if last else None),
            help=f"{spec.samples}; at least {b.min_samples} to judge",
        )
        facts = [bs.describe(b, last)]
        scope = bs.scope_text(b)
        facts.append(f"scope: {scope}" if scope else "scope: the whole project")
        if b.baseline is not None:
            facts.append(bs.relative_text(b, last))
        if b.for_:
            facts.append(f"fires after {format_duration(b.for_)} in breach")
        if last is not None:
            facts.append(f"evaluated {bs.when(last.at)}")
        st.caption(bs.md_text(" · ".join(facts)))
        if b.description:
            st.caption(bs.md_text(b.description))
        breached = s.level in ("warning", "critical")
        st.link_button(
            "Open the traces that break it" if breached else "Open its traces",
            s.traces_url(),
            icon=":material/list:",
            type="primary" if breached else "secondary",
            help=f"The Traces page over the budget's last window and scope: {bs.link_order(b)}.",
        )
        rows = bs.trend(ctx.data_dir, b.key)
        if any(r.get("figure") is not None for r in rows):
            title = f"{bs.metric_name(b)}, last {bs.TREND_HOURS} h (UTC)"
            st.altair_chart(bs.trend_chart(rows, b, title), width="stretch", key=f"budgets_trend_{i}")
        else:
            st.caption(f"No figure in the last {bs.TREND_HOURS} h to draw a trend of.")
        events = bs.history(ctx.data_dir, b.key, 20)
        if events:
            st.markdown("**Alert history**")
            st.dataframe(bs.history_rows(b, events), hide_index=True, width="stretch")

rows = bs.undelivered(ctx.data_dir, ctx.project)
if rows:
    st.subheader("Deliveries not made")
    st.caption("Notifications a destination did not accept: given up on after the retries, or still retrying.")
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={"last error": st.column_config.TextColumn(width=640),
                       **{k: st.column_config.Column(width="small") for k in ("status", "event", "attempts")}},
    )  # fmt: skip
