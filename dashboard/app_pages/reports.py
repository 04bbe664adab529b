"""Reports: the analytics reports as a chart, a table and a download."""

import altair as alt
import polars as pl
import streamlit as st

from spanlake.dashboard import data
from spanlake.dashboard.context import current

# report → (group-by choices, default group-by, metric charted)
REPORTS = {
    "latency": (("service", "model", "prompt_version", "name"), (), "p95_ms"),
    "cost": (("model", "provider", "service", "prompt_version"), ("model",), "cost_usd"),
    "tasks": (("task_name", "model", "prompt_version", "service", "outcome_source"), ("task_name",), "success_rate"),
    "validation": (("validator", "model", "prompt_version", "task_name"), ("validator",), "failure_rate"),
    "retrieval": (("data_source", "service", "name"), ("data_source",), "docs_per_query"),
    "validation_errors": ((), (), "occurrences"),
    "retrieved_documents": ((), (), "retrievals"),
    "unpriced": ((), (), "calls"),
}

ctx = current()
st.title("Reports")
c = st.columns([2, 3, 2])
name = c[0].selectbox("Report", list(REPORTS), key="reports_name")
dims, default, metric = REPORTS[name]
group_by = c[1].multiselect("Group by", dims, default=list(default), key=f"reports_group_{name}", disabled=not dims)
bucket = c[2].selectbox("Over time", ["none", "hour", "day", "week"], key="reports_bucket", disabled=not dims)
bucket_arg = None if bucket == "none" or not dims else bucket

df = data.report(ctx.data_dir, name, ctx.filters(), tuple(group_by), bucket_arg)
if not df.height:
    st.info("Nothing to report in this window.")
    st.stop()

keys = [k for k in df.columns if k in (*dims, "level", "validator", "pattern", "document_id", "data_source", "model")]
if metric in df.columns:
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
st.dataframe(df, hide_index=True)
st.download_button("Download CSV", df.write_csv(), file_name=f"spanlake-{name}.csv", mime="text/csv", key="reports_dl")
