"""The dashboard's only door to the data: cached calls into spanlake.analytics.traces.

Each query opens its own in-memory DuckDB over the Parquet files (analytics does that), so
nothing here holds a database file open and the collector is never blocked. The Analytics
object (price book) is a cached resource and is never mutated here; query results are
cached for TTL_S seconds with a bounded number of entries.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from spanlake.analytics import dataset_export, label_queue, labels
from spanlake.analytics import datasets as ds
from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.analytics.budgets.definition import BudgetError
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces import detail, overview, trace_list
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.dashboard import evaluator_view
from spanlake.evaluators import alignment as evaluator_alignment
from spanlake.evaluators.definition import Evaluator, EvaluatorError
from spanlake.evaluators.evaluators_file import EvaluatorsFile
from spanlake.experiments import offline
from spanlake.experiments.compare import Comparison
from spanlake.experiments.gate import GateResult, evaluate, parse_rules
from spanlake.experiments.items import DatasetItem, DatasetRef, load_items, resolve
from spanlake.experiments.store import Store
from spanlake.storage import datasets as stored
from spanlake.storage.label_schema import LabelSchema, LabelSchemas
from spanlake.storage.layout import DataDir
from spanlake.storage.saved_filters import SavedFilters

TTL_S = 30
MAX_ENTRIES = 64


@st.cache_resource(max_entries=4, show_spinner=False)
def analytics(data_dir: str) -> Analytics:
    """One Analytics (lake + price book) per data directory."""
    return Analytics(data_dir)


def projects(data_dir: str) -> list[str]:
    """Projects that have spans in the lake (from the partition folders; no query)."""
    root = DataDir(data_dir).lake / "spans"
    if not root.is_dir():
        return []
    return sorted(p.name.removeprefix("project=") for p in root.glob("project=*") if p.is_dir())


def has_lake(data_dir: str) -> bool:
    return Path(DataDir(data_dir).lake / "spans").is_dir()


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def trace_page(data_dir: str, f: TraceFilters, page: Page) -> trace_list.TracePage:
    return trace_list.list_traces(analytics(data_dir), f, page)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def facets(data_dir: str, f: TraceFilters) -> dict[str, list[str]]:
    return trace_list.facets(analytics(data_dir), f)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def trace(data_dir: str, trace_id: str, project: str | None, around: datetime | None) -> detail.TraceDetail | None:
    return detail.trace_detail(analytics(data_dir), trace_id, project, around)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def sessions(data_dir: str, f: TraceFilters, limit: int) -> pl.DataFrame:
    return trace_list.list_sessions(analytics(data_dir), f, limit)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def session_traces(data_dir: str, f: TraceFilters, session_id: str) -> pl.DataFrame:
    return trace_list.session_traces(analytics(data_dir), f, session_id)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def overview_of(data_dir: str, f: Filters) -> overview.Overview:
    return overview.overview(analytics(data_dir), f)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def report(data_dir: str, name: str, f: Filters, group_by: tuple[str, ...], bucket: str | None) -> pl.DataFrame:
    """One analytics report by name (analytics.reports.registry), from hourly rollups where up to date."""
    return run_report(analytics(data_dir), name, f, group_by, bucket=bucket)[0]


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def compare(data_dir: str, f: Filters, by: str, a: str, b: str) -> pl.DataFrame:
    """The compare report: tasks whose `by` is `a` versus `b`, and a `b - a` row."""
    return run_report(analytics(data_dir), "compare", f, by=by, a=a, b=b)[0]


# --- labels and datasets (written through spanlake.dashboard.writes; read here) -------------------


def label_schema(data_dir: str, project: str) -> LabelSchema:
    """The project's label schema (files under config/; LabelSchemas caches per folder change)."""
    return _schemas(data_dir).get(project)


@st.cache_resource(max_entries=4, show_spinner=False)
def _schemas(data_dir: str) -> LabelSchemas:
    return LabelSchemas(data_dir)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def label_history(data_dir: str, trace_id: str, project: str | None) -> pl.DataFrame:
    """Every label event of a trace and its spans, oldest first."""
    return labels.label_history(analytics(data_dir).lake, trace_id, project)


