"""Cost, duration and outcome of each item, read from the lake with the production analytics.

After a run, the items' traces reach the lake through the running spanlake (OTLP → WAL →
Parquet, usually within seconds). `collect_figures` polls the task-list report
(analytics.reports.tasks.task_list) filtered by the experiment's attribute until every
finished item's task is there, or `wait_s` has passed. An item's trace may hold tasks the
app opened itself (`sl.task(...)` inside the app): the item's cost and tokens are those of
every task of its trace (each span counted once), its duration and outcome those of the
runner's task, and `app_outcome` says whether one of the app's own tasks failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from spanlake.analytics.reports.tasks import task_list
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.sdk import attributes as A

POLL_S = 0.5
MARGIN = timedelta(minutes=10)  # around the run's first start and last finish (clock skew, queueing)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _sum(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def read_figures(
    an: Analytics, experiment_id: str, trace_project: str, results: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Figures of the items whose task is in the lake now, by item id."""
    wanted = {r["trace_id"]: (item_id, r.get("span_id")) for item_id, r in results.items() if r.get("trace_id")}
    if not wanted:
        return {}
    starts = [t for r in results.values() if (t := _time(r.get("started_at")))]
    ends = [t for r in results.values() if (t := _time(r.get("finished_at")))]
    filters = Filters(
        since=min(starts) - MARGIN if starts else None,
        until=max(ends) + MARGIN if ends else None,
        project=trace_project,
        attributes={A.EXPERIMENT_ID: experiment_id},
    )
    rows = task_list(an, filters, sort="start", limit=10 * len(wanted) + 1000).to_dicts()
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["trace_id"] in wanted:
            by_trace.setdefault(row["trace_id"], []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for trace_id, tasks in by_trace.items():
        item_id, span_id = wanted[trace_id]
        ours = next((t for t in tasks if t["span_id"] == span_id), None)
        if ours is None:
            continue  # the runner's task span has not arrived yet
        inner = [t for t in tasks if t is not ours]
        figure = {
            "cost_usd": _sum([t["cost_usd"] for t in tasks]),
            "duration_ms": ours["duration_ms"],
            "outcome": ours["outcome"],
            "outcome_source": ours["outcome_source"],
            "llm_calls": _sum([t["llm_calls"] for t in tasks]),
            "unpriced_calls": _sum([t["unpriced_calls"] for t in tasks]),
            "input_tokens": _sum([t["input_tokens"] for t in tasks]),
            "output_tokens": _sum([t["output_tokens"] for t in tasks]),
            "model": ours["model"] or next((t["model"] for t in inner if t["model"]), None),
            "tasks": len(tasks),
        }
        failed = [t for t in inner if t["outcome"] == "failure"]
        if failed:
            figure["app_outcome"], figure["app_reason"] = "failure", failed[0]["outcome_reason"]
        elif inner and all(t["outcome"] == "success" for t in inner):
            figure["app_outcome"] = "success"
        out[item_id] = figure
    return out


def collect_figures(
    an: Analytics,
    experiment_id: str,
    trace_project: str,
    results: Mapping[str, Mapping[str, Any]],
    wait_s: float,
    on_poll: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Poll until every item with a trace has its figures (or `wait_s` passed); returns the
    figures by item id and how many items were expected."""
    expected = sum(1 for r in results.values() if r.get("trace_id"))
    deadline = time.monotonic() + max(0.0, wait_s)
    while True:
        figures = read_figures(an, experiment_id, trace_project, results)
        if on_poll is not None:
            on_poll(len(figures), expected)
        if len(figures) >= expected or time.monotonic() >= deadline:
            return figures, expected
        time.sleep(POLL_S)
