"""Reports: the analytics reports as a chart, a table and a download; `compare` puts two prompt
versions, models, ... side by side (`spanlake report compare --by prompt_version --a v1 --b v2`)."""

import altair as alt
import polars as pl
import streamlit as st

from spanlake.analytics.reports.compare import BY
from spanlake.analytics.reports.registry import REPORTS
from spanlake.dashboard import data
from spanlake.dashboard.components import figure_columns, formatted
from spanlake.dashboard.context import Context, current

COMPARE = "compare"  # its own view: two values side by side
# compare: metric → axis format; charted per metric, `a` next to `b`
COMPARED = {"success_rate": ".0%", "cost_per_task": "$.4f", "cost_per_successful_task": "$.4f", "p50_ms": ",.0f",
            "p95_ms": ",.0f", "error_rate": ".0%", "validation_failure_rate": ".0%", "tasks": ",.0f"}  # fmt: skip
FACETS = {"prompt_version": "prompt_versions", "model": "models", "service": "services", "task_name": "task_names"}


def compare_chart(df: pl.DataFrame, by: str) -> alt.FacetChart:
    """One small bar chart per metric, `a` next to `b`, each with its own scale."""
    values = [
        {by: str(r[by]), "metric": m, "value": r[m]}
        for r in df.head(2).to_dicts()
        for m in COMPARED
        if m in r and r[m] is not None
    ]
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X(f"{by}:N", title=None, sort=None),
            y=alt.Y("value:Q", title=None),
            color=alt.Color(f"{by}:N", legend=None, sort=None),
            tooltip=[f"{by}:N", "metric:N", alt.Tooltip("value:Q", format=",.4~f")],
        )
        .properties(width=110, height=160)
        .facet(facet=alt.Facet("metric:N", sort=list(COMPARED), title=None), columns=4)
        .resolve_scale(y="independent")
    )


def compare_view(ctx: Context) -> None:
    c = st.columns([2, 3, 3])
    by = c[0].selectbox("Compare by", BY, key="reports_compare_by")
    seen = data.facets(ctx.data_dir, ctx.trace_filters()).get(FACETS.get(by, ""), [])
    if len(seen) >= 2:
        a = c[1].selectbox("A", seen, index=0, key=f"reports_compare_a_{by}")
        b = c[2].selectbox("B", seen, index=1, key=f"reports_compare_b_{by}")
    else:
        a = c[1].text_input("A", key=f"reports_compare_a_{by}", placeholder="e.g. v1").strip()
        b = c[2].text_input("B", key=f"reports_compare_b_{by}", placeholder="e.g. v2").strip()
    if not a or not b:
        st.info(f"Pick the two values of {by} to compare.")
        return
    df = data.compare(ctx.data_dir, ctx.filters(), by, a, b)
    if not df.head(2)["tasks"].fill_null(0).sum():
        st.info(f"No tasks with {by} {a} or {b} in this window.")
        return
    st.altair_chart(compare_chart(df, by), width="content")
    st.dataframe(df, hide_index=True, key="reports_compare_table", column_config=figure_columns(df))
    st.download_button(
        "Download CSV", df.write_csv(), file_name=f"spanlake-compare-{by}.csv", mime="text/csv", key="reports_dl"
    )


ctx = current()
st.title("Reports")
c = st.columns([2, 3, 2])
name = c[0].selectbox("Report", list(REPORTS), key="reports_name")
if name == COMPARE:
    compare_view(ctx)
    st.stop()
report = REPORTS[name]
dims, default, metric = report.dimensions, report.shown_group_by, report.chart
group_by = c[1].multiselect("Group by", dims, default=list(default), key=f"reports_group_{name}", disabled=not dims)
bucket = c[2].selectbox("Over time", ["none", "hour", "day", "week"], key="reports_bucket", disabled=not dims)
bucket_arg = None if bucket == "none" or not dims else bucket

df = data.report(ctx.data_dir, name, ctx.filters(), tuple(group_by), bucket_arg)
if not df.height:
    st.info("Nothing to report in this window.")
    st.stop()

keys = [k for k in df.columns if k in (*dims, "level", "validator", "pattern", "document_id", "data_source", "model")]
if metric is not None and metric in df.columns:
    chart_df = df.with_columns(
        pl.concat_str([pl.col(k).cast(pl.String).fill_null("-") for k in keys], separator=" / ").alias("group")
        if keys
        else pl.lit("all").alias("group")
    )
    values = chart_df.select("group", metric, *([bucket_arg] if bucket_arg in df.columns else [])).to_dicts()
    if bucket_arg in df.columns:
        for v in values:
            v[bucket_arg] = v[bucket_arg].isoformat() if v[bucket_arg] is not None else None
        chart = (
            alt.Chart(alt.Data(values=values))
            .mark_line(point=True)
            .encode(x=f"{bucket_arg}:T", y=f"{metric}:Q", color="group:N", tooltip=["group:N", f"{metric}:Q"])
        )
    else:
        chart = (
            alt.Chart(alt.Data(values=values))
            .mark_bar()
            .encode(x=f"{metric}:Q", y=alt.Y("group:N", sort="-x", title=None), tooltip=["group:N", f"{metric}:Q"])
        )
    st.altair_chart(chart, width="stretch")
st.dataframe(formatted(df), hide_index=True)
st.download_button("Download CSV", df.write_csv(), file_name=f"spanlake-{name}.csv", mime="text/csv", key="reports_dl")