def label_seen(data_dir: str, trace_id: str, project: str | None, label_id: str) -> bool:
    """Whether the lake shows this label event yet (not cached: polled right after a write)."""
    return label_id in set(labels.label_history(analytics(data_dir).lake, trace_id, project)["label_id"].to_list())


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def agreement(data_dir: str, project: str, since: datetime | None, until: datetime | None) -> pl.DataFrame:
    """Reviewer agreement per label field (labels set in [since, until))."""
    result = labels.project_agreement(analytics(data_dir).lake, project, label_schema(data_dir, project), since, until)
    rows = [{k: v for k, v in r.as_dict().items() if k != "pairs"} for r in result.values()]
    return pl.DataFrame(rows, schema_overrides={"percent_agreement": pl.Float64, "cohen_kappa": pl.Float64,
                                                "fleiss_kappa": pl.Float64})  # fmt: skip


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def queue(data_dir: str, f: TraceFilters, author: str | None, limit: int) -> label_queue.Queue:
    """The labelling queue for `f`: progress and the next traces `author` has not labelled."""
    return label_queue.labelling_queue(analytics(data_dir), f, author=author, limit=limit)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def datasets(data_dir: str, project: str | None) -> pl.DataFrame:
    """Datasets: project, dataset, description, created, updated, examples, latest_version."""
    return stored.list_datasets(analytics(data_dir).lake, project)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def dataset_items(data_dir: str, project: str, name: str) -> pl.DataFrame:
    return stored.members(analytics(data_dir).lake, project, name)


def dataset_exists(data_dir: str, project: str, name: str) -> bool:
    """Uncached: polled right after a create."""
    return name in stored.list_datasets(analytics(data_dir).lake, project)["dataset"].to_list()


def dataset_size(data_dir: str, project: str, name: str) -> int:
    """Uncached: polled right after an add."""
    return stored.members(analytics(data_dir).lake, project, name).height


def dataset_has(data_dir: str, project: str, name: str, trace_id: str, span_id: str | None) -> bool:
    """Uncached: whether the item is a member yet."""
    items = stored.members(analytics(data_dir).lake, project, name)
    same_span = pl.col("span_id").is_null() if span_id is None else pl.col("span_id") == span_id
    return bool(items.filter((pl.col("trace_id") == trace_id) & same_span).height)


def dataset_versions(data_dir: str, project: str, name: str) -> list[int]:
    return stored.versions(analytics(data_dir).lake.data_dir, project, name)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def matching(data_dir: str, f: TraceFilters, lf: ds.LabelFilter, limit: int) -> pl.DataFrame:
    """Items (project, trace_id, span_id, trace_start) matching the trace list's filter and a label filter."""
    return ds.match_items(analytics(data_dir), f, lf, limit)


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def export(data_dir: str, project: str, name: str, version: int, fmt: str, target: str | None) -> bytes:
    """A frozen version in one format (frozen versions never change, so this is cached without a TTL)."""
    dd = analytics(data_dir).lake.data_dir
    v = stored.read_version(dd, project, name, version)
    if v is None:
        raise LookupError(f"dataset {name!r} has no version {version}")
    opts = dataset_export.ExportOptions(target=target)
    return dataset_export.export_bytes(stored.read_examples(dd, v), v.manifest, fmt, opts)


# --- experiments (files under <data-dir>/experiments/, written by `spanlake experiment run`) ------


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def experiments(data_dir: str, project: str | None) -> list[dict[str, Any]]:
    """Summary rows (experiments.offline.summary_row, with `trace_project`) of the experiments
    on `project`'s datasets or tracing into `project` (every one when None), newest first."""
    found = [e for e in Store(data_dir).list() if project in (None, e.project, e.record.get("trace_project"))]
    traces = {e.id: e.record.get("trace_project") for e in found}
    return [r | {"trace_project": traces[r["id"]]} for r in offline.summary_rows(found)]


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def experiment_comparison(data_dir: str, a: str, b: str, confidence: float) -> Comparison:
    """Candidate `b` against baseline `a`, as `spanlake experiment compare` computes it."""
    store = Store(data_dir)
    return offline.compare_experiments(store.get(a), store.get(b), confidence)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def experiment_gate(data_dir: str, a: str, b: str, rules_text: str) -> GateResult:
    """The release gate (`spanlake gate --baseline a --candidate b`) with rules given as TOML
    text; GateError for rules it cannot use."""
    store = Store(data_dir)
    ea, eb = store.get(a), store.get(b)
    try:
        budgets = BudgetsFile(data_dir).read()
    except (FileNotFoundError, BudgetError, OSError):
        budgets = None  # a `budget` rule then says no budgets file was read
    rules = parse_rules(rules_text, "gate rules")
    side_a, side_b = offline.experiment_side(ea), offline.experiment_side(eb)
    return evaluate(rules, side_a, side_b, paired=offline.paired(ea, eb), budgets=budgets)


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def experiment_dataset(data_dir: str, project: str, name: str, version: int) -> dict[str, DatasetItem]:
    """The items of a frozen dataset version by id (frozen versions never change: no TTL)."""
    dd = analytics(data_dir).lake.data_dir
    return {i.id: i for i in load_items(dd, resolve(dd, project, DatasetRef(name, version)))}


