"""Overview: task figures of the window, their trend, and the change against the previous window."""

import streamlit as st

from spanlake.dashboard import budget_status, data
from spanlake.dashboard.components import fmt_cost, fmt_int, fmt_ms, fmt_pct, trend_chart
from spanlake.dashboard.context import current

ANY = "Any"

ctx = current()
st.title("Overview")
budgets = budget_status.load(ctx.data_dir, ctx.project)
for s in budgets.open_alerts:  # open alerts first: what needs someone now
    b, state = s.budget, s.state
    assert state is not None  # an open alert has a state
    name = budget_status.md_text(f"{b.project} / {b.name}" if ctx.project is None else b.name)
    what = "is firing" if state.status == "firing" else "has no data since it fired"
    box = st.error if state.severity == "critical" else st.warning
    box(
        f"Budget **{name}** {what} ({state.severity}): {budget_status.metric_name(b)}, "
        f"{budget_status.md_text(budget_status.describe(b, s.last))}. "
        f"[Open the traces that break it]({s.traces_url()}) · [All budgets](./budgets)",
        icon=":material/notifications_active:",
    )
for state in budgets.unknown_open:  # the budgets file does not declare it (or does not parse)
    (st.error if state.severity == "critical" else st.warning)(
        f"Budget **{budget_status.md_text(state.key)}** has an open {state.severity} alert. [All budgets](./budgets)",
        icon=":material/notifications_active:",
    )
facets = data.facets(ctx.data_dir, ctx.trace_filters())
c = st.columns(3)
service = c[0].selectbox("Service", [ANY, *facets["services"]], key="overview_service")
model = c[1].selectbox("Model", [ANY, *facets["models"]], key="overview_model")
version = c[2].selectbox("Prompt version", [ANY, *facets["prompt_versions"]], key="overview_prompt_version")
f = ctx.filters(
    service=None if service == ANY else service,
    model=None if model == ANY else model,
    prompt_version=None if version == ANY else version,
)
o = data.overview_of(ctx.data_dir, f)
cur = o.current
compare = ctx.since is not None and o.previous.get("tasks", 0) > 0


def delta(metric: str, fmt: str = "{:+,.0f}", scale: float = 1.0) -> str | None:
    change = o.change(metric) if compare else None
    return None if change is None else fmt.format(change * scale)


st.caption(f"{ctx.label}" + (" · change against the previous period of equal length" if compare else ""))
m = st.columns(4)
m[0].metric("Tasks", fmt_int(cur.get("tasks")), delta("tasks"))
m[1].metric("Success rate", fmt_pct(cur.get("success_rate")), delta("success_rate", "{:+.1f} pp", 100))
cost, unpriced = cur.get("task_cost_usd"), cur.get("task_unpriced_calls") or 0
# Unpriced calls go in the help and a caption below: beside the value they cut it off.
m[2].metric(
    "Cost",
    fmt_cost(cost, unpriced if cost is None else 0),
    delta("task_cost_usd", "{:+.4f}"),
    help=f"Calls without a price ({unpriced:,}) are not counted: their cost is unknown." if unpriced else None,
)
m[3].metric(
    "Cost per successful task",
    fmt_cost(cur.get("cost_per_successful_task")),
    delta("cost_per_successful_task", "{:+.4f}"),
    delta_color="inverse",
)
if unpriced:
    calls = f"{unpriced:,} unpriced call{'' if unpriced == 1 else 's'}"
    st.caption(f"Cost leaves out {calls} (`spanlake report unpriced` lists their models).")
m = st.columns(4)
m[0].metric("p50 latency", fmt_ms(cur.get("p50_ms")), delta("p50_ms", "{:+,.0f} ms"), delta_color="inverse")
m[1].metric("p95 latency", fmt_ms(cur.get("p95_ms")), delta("p95_ms", "{:+,.0f} ms"), delta_color="inverse")
m[2].metric("Error rate", fmt_pct(cur.get("error_rate")), delta("error_rate", "{:+.1f} pp", 100), delta_color="inverse")
m[3].metric(
    "Validation failure rate",
    fmt_pct(cur.get("validation_failure_rate")),
    delta("validation_failure_rate", "{:+.1f} pp", 100),
    delta_color="inverse",
)

if o.trend.height:
    st.subheader(f"Trend (per {o.bucket})")
    charts = [
        ("tasks", "Tasks", ",.0f"),
        ("success_rate", "Success rate", ".0%"),
        ("p95_ms", "p95 latency (ms)", ",.0f"),
        ("error_rate", "Error rate", ".0%"),
        ("validation_failure_rate", "Validation failure rate", ".0%"),
        ("task_cost_usd", "Cost ($)", ",.4f"),
    ]
    for i in range(0, len(charts), 3):
        cols = st.columns(3)
        for col, (metric, title, fmt) in zip(cols, charts[i : i + 3], strict=False):
            col.altair_chart(trend_chart(o.trend, metric, title, fmt), width="stretch")
    with st.expander("Figures per bucket"):
        st.dataframe(o.trend, hide_index=True)
else:
    st.info("No tasks in this window.")
