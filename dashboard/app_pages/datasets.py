"""Datasets: list them, their items; add every trace matching the Traces page's filter; freeze
a version; download it in every export format; reviewer agreement per label field."""

import polars as pl
import streamlit as st

from spanlake.analytics.dataset_export import FORMATS, ExportOptions, file_name
from spanlake.analytics.datasets import LabelFilter
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.dashboard import data, writes
from spanlake.dashboard.components import esc, fmt_pct
from spanlake.dashboard.context import current, reviewer
from spanlake.dashboard.labelling import filters_to_saved, wait_until

ANY = "Any"
LIST_COLUMNS = ["dataset", "description", "examples", "latest_version", "created_at", "created_by", "updated_at"]
ITEM_COLUMNS = ["trace_id", "span_id", "added_at", "added_by", "trace_start", "open"]
MAX_ADD = 10_000


def agreement_section(data_dir: str, project: str) -> None:
    """Reviewer agreement per label field, over the project's current human labels."""
    st.subheader("Reviewer agreement")
    st.caption("Current labels of human reviewers in this project (all time), per label field; see docs/datasets.md.")
    agree = data.agreement(data_dir, project, None, None)
    if agree.is_empty() or not agree["items"].sum():
        st.info("No item has labels from two or more reviewers yet.")
    shown = agree.with_columns(
        pl.col("percent_agreement").map_elements(fmt_pct, return_dtype=pl.String).alias("percent agreement"),
        *(pl.col(k).round(3).alias(k.replace("_", " ")) for k in ("cohen_kappa", "fleiss_kappa")),
    ).select("field", "items", "reviewers", "ratings", "percent agreement", "cohen kappa", "fleiss kappa")
    st.dataframe(shown, hide_index=True, key="datasets_agreement")


ctx = current()
st.title("Datasets")
if ctx.project is None:
    st.info("Pick a project in the sidebar: datasets, labels and agreement belong to one project.")
    st.stop()
