"""The label form, the label history and "add to dataset", shared by the trace view and the
labelling queue. Labels are written through spanlake.dashboard.writes (the collector's API);
everything a label holds is shown as text (dataframe cells, st.text), never as markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import streamlit as st

from spanlake.analytics.traces.filters import TraceFilters
from spanlake.dashboard import data, writes
from spanlake.dashboard.components import esc
from spanlake.dashboard.context import current
from spanlake.storage.label_schema import LabelSchema

NO_MODE = "(none)"
VERDICTS = ["pass", "fail"]
VISIBLE_WAIT_S = 5.0  # wait this long for a change to reach the lake (the collector flushes about every second)
HISTORY_COLUMNS = ["created_at", "target", "source", "author", "verdict", "failure_mode", "score", "comment",
                   "expected_output"]  # fmt: skip
NEW_DATASET = "New dataset…"
# TraceFilters fields a saved filter keeps (the window is kept as its length, range_s).
SAVED_FIELDS = ("service", "model", "outcome", "has_error", "min_ms", "max_ms", "min_cost", "max_cost", "text",
                "task_name", "prompt_version", "session_id")  # fmt: skip


def fields_of(
    verdict: str | None, failure_mode: str | None, score: float | None, note: str, expected: str
) -> dict[str, Any]:
    """The label fields a form sets (None for what it leaves empty)."""
    return {
        "verdict": verdict if verdict in VERDICTS else None,
        "failure_mode": None if failure_mode in (None, NO_MODE) else failure_mode,
        "score": None if score is None else float(score),
        "comment": note if note.strip() else None,
        "expected_output": expected if expected.strip() else None,
    }


def label_form(
    key: str, schema: LabelSchema, shortcuts: bool = False, defaults: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """A label form; (action, fields) when submitted: action is `save` (Alt+Enter, or Ctrl+Enter
    in a text box: Streamlit submits a form with it, so it is not also a shortcut, which would
    save twice), or `pass`/`fail` from the quick buttons (`shortcuts`: Alt+P, Alt+F)."""
    d = defaults or {}
    with st.form(key, clear_on_submit=False, border=True):
        c = st.columns([2, 3, 2])
        verdict = c[0].radio("Verdict", VERDICTS, index=None, horizontal=True, key=f"{key}_verdict")
        modes = [NO_MODE, *schema.failure_modes]
        mode = c[1].selectbox("Failure mode", modes, index=modes.index(d.get("failure_mode") or NO_MODE)
                              if (d.get("failure_mode") or NO_MODE) in modes else 0, key=f"{key}_mode")  # fmt: skip
        lo, hi = schema.score_min, schema.score_max
        score = c[2].number_input(
            "Score" + (f" ({lo:g} to {hi:g})" if lo is not None and hi is not None else ""),
            min_value=lo,
            max_value=hi,
            value=None,
            step=1.0,
            key=f"{key}_score",
        )
        note = st.text_area("Note", key=f"{key}_note", height=80, max_chars=64 * 1024)
        expected = st.text_area("Expected output (the corrected answer)", key=f"{key}_expected", height=80)
        row = st.container(horizontal=True)
        action = None
        if row.form_submit_button("Save label", type="primary", shortcut="Alt+Enter", key=f"{key}_save"):
            action = "save"
        if shortcuts:
            if row.form_submit_button("Pass & next", shortcut="Alt+P", key=f"{key}_pass"):
                action = "pass"
            if row.form_submit_button("Fail & next", shortcut="Alt+F", key=f"{key}_fail"):
                action = "fail"
    if action is None:
        return None
    fields = fields_of(verdict, mode, score, note or "", expected or "")
    if action in VERDICTS:
        fields["verdict"] = action
    return action, fields


def save_label(
    project: str,
    trace_id: str,
    span_id: str | None,
    author: str,
    fields: Mapping[str, Any],
    schema: LabelSchema,
    metadata: Mapping[str, Any] | None = None,
) -> str | None:
    """Send a label and wait (briefly) until the lake shows it; its id, or None after showing why not."""
    if all(v is None for v in fields.values()):
        st.error("Set at least one of verdict, failure mode, score, note or expected output.")
        return None
    problem = schema.problem({**fields, "source": "human"})
    if problem:
        st.error(f"Not saved: {problem}")
        return None
    try:
        label_id = writes.post_label(project, trace_id, span_id, author, fields, metadata)
    except writes.WriteError as e:
        st.error(f"Not saved: {e}")
        return None
    wait_until(lambda: data.label_seen(_data_dir(), trace_id, project, label_id))
    data.clear_labels()
    return label_id


def relevance_form(project: str, trace_id: str, span_id: str, doc_ids: list[str], author: str, key: str) -> str | None:
    """Judge which of a retrieval span's documents are relevant (a label with `metadata.relevant`;
    the ones not ticked are judged not relevant). Its label id once saved, else None."""
    with st.form(key):
        hint = "The others are judged not relevant. The latest judgment of a span counts."
        chosen = st.multiselect("Relevant documents", doc_ids, key=f"{key}_relevant", help=hint)
        if not st.form_submit_button("Save relevance", key=f"{key}_save"):
            return None
    relevant = {d: d in chosen for d in doc_ids}
    try:
        label_id = writes.post_label(project, trace_id, span_id, author, {}, {"relevant": relevant, "via": "dashboard"})
    except writes.WriteError as e:
        st.error(f"Not saved: {e}")
        return None
    wait_until(lambda: data.label_seen(_data_dir(), trace_id, project, label_id))
    data.clear_labels()
    return label_id


def _data_dir() -> str:
    return current().data_dir


def wait_until(check: Callable[[], bool], timeout: float = VISIBLE_WAIT_S) -> bool:
    """Poll `check` until it holds (a change reaches the lake after the collector's next flush)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def history_table(history: pl.DataFrame, span_names: Mapping[str, str]) -> pl.DataFrame:
    """Label events newest first, with what each labels (the trace, or a span by name)."""
    if not history.height:
        return pl.DataFrame(schema={c: pl.String for c in HISTORY_COLUMNS})
    target = [
        "trace" if s is None else f"span {span_names.get(s, '')} ({s})".replace("  ", " ") for s in history["span_id"]
    ]
    return (
        history.with_columns(pl.Series("target", target, dtype=pl.String))
        .sort("created_at", descending=True, maintain_order=True)
        .select(HISTORY_COLUMNS)
    )


def show_history(history: pl.DataFrame, span_names: Mapping[str, str], key: str) -> None:
    table = history_table(history, span_names)
    if not table.height:
        st.caption("No labels yet.")
        return
    st.dataframe(
        table,
        hide_index=True,
        key=key,
        column_config={"created_at": st.column_config.DatetimeColumn("set at (UTC)", format="YYYY-MM-DD HH:mm:ss")},
    )


def add_to_dataset(
    project: str, trace_id: str, span_id: str | None, start: datetime | None, author: str | None
) -> None:
    """Pick (or create) a dataset of the project and add this trace or span to it."""
    names = data.datasets(_data_dir(), project)["dataset"].to_list()
    with st.form("trace_dataset_form", border=True):
        c = st.columns([3, 3, 2])
        choice = c[0].selectbox("Dataset", [*names, NEW_DATASET], key="trace_dataset_pick")
        new_name = c[1].text_input("New dataset name", key="trace_dataset_new", placeholder="e.g. refunds-failures")
        go = c[2].form_submit_button("Add to dataset")
    if not go:
        return
    name = new_name.strip() if choice == NEW_DATASET else choice
    if not name:
        st.error("Name the new dataset.")
        return
    try:
        if choice == NEW_DATASET:
            writes.create_dataset(project, name, author)
        writes.add_items(project, name, [{"trace_id": trace_id, "span_id": span_id, "trace_start": start}], author)
    except writes.WriteError as e:
        st.error(f"Not added: {e}")
        return

    wait_until(lambda: data.dataset_has(_data_dir(), project, name, trace_id, span_id))
    data.clear_labels()
    st.success(f"Added {'span ' + span_id if span_id else 'the trace'} to dataset {esc(name)}.")


# --- saved filters ----------------------------------------------------------------------------


def filters_to_saved(f: TraceFilters) -> tuple[dict[str, Any], float | None]:
    """A trace filter as a saved filter's JSON, and its window as a length in seconds."""
    doc = {k: getattr(f, k) for k in SAVED_FIELDS if getattr(f, k) is not None}
    if f.attributes:
        doc["attributes"] = dict(f.attributes)
    range_s = (f.until - f.since).total_seconds() if f.since and f.until else None
    return doc, range_s


def saved_to_filters(doc: Mapping[str, Any], project: str, now: datetime | None = None) -> TraceFilters:
    """A saved filter as the trace list's filter, its window ending now."""
    now = now or datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)  # cache-friendly
    saved = doc.get("filters") or {}
    kw = {k: saved[k] for k in SAVED_FIELDS if saved.get(k) is not None}
    range_s = doc.get("range_s")
    since = now - timedelta(seconds=float(range_s)) if range_s else None
    return TraceFilters(
        since=since, until=now if since else None, project=project, attributes=saved.get("attributes") or {}, **kw
    )
