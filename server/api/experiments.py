"""Experiments over HTTP: the runs of `spanlake experiment run`, read from `<data-dir>/experiments/`
(docs/experiments.md).

    GET /api/v1/experiments?project=P                    every experiment, newest first
                                                         (`spanlake experiment list --format json`)
    GET /api/v1/experiments/compare?a=A&b=B&project=P&confidence=0.95
                                                         candidate B against baseline A
                                                         (`spanlake experiment compare A B --format json`)
    GET /api/v1/experiments/{id}?project=P               the record, aggregates and every item
                                                         (`spanlake experiment show ID --format json`)

Each answer is computed by spanlake.experiments.offline, as the CLI's is, so the two agree to
the digit. An experiment belongs to its dataset's project: a read key of that project reads it
(server.api.scope pins the project; another project's experiment is a 404). Reads run in the
query workers: an experiment may hold 10,000 items, and a comparison draws bootstrap intervals.
No `from __future__ import annotations` here: FastAPI resolves the route signatures at runtime.
"""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from spanlake.collector.auth import Principal
from spanlake.experiments import offline
from spanlake.experiments.store import ID_RE, Experiment, ExperimentError, NoSuchExperiment, Store
from spanlake.server.api.common import ApiContext, jsonable, project_for
from spanlake.server.api.problems import Conflict, NotFound, responses

EXAMPLE_A, EXAMPLE_B = "exp-20261205-153012-ab12", "exp-20261205-154501-9f3c"  # as in docs/experiments.md
ExperimentId = Annotated[str, PathParam(pattern=ID_RE.pattern, description="An experiment id", examples=[EXAMPLE_B])]
Confidence = Annotated[float, Query(ge=0.5, le=0.999, description="Of every interval (as --confidence)")]


class Open(BaseModel):
    """Documented fields; any other the CLI's JSON has passes through."""

    model_config = ConfigDict(extra="allow")


class ExperimentRow(Open):
    id: str
    project: str
    dataset: str = Field(description="NAME@VERSION")
    app: str | None
    meta: str = Field(description="The run metadata as key=value pairs")
    status: str = Field(description="running, interrupted, finished, failed, or damaged (see error)")
    items: str | None = Field(description="Items with a result / items in the dataset version")
    success_rate: float | None
    cost_per_successful_task: float | None
    p95_ms: float | None
    created_at: str | None
    error: str | None = Field(description="Why a damaged experiment's results cannot be read")


class ExperimentsOut(BaseModel):
    project: str | None
    experiments: list[ExperimentRow]


class FiguresOut(Open):
    """One run's aggregates (experiments.compare.Figures)."""

    name: str
    items: int
    successes: int
    failures: int
    undecided: int
    errors: int
    success_rate: float | None
    success_low: float | None
    success_high: float | None
    total_cost: float | None
    cost_per_task: float | None
    cost_per_successful_task: float | None
    p50_ms: float | None
    p95_ms: float | None
    failure_modes: dict[str, int]


class ItemOut(Open):
    item_id: str | None
    success: bool | None
    failure_mode: str | None
    checks: dict[str, bool | None]
    cost_usd: float | None
    duration_ms: float | None
    output: str | None
    error: str | None
    trace_id: str | None
    trace_url: str | None


class ExperimentOut(BaseModel):
    experiment: dict[str, Any] = Field(description="The record (experiment.json) with the current status")
    figures: FiguresOut
    items: list[ItemOut]
    lake_figures: dict[str, Any] = Field(description="How many items the lake had cost and latency for")


class DeltaOut(Open):
    metric: str
    kind: str = Field(description="difference (b - a) or ratio (b / a)")
    estimate: float | None
    low: float | None
    high: float | None
    note: str | None


class SideItemOut(Open):
    success: bool | None
    failure_mode: str | None
    output: str | None
    error: str | None
    cost_usd: float | None
    duration_ms: float | None
    trace_id: str | None
    trace_url: str | None


class DiffOut(BaseModel):
    item_id: str
    a: SideItemOut
    b: SideItemOut


