"""An experiment as a `Side`: its items' verdicts (experiments.scoring.decide) with the cost and
duration the lake computed for them. An item the lake has no figures for (its trace did not
arrive in time) keeps no cost, and the duration the runner measured around the app call.

Also what the CLI (`spanlake experiment list/show/compare`), the API (/api/v1/experiments) and
the dashboard's Experiments page all show of experiments, computed here once: a summary row,
the detail with every item, and the comparison of two runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from spanlake.analytics.datasets import trace_url
from spanlake.experiments.compare import Comparison, compare_sides, comparison_dict, side_figures
from spanlake.experiments.scoring import decide
from spanlake.experiments.sides import Item, Side
from spanlake.experiments.store import Experiment, ExperimentError

Link = Callable[[str, Item], str | None]


def experiment_side(exp: Experiment, name: str | None = None) -> Side:
    """The experiment's finished items, keyed by dataset item id."""
    figures = exp.figures()
    items = []
    for item_id, r in exp.results().items():
        f = figures.get(item_id, {})
        success, mode = decide(r, f)
        duration = f.get("duration_ms") if f.get("duration_ms") is not None else r.get("wall_ms")
        items.append(
            Item(
                key=item_id,
                success=success,
                cost_usd=f.get("cost_usd"),
                duration_ms=duration,
                failure_mode=mode,
                checks=r.get("checks") or {},
                error=r.get("error"),
                trace_id=r.get("trace_id"),
                output=r.get("output"),
            )
        )
    return Side(name or exp.id, items)


def trace_links(experiments: list[Experiment]) -> Link:
    """link(side name, item) → the item's trace in the dashboard ($SPANLAKE_DASHBOARD_URL)."""
    projects = {e.id: e.record.get("trace_project") for e in experiments}

    def link(side: str, item: Item) -> str | None:
        project = projects.get(side)
        if item.trace_id is None or project is None:
            return None
        return trace_url(project, item.trace_id, None)

    return link


def dataset_label(exp: Experiment) -> str:
    ds = exp.record.get("dataset") or {}
    return f"{ds.get('name')}@{ds.get('version')}"


def meta_text(exp: Experiment) -> str:
    """The run metadata as `k=v k=v`."""
    return " ".join(f"{k}={v}" for k, v in (exp.record.get("meta") or {}).items())


def summary_row(exp: Experiment) -> dict[str, Any]:
    """One line of `spanlake experiment list`: dataset, app, metadata, status, items (done /
    in the dataset), success rate, cost per successful task, p95."""
    f = side_figures(experiment_side(exp))
    return {
        "id": exp.id,
        "project": exp.project,
        "dataset": dataset_label(exp),
        "app": exp.record.get("app"),
        "meta": meta_text(exp),
        "status": exp.status,
        "items": f"{f.items}/{(exp.record.get('dataset') or {}).get('examples')}",
        "success_rate": None if f.success_rate is None else round(f.success_rate, 4),
        "cost_per_successful_task": f.cost_per_successful_task,
        "p95_ms": None if f.p95_ms is None else round(f.p95_ms, 1),
        "created_at": exp.record.get("created_at"),
    }


def summary_rows(experiments: Iterable[Experiment]) -> list[dict[str, Any]]:
    """`summary_row` of each experiment (`Store.list()`: newest first); one whose results cannot
    be read is listed with status `damaged` and the reason in `error`."""
    rows = []
    for exp in experiments:
        try:
            rows.append(summary_row(exp) | {"error": None})
        except ExperimentError as e:
            empty = dict.fromkeys(("items", "success_rate", "cost_per_successful_task", "p95_ms"))
            rows.append(
                {"id": exp.id, "project": exp.project, "dataset": dataset_label(exp), "app": exp.record.get("app"),
                 "meta": meta_text(exp), "status": "damaged", **empty, "created_at": exp.record.get("created_at"),
                 "error": str(e)}
            )  # fmt: skip
    return rows


def item_rows(exp: Experiment, side: Side | None = None) -> list[dict[str, Any]]:
    """Every finished item: verdict, failure mode, checks, cost, duration, output (or error),
    trace id and link."""
    side = side or experiment_side(exp)
    link = trace_links([exp])
    return [
        {
            "item_id": i.key,
            "success": i.success,
            "failure_mode": i.failure_mode,
            "checks": dict(i.checks),
            "cost_usd": i.cost_usd,
            "duration_ms": None if i.duration_ms is None else round(i.duration_ms, 1),
            "output": i.output,
            "error": i.error,
            "trace_id": i.trace_id,
            "trace_url": link(exp.id, i),
        }
        for i in side.items
    ]


def detail(exp: Experiment) -> dict[str, Any]:
    """`spanlake experiment show --format json`: the record, aggregates, every item, and how
    many items the lake had figures for."""
    side = experiment_side(exp)
    return {
        "experiment": exp.record | {"status": exp.status},
        "figures": side_figures(side).__dict__,
        "items": item_rows(exp, side),
        "lake_figures": exp.figures_info(),
    }


def paired(a: Experiment, b: Experiment) -> bool:
    """Runs over the same dataset (project and name) are compared item by item."""
    return (a.project, (a.record.get("dataset") or {}).get("name")) == (
        b.project,
        (b.record.get("dataset") or {}).get("name"),
    )


def compare_experiments(a: Experiment, b: Experiment, confidence: float = 0.95) -> Comparison:
    """Candidate `b` against baseline `a` (experiments.compare.compare_sides), paired when both
    ran over the same dataset."""
    return compare_sides(experiment_side(a), experiment_side(b), paired=paired(a, b), confidence=confidence)


def comparison_json(a: Experiment, b: Experiment, confidence: float = 0.95) -> dict[str, Any]:
    """`spanlake experiment compare A B --format json`."""
    return comparison_dict(compare_experiments(a, b, confidence), trace_links([a, b]))
