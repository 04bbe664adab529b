"""Budgets: each budget's last figure against its thresholds, its trend with the thresholds
drawn, its state and alert history, failed deliveries, and a click through to its traces."""

import streamlit as st

from spanlake.analytics.budgets.definition import format_duration
from spanlake.dashboard import budget_status
from spanlake.dashboard.components import fmt_cost, fmt_int, fmt_ms, fmt_pct
from spanlake.dashboard.context import current

ctx = current()
st.title("Budgets")
st.caption(
    "Budgets are declared in `budgets.toml` in the data directory, with `spanlake budgets add`, or through "
    "`/api/v1/budgets`; the server evaluates them every minute (docs/budgets.md)."
)


def fmt(unit: str, v: float | None) -> str:
    if v is None:
        return "—"
    return {"ms": fmt_ms, "usd": fmt_cost, "fraction": fmt_pct}.get(unit, lambda x: f"{x:,.4g}")(v)


statuses, error = budget_status.load(ctx.data_dir, ctx.project)
if error:
    st.error(f"The budgets file does not parse, so nothing is evaluated until it is fixed: {error}")
if not statuses and not error:
    st.info("No budgets yet. Add one: `spanlake budgets add p95 --metric p95_latency --window 15m --warning 3000`.")

firing = [s for s in statuses if s.firing]
if statuses:
    m = st.columns(3)
    m[0].metric("Budgets", fmt_int(len(statuses)))
    m[1].metric("Firing", fmt_int(len(firing)))
    m[2].metric("No data", fmt_int(sum(1 for s in statuses if s.state is not None and s.state.status == "no_data")))

for s in statuses:
    b, spec = s.budget, s.budget.spec
    last = s.state.last if s.state is not None else None
    icon = budget_status.LEVEL_ICON.get(s.level, "⚪")
    scope = ", ".join(f"{k} {getattr(b, k)}" for k in ("task", "service", "model", "prompt_version") if getattr(b, k))
    header = f"{icon} {b.project} / {b.name} · {b.metric}{f' ({b.step})' if b.step != 'task' else ''} · {s.status}"
    with st.expander(header, expanded=s.firing):
        c = st.columns(4)
        c[0].metric("Figure", fmt(spec.unit, last.figure if last else None), help=spec.summary)
        c[1].metric("Warning at", fmt(spec.unit, last.warning_at if last else b.warning))
        c[2].metric("Critical at", fmt(spec.unit, last.critical_at if last else b.critical))
        c[3].metric("Samples", fmt_int(last.samples if last else None), help=f"{spec.samples}; min {b.min_samples}")
        window = format_duration(b.window)
        st.caption(
            f"Window {window}{f' · scope: {scope}' if scope else ''}"
            + (
                f" · baseline {b.baseline.text} ({fmt(spec.unit, last.baseline if last else None)})"
                if b.baseline
                else ""
            )
            + (f" · {last.reason}" if last else "")
        )
        st.link_button("Open the traces that break it", s.traces_url(), icon=":material/list:")
        rows = budget_status.trend(ctx.data_dir, b.key)
        if rows:
            st.altair_chart(budget_status.trend_chart(rows, f"{b.metric} (last 24 h)"), width="stretch")
        events = budget_status.history(ctx.data_dir, b.key, 20)
        if events:
            st.markdown("**Alert history**")
            st.dataframe(
                [
                    {
                        "at": e.get("at"),
                        "event": e.get("kind"),
                        "to": e.get("to_status"),
                        "severity": e.get("severity"),
                        "notified": e.get("notify"),
                        "why": e.get("reason"),
                    }
                    for e in events
                ],
                hide_index=True,
            )

mine = budget_status.of_project(ctx.project)
failed = [d for d in budget_status.failed_deliveries(ctx.data_dir) if mine(d)]
pending = [d for d in budget_status.pending_deliveries(ctx.data_dir) if mine(d)]
if failed or pending:
    st.subheader("Deliveries not made")
    st.dataframe(
        [
            {"status": status, "destination": d.destination, "budget": d.key, "event": d.kind,
             "attempts": d.attempts, "last error": d.last_error}
            for status, group in (("failed", failed), ("pending", pending))
            for d in group
        ],
        hide_index=True,
    )  # fmt: skip