class ComparisonOut(BaseModel):
    a: FiguresOut
    b: FiguresOut
    paired: bool = Field(description="Same dataset: compared item by item (else as two samples)")
    confidence: float
    deltas: dict[str, DeltaOut]
    only_in_a: int
    only_in_b: int
    regressed: list[DiffOut] = Field(description="Passed in a, fail in b")
    improved: list[DiffOut] = Field(description="Failed in a, pass in b")
    changed_output: list[DiffOut] = Field(description="Same verdict, different output")


def _relative(store: Store, message: str) -> str:
    """A message naming files relative to the data directory (the server's paths stay private)."""
    return message.replace(str(store.root.parent) + "/", "")


def _damaged(store: Store, e: ExperimentError) -> Conflict:
    """A damaged experiment: 409, naming the file and line."""
    return Conflict(_relative(store, str(e)))


def _get(store: Store, experiment_id: str, project: str | None) -> Experiment:
    try:
        return store.get(experiment_id, project)
    except NoSuchExperiment:
        where = f" in project {project!r}" if project is not None else ""
        raise NotFound(f"no experiment {experiment_id}{where}") from None
    except ExperimentError as e:
        raise _damaged(store, e) from None


def list_experiments(root: str, project: str | None) -> list[dict[str, Any]]:
    """The summary rows; runs in a query worker."""
    store = Store(root)
    rows = offline.summary_rows(store.list(project))
    for row in rows:
        if row["error"] is not None:
            row["error"] = _relative(store, row["error"])
    return jsonable(rows)  # type: ignore[no-any-return]


def show_experiment(root: str, project: str | None, experiment_id: str) -> dict[str, Any]:
    """One experiment with every item; runs in a query worker."""
    store = Store(root)
    exp = _get(store, experiment_id, project)
    try:
        return jsonable(offline.detail(exp))  # type: ignore[no-any-return]
    except ExperimentError as e:
        raise _damaged(store, e) from None


def compare_experiments(root: str, project: str | None, a: str, b: str, confidence: float) -> dict[str, Any]:
    """The comparison of two experiments; runs in a query worker."""
    store = Store(root)
    ea, eb = _get(store, a, project), _get(store, b, project)
    try:
        return jsonable(offline.comparison_json(ea, eb, confidence))  # type: ignore[no-any-return]
    except ExperimentError as e:
        raise _damaged(store, e) from None


def make_experiments_router(ctx: ApiContext) -> APIRouter:
    """Routes /api/v1/experiments."""
    router = APIRouter(prefix="/api/v1/experiments", tags=["experiments"])
    reader = Depends(ctx.principal("read"))
    root = str(Path(ctx.data_dir.root))
    one_errors = responses(400, 401, 403, 404, 409, 422, 429)

    @router.get("", response_model=ExperimentsOut, responses=responses(400, 401, 403, 422, 429))
    async def experiments(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The project's experiments (every project's with authentication off and none named),
        newest first: dataset, app, metadata, status, success rate, cost per successful task, p95."""
        p = project_for(principal, project)
        return {"project": p, "experiments": await ctx.query(list_experiments, root, p)}

    @router.get("/compare", response_model=ComparisonOut, responses=one_errors)
    async def compare(
        principal: Annotated[Principal | None, reader],
        a: Annotated[str, Query(pattern=ID_RE.pattern, description="The baseline's id", examples=[EXAMPLE_A])],
        b: Annotated[str, Query(pattern=ID_RE.pattern, description="The candidate's id", examples=[EXAMPLE_B])],
        project: str | None = None,
        confidence: Confidence = 0.95,
    ) -> Any:
        """Candidate `b` against baseline `a`: aggregates with intervals, their differences, and
        (over the same dataset) the items that regressed, improved or changed output."""
        p = project_for(principal, project)
        return await ctx.query(compare_experiments, root, p, a, b, confidence)

    @router.get("/{experiment_id}", response_model=ExperimentOut, responses=one_errors)
    async def experiment(
        principal: Annotated[Principal | None, reader], experiment_id: ExperimentId, project: str | None = None
    ) -> Any:
        """One experiment: its record, aggregates and every item's result (404 when the project
        has none of this id)."""
        p = project_for(principal, project)
        return await ctx.query(show_experiment, root, p, experiment_id)

    return router
