"""Traces: filter, sort and page the traces of the window; selecting a row opens it.

A link sets the filters it names once (analytics.traces.links: project, since, until, task,
service, model, provider, prompt_name, prompt_version, attr, sort, outcome), e.g. an alert's
link to the traces that broke a budget; the others start cleared."""

import polars as pl
import streamlit as st

from spanlake.analytics.traces.filters import MAX_PAGE, SORTS, Page, parse_judge
from spanlake.dashboard import data
from spanlake.dashboard.components import table
from spanlake.dashboard.context import current, link_in_url, link_key

ANY = "Any"
ERRORS = {ANY: None, "With errors": True, "Without errors": False}
COLUMNS = ["start_time", "name", "outcome", "judge", "duration_ms", "llm_calls", "models", "total_tokens", "cost_usd",
           "has_error", "service_name", "session_id", "project", "trace_id", "open"]  # fmt: skip


def parse_attributes(text: str) -> dict[str, str]:
    """`key = value` pairs, one per line."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


# widget key → the link's TraceFilters field it starts from
LINKED = {"traces_service": "service", "traces_model": "model", "traces_outcome": "outcome", "traces_task": "task_name",
          "traces_provider": "provider", "traces_prompt_name": "prompt_name",
          "traces_prompt_version": "prompt_version"}  # fmt: skip
CLEARED = ("traces_text", "traces_errors", "traces_min_ms", "traces_max_ms", "traces_min_cost", "traces_max_cost",
           "traces_judge")  # fmt: skip


def apply_link() -> None:
    """Set the filters from the URL's link, the first time this link is seen."""
    link = link_in_url()
    if link is None or st.session_state.get("traces_link") == link_key():
        return
    st.session_state["traces_link"] = link_key()
    f = link.filters
    for key, name in LINKED.items():
        st.session_state[key] = getattr(f, name) or ANY
    st.session_state["traces_attrs"] = "\n".join(f"{k} = {v}" for k, v in f.attributes.items())
    st.session_state["traces_sort"] = link.sort or "start_time"
    st.session_state["traces_desc"] = True
    for key in CLEARED:
        st.session_state.pop(key, None)
    for problem in link.problems:
        st.warning(f"Ignored from the link: {problem}")


def pick(where: object, label: str, values: list[str], key: str) -> str:
    """A selectbox of Any and `values` (and the value a link chose, when the window has none of it)."""
    chosen = st.session_state.get(key)
    options = [ANY, *values, *([chosen] if isinstance(chosen, str) and chosen not in (ANY, *values) else [])]
    return str(where.selectbox(label, options, key=key))  # type: ignore[attr-defined]


def chosen(value: str) -> str | None:
    return None if value == ANY else value


def judge_filter(text: str) -> str | None:
    """The judge filter typed (fail, pass, evaluator:fail), or None with a warning when it is not one."""
    if not text.strip():
        return None
    try:
        parse_judge(text)
    except ValueError as e:
        st.warning(f"Judge filter ignored: {e}")
        return None
    return text.strip()


ctx = current()
st.title("Traces")
apply_link()
facets = data.facets(ctx.data_dir, ctx.trace_filters())