# --- evaluators (declared in <data-dir>/evaluators.toml; their results are judge labels) ----------


@st.cache_resource(max_entries=4, show_spinner=False)
def _evaluators_file(data_dir: str) -> EvaluatorsFile:
    return EvaluatorsFile(data_dir)


def evaluators(data_dir: str, project: str | None) -> tuple[list[Evaluator], str | None]:
    """The evaluators declared for `project` (every project's when None), current versions, and
    the evaluators file's problem when it does not parse (its last good set is then kept)."""
    file = _evaluators_file(data_dir)
    try:
        found = file.current().evaluators
    except (EvaluatorError, OSError) as e:
        return [], str(e)
    return [e for e in found if project is None or e.project == project], file.error


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def judge_results(data_dir: str, project: str | None, since: datetime | None, until: datetime | None) -> pl.DataFrame:
    """Current judge labels set in [since, until) as result rows (dashboard.evaluator_view.results)."""
    lake = analytics(data_dir).lake
    return evaluator_view.results(
        labels.current_labels(lake, project=project, source="judge", since=since, until=until)
    )


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def trace_judge_results(data_dir: str, trace_id: str, project: str | None) -> pl.DataFrame:
    """A trace's current judge results (the trace's and its spans')."""
    lake = analytics(data_dir).lake
    return evaluator_view.results(labels.current_labels(lake, project=project, source="judge", trace_ids=[trace_id]))


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def user_feedback(data_dir: str, project: str, trace_ids: tuple[str, ...]) -> pl.DataFrame:
    """End users' current feedback (source user_feedback) on these traces."""
    if not trace_ids:
        return pl.DataFrame()
    return labels.current_labels(analytics(data_dir).lake, project=project, source="user_feedback", trace_ids=trace_ids)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def evaluator_agreements(
    data_dir: str, project: str, since: datetime | None, until: datetime | None
) -> dict[str, evaluator_view.Agreement]:
    """Each evaluator version of `project` with results in [since, until) against people's current
    labels on the same items (evaluators.alignment), by EvaluatorSummary.key."""
    found = evaluator_alignment.project_alignment(analytics(data_dir).lake, project, since, until)
    return {
        evaluator_view.version_key(project, a.evaluator, a.version): evaluator_view.agreement(a.overall) for a in found
    }


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def evaluator_disagreements(
    data_dir: str, project: str, name: str, version: int | None, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """The items where the evaluator version and people differ, the latest judged first."""
    lake = analytics(data_dir).lake
    return evaluator_alignment.project_disagreements(lake, project, name, version, since, until)


def saved_filters(data_dir: str) -> SavedFilters:
    return SavedFilters(data_dir)


def clear_labels() -> None:
    """After a label or dataset change: forget what depends on labels and datasets."""
    for fn in (label_history, agreement, queue, datasets, dataset_items, matching, trace_page, trace):
        fn.clear()
    for fn in (judge_results, trace_judge_results, evaluator_agreements, evaluator_disagreements, user_feedback):
        fn.clear()


def clear() -> None:
    """Forget cached results (the Refresh button)."""
    for fn in (trace_page, facets, trace, sessions, session_traces, overview_of, report, compare):
        fn.clear()
    for fn in (experiments, experiment_comparison, experiment_gate):
        fn.clear()
    clear_labels()
