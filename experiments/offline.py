"""An experiment as a `Side`: its items' verdicts (experiments.scoring.decide) with the cost and
duration the lake computed for them. An item the lake has no figures for (its trace did not
arrive in time) keeps no cost, and the duration the runner measured around the app call."""

from __future__ import annotations

from collections.abc import Callable

from spanlake.analytics.datasets import trace_url
from spanlake.experiments.scoring import decide
from spanlake.experiments.sides import Item, Side
from spanlake.experiments.store import Experiment


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


def paired(a: Experiment, b: Experiment) -> bool:
    """Two experiments over the same dataset (project and name) are compared item by item."""
    return (a.project, a.record["dataset"]["name"]) == (b.project, b.record["dataset"]["name"])


def trace_links(experiments: list[Experiment]) -> Callable[[str, Item], str | None]:
    """link(side name, item) → the item's trace in the dashboard ($SPANLAKE_DASHBOARD_URL)."""
    projects = {e.id: e.record.get("trace_project") for e in experiments}

    def link(side: str, item: Item) -> str | None:
        project = projects.get(side)
        if item.trace_id is None or project is None:
            return None
        return trace_url(project, item.trace_id, None)

    return link