with st.container(border=True):
    c = st.columns([3, 2, 2, 2, 2])
    text = c[0].text_input("Search inputs and outputs", key="traces_text", placeholder="text in prompts, answers, docs")
    service = pick(c[1], "Service", facets["services"], "traces_service")
    model = pick(c[2], "Model", facets["models"], "traces_model")
    outcome = c[3].selectbox("Outcome", [ANY, "success", "failure", "unknown"], key="traces_outcome")
    errors = c[4].selectbox("Errors", list(ERRORS), key="traces_errors")
    c = st.columns([3, 2, 2, 2, 2])
    task = pick(c[0], "Task", facets["task_names"], "traces_task")
    provider = pick(c[1], "Provider", facets["providers"], "traces_provider")
    prompt_name = pick(c[2], "Prompt", facets["prompt_names"], "traces_prompt_name")
    prompt_version = pick(c[3], "Prompt version", facets["prompt_versions"], "traces_prompt_version")
    c = st.columns([2, 2, 2, 2, 3])
    min_ms = c[0].number_input("Min latency (ms)", min_value=0.0, value=None, key="traces_min_ms")
    max_ms = c[1].number_input("Max latency (ms)", min_value=0.0, value=None, key="traces_max_ms")
    min_cost = c[2].number_input("Min cost ($)", min_value=0.0, value=None, format="%.4f", key="traces_min_cost")
    max_cost = c[3].number_input("Max cost ($)", min_value=0.0, value=None, format="%.4f", key="traces_max_cost")
    attrs = c[4].text_area("Attributes (key = value, one per line)", key="traces_attrs", height=68)
    c = st.columns([2, 2, 2, 6])
    sort = c[0].selectbox("Sort by", list(SORTS), key="traces_sort")
    descending = c[1].toggle("Descending", value=True, key="traces_desc")
    limit = int(c[2].selectbox("Rows per page", [25, 50, 100, 200, MAX_PAGE], index=1, key="traces_limit"))
    judge = c[3].text_input("Judge", key="traces_judge", placeholder="fail, pass, or evaluator:fail")

f = ctx.trace_filters(
    text=text.strip() or None,
    service=chosen(service),
    model=chosen(model),
    outcome=chosen(outcome),
    task_name=chosen(task),
    provider=chosen(provider),
    prompt_name=chosen(prompt_name),
    prompt_version=chosen(prompt_version),
    has_error=ERRORS[errors],
    min_ms=min_ms,
    max_ms=max_ms,
    min_cost=min_cost,
    max_cost=max_cost,
    attributes=parse_attributes(attrs),
    judge=judge_filter(judge),
)
st.session_state["traces_filter"] = f  # "the current traces filter" for the Datasets and Labelling pages
key = (f, sort, descending, limit)
if st.session_state.get("traces_key") != key:  # new filters: back to the first page
    st.session_state["traces_key"] = key
    st.session_state["traces_offset"] = 0
offset = st.session_state.get("traces_offset", 0)

result = data.trace_page(ctx.data_dir, f, Page(sort=sort, descending=descending, limit=limit, offset=offset))
rows = result.rows
pages = max(1, -(-result.total // limit))
st.caption(f"{result.total:,} traces · {ctx.label} · page {offset // limit + 1} of {pages}")

if rows.height:
    shown = table(rows).with_columns(
        ("trace?trace=" + pl.col("trace_id") + "&project=" + pl.col("project")).alias("open")
    )
    judged = shown["judge"].is_not_null().any()  # the column only when a judge labelled a trace shown
    event = st.dataframe(
        shown.select([c for c in COLUMNS if c != "judge" or judged]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="traces_table",
        column_config={
            "start_time": st.column_config.DatetimeColumn("start (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "duration_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f"),
            "cost_usd": st.column_config.NumberColumn("cost ($)", format="%.5f"),
            "open": st.column_config.LinkColumn("link", display_text="open"),
        },
    )
    selected = event.selection.rows if event is not None else []
    if selected:
        row = rows.row(selected[0], named=True)
        params = {"trace": row["trace_id"], "project": row["project"], "t": row["start_time"].isoformat()}
        st.switch_page("app_pages/trace.py", query_params=params)
else:
    st.info("No traces match. Widen the time range or clear filters.")

c = st.columns([1, 1, 8])
if c[0].button("Previous", disabled=offset == 0, key="traces_prev"):
    st.session_state["traces_offset"] = max(0, offset - limit)
    st.rerun()
if c[1].button("Next", disabled=not result.has_next, key="traces_next"):
    st.session_state["traces_offset"] = offset + limit
    st.rerun()
