"""The dashboard's only door to the data: cached calls into spanlake.analytics.explore.

Each query opens its own in-memory DuckDB over the Parquet files (analytics does that), so
nothing here holds a database file open and the collector is never blocked. The Analytics
object (price book) is a cached resource and is never mutated here; query results are
cached for TTL_S seconds with a bounded number of entries.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import streamlit as st

from spanlake.analytics import reports
from spanlake.analytics.engine import Analytics
from spanlake.analytics.explore import detail, overview, traces
from spanlake.analytics.explore.filters import Page, TraceFilters
from spanlake.analytics.query import Filters
from spanlake.storage.layout import DataDir

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
def trace_page(data_dir: str, f: TraceFilters, page: Page) -> traces.TracePage:
    return traces.list_traces(analytics(data_dir), f, page)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def facets(data_dir: str, f: TraceFilters) -> dict[str, list[str]]:
    return traces.facets(analytics(data_dir), f)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def trace(data_dir: str, trace_id: str, project: str | None, around: datetime | None) -> detail.TraceDetail | None:
    return detail.trace_detail(analytics(data_dir), trace_id, project, around)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def sessions(data_dir: str, f: TraceFilters, limit: int) -> pl.DataFrame:
    return traces.list_sessions(analytics(data_dir), f, limit)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def session_traces(data_dir: str, f: TraceFilters, session_id: str) -> pl.DataFrame:
    return traces.session_traces(analytics(data_dir), f, session_id)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def overview_of(data_dir: str, f: Filters) -> overview.Overview:
    return overview.overview(analytics(data_dir), f)


@st.cache_data(ttl=TTL_S, max_entries=MAX_ENTRIES, show_spinner=False)
def report(data_dir: str, name: str, f: Filters, group_by: tuple[str, ...], bucket: str | None) -> pl.DataFrame:
    """One analytics report by name (see spanlake.analytics.reports)."""
    fn = getattr(reports, name)
    if name in ("validation_errors", "retrieved_documents", "unpriced"):
        return fn(analytics(data_dir), f)
    return fn(analytics(data_dir), f, group_by, bucket=bucket)


def clear() -> None:
    """Forget cached results (the Refresh button)."""
    for fn in (trace_page, facets, trace, sessions, session_traces, overview_of, report):
        fn.clear()