project = ctx.project
author, why_not = reviewer(project)
listing = data.datasets(ctx.data_dir, project)
st.caption(f"{listing.height} dataset(s) in project {esc(project)}")
if listing.height:
    st.dataframe(
        listing.select(LIST_COLUMNS),
        hide_index=True,
        key="datasets_list",
        column_config={
            "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
            "updated_at": st.column_config.DatetimeColumn("changed (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )

with st.expander("Create a dataset", expanded=not listing.height):
    with st.form("datasets_create_form", border=False):
        c = st.columns([2, 4, 1])
        new_name = c[0].text_input("Name", key="datasets_new_name", placeholder="letters, digits, _ . -")
        description = c[1].text_input("Description", key="datasets_new_description")
        create = c[2].form_submit_button("Create", disabled=author is None)
    if create and author is not None:
        try:
            writes.create_dataset(project, new_name.strip(), author, description.strip() or None)
        except writes.WriteError as e:
            st.error(f"Not created: {e}")
        else:
            wait_until(lambda: data.dataset_exists(ctx.data_dir, project, new_name.strip()))
            data.clear_labels()
            st.session_state["datasets_pick"] = new_name.strip()
            st.rerun()
    if author is None:
        st.caption(esc(why_not))

names = data.datasets(ctx.data_dir, project)["dataset"].to_list()
if not names:
    agreement_section(ctx.data_dir, project)
    st.stop()
if st.session_state.get("datasets_pick") not in names:
    st.session_state["datasets_pick"] = names[0]
name = st.selectbox("Dataset", names, key="datasets_pick")

# --- items ---------------------------------------------------------------------------------------
items = data.dataset_items(ctx.data_dir, project, name)
st.subheader(f"Items ({items.height})")
if items.height:
    shown = items.with_columns(
        ("trace?trace=" + pl.col("trace_id") + f"&project={project}").alias("open"),
    )
    st.dataframe(
        shown.select(ITEM_COLUMNS),
        hide_index=True,
        key="datasets_items",
        column_config={
            "added_at": st.column_config.DatetimeColumn("added (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "trace_start": st.column_config.DatetimeColumn("trace start (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "open": st.column_config.LinkColumn("link", display_text="open"),
        },
    )
else:
    st.caption("No items yet: add traces from the trace view, or every trace matching a filter below.")

with st.expander("Add every trace matching the Traces page's filter"):
    saved = st.session_state.get("traces_filter")
    f = saved if isinstance(saved, TraceFilters) and saved.project == project else ctx.trace_filters()
    doc, _ = filters_to_saved(f)
    st.caption(esc(f"Filter: {ctx.label}; " + (", ".join(f"{k} = {v}" for k, v in doc.items()) or "no other filter")))
    c = st.columns([2, 2, 2, 2])
    verdict = c[0].selectbox("Verdict", [ANY, "pass", "fail"], key="datasets_add_verdict")
    labelled = c[1].toggle("Labelled only", key="datasets_add_labelled")
    level = c[2].selectbox("Add", ["trace", "span"], key="datasets_add_level", help="span: each labelled span")
    lf = LabelFilter(labelled=labelled, verdict=None if verdict == ANY else verdict, level=level)
    found = data.matching(ctx.data_dir, f, lf, MAX_ADD)
    st.caption(f"{found.height:,} item(s) match" + (f" (at most {MAX_ADD:,})" if found.height >= MAX_ADD else ""))
    label = f"Add {found.height:,} to {name}"
    if c[3].button(label, key="datasets_add_matching", disabled=not found.height or not author):
        before = items.height
        try:
            meta = {"filter": {**doc, "window": ctx.label, "verdict": lf.verdict, "labelled": labelled, "level": level}}
            n = writes.add_items(project, name, found.to_dicts(), author, meta)
        except writes.WriteError as e:
            st.error(f"Not added: {e}")
        else:
            wait_until(lambda: data.dataset_size(ctx.data_dir, project, name) > before)
            data.clear_labels()
            st.session_state["datasets_message"] = f"Sent {n} item(s) to {name}."
            st.rerun()
if st.session_state.get("datasets_message"):
    st.success(esc(st.session_state.pop("datasets_message")))

# --- versions and exports -----------------------------------------------------------------------
st.subheader("Frozen versions and exports")
nums = data.dataset_versions(ctx.data_dir, project, name)
c = st.columns([2, 6])
if c[0].button("Freeze a version", key="datasets_freeze", disabled=not author, help="The examples as of now"):
    try:
        frozen = writes.freeze_dataset(project, name, author)
    except writes.WriteError as e:
        st.error(f"Not frozen: {e}")
    else:
        state = "Froze new version" if frozen["created"] else "Nothing changed since"
        missing = f"; {frozen['missing']} item(s) left out (traces not in the lake)" if frozen["missing"] else ""
        st.session_state["datasets_frozen"] = f"{state} v{frozen['version']} ({frozen['examples']} examples){missing}."
        st.session_state["datasets_version"] = frozen["version"]
        st.rerun()
if st.session_state.get("datasets_frozen"):
    c[1].success(st.session_state.pop("datasets_frozen"))
if not nums:
    st.caption("Not frozen yet: freeze a version to export it.")
else:
    if st.session_state.get("datasets_version") not in nums:
        st.session_state["datasets_version"] = nums[-1]
    c = st.columns([2, 4, 6])
    version = c[0].selectbox("Version", nums, key="datasets_version", format_func=lambda n: f"v{n}")
    target = c[1].text_input("pytest target (package.module:function)", key="datasets_target").strip() or None
    try:
        opts = ExportOptions(target=target)
    except ValueError as e:
        st.error(str(e))
        opts, target = ExportOptions(), None
    cols = st.columns(4)
    for i, fmt in enumerate(FORMATS):
        cols[i % 4].download_button(
            fmt,
            data=lambda fmt=fmt: data.export(ctx.data_dir, project, name, version, fmt, target),
            file_name=file_name(name, version, fmt, opts),
            mime=FORMATS[fmt][1],
            key=f"datasets_dl_{fmt}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )
agreement_section(ctx.data_dir, project)
