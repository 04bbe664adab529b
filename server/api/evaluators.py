"""Evaluators and online rules over HTTP (docs/api.md, "Evaluators").

    GET    /api/v1/evaluators?project=P                      each evaluator: kind, version, volume, pass rate,
                                                             errors, cost, latency (the online totals of its
                                                             current version); the rules; file_error
    GET    /api/v1/evaluators/status?project=P               the online watch: backlog, cursor, last cycle,
                                                             retry list size, file and cycle errors
    GET    /api/v1/evaluators/rules/{name}?project=P         one rule
    PUT    /api/v1/evaluators/rules/{name}?project=P         create or replace a rule
    DELETE /api/v1/evaluators/rules/{name}?project=P         remove it
    GET    /api/v1/evaluators/{name}?project=P               one evaluator
    PUT    /api/v1/evaluators/{name}?project=P               create or replace (a changed definition: a new version)
    DELETE /api/v1/evaluators/{name}?project=P               remove it (its labels stay)
    GET    /api/v1/evaluators/{name}/alignment?project=P     agreement with people (evaluators.alignment)
    GET    /api/v1/evaluators/{name}/disagreements?project=P the items where judge and people disagree
                                                             ({name} may be NAME@otel: results the app sent)

Reading needs a read key of the project, changing an admin key of it. Evaluators and rules live
in `<data-dir>/evaluators.toml` (evaluators.evaluators_file: changed under a lock, comments
kept, the whole file checked before it is replaced); a body is checked by the same rules, so an
unknown kind or a template naming an unknown variable gets a 400 naming the field. The names
`status` and `rules` are taken by the routes above. No `from __future__ import annotations`
here: FastAPI resolves the route signatures at runtime.
"""

import dataclasses
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from spanlake.analytics.budgets.definition import NAME
from spanlake.collector.auth import Principal
from spanlake.collector.errors import InvalidRequest
from spanlake.evaluators.alignment import project_alignment, project_disagreements
from spanlake.evaluators.definition import Evaluator, EvaluatorError, EvaluatorSet, Rule
from spanlake.evaluators.evaluators_file import EvaluatorsFile
from spanlake.evaluators.external import AUTHOR_SUFFIX, MAX_NAME, is_external
from spanlake.evaluators.rule_actions import queue_dataset
from spanlake.server.api.common import ApiContext, jsonable, parse_time, project_for, project_object
from spanlake.server.api.problems import NotFound, responses
from spanlake.server.evaluation_watch import state_file
from spanlake.server.query_workers import Local

MAX_BODY_BYTES = 256 * 1024
ItemName = Annotated[str, Path(pattern=NAME.pattern, description="Letters, digits, '_', '.', ':', '-'; at most 100")]
# an evaluator whose results are measured: a declared one, or the results the app sent (`<name>@otel`)
JudgedName = Annotated[
    str,
    Path(pattern=f"{NAME.pattern}|^[^/]{{1,{MAX_NAME}}}{AUTHOR_SUFFIX}$",
         description="A declared evaluator's name, or NAME@otel: the results your app sent under NAME"),
]  # fmt: skip


def evaluator_out(e: Evaluator, stats: dict[str, Any]) -> dict[str, Any]:
    """An evaluator with the online totals of its current version."""
    s = stats.get(f"{e.project}/{e.name}@v{e.version}", {})
    judged = int(s.get("passed", 0)) + int(s.get("failed", 0))
    timed = int(s.get("timed", 0))
    return {
        "name": e.name,
        "project": e.project,
        "kind": e.kind,
        "version": e.version,
        "description": e.description,
        "decides_outcome": e.decides_outcome,
        "line": e.line,
        "params": jsonable(dict(e.params)),
        "volume": int(s.get("evaluated", 0)),
        "pass_rate": int(s.get("passed", 0)) / judged if judged else None,
        "not_applicable": int(s.get("not_applicable", 0)),
        "errors": int(s.get("errors", 0)),
        "transient_errors": int(s.get("transient", 0)),
        "last_error": s.get("last_error"),
        "last_error_trace": s.get("last_error_trace"),
        "last_error_at": s.get("last_error_at"),
        "cost_usd": float(s.get("cost_usd", 0.0)),
        "mean_latency_ms": float(s.get("latency_ms", 0.0)) / timed if timed else None,
    }


def external_out(stats: dict[str, Any], project: str | None) -> list[dict[str, Any]]:
    """The results the app sent, per project and evaluator (`name@otel`): read, passed, failed,
    errors the app reported (`error.type`), malformed events, the last problem."""
    out = []
    for key, s in sorted(stats.items()):
        p, _, name = key.partition("/")
        if not is_external(name) or project not in (None, p):
            continue
        out.append({
            "project": p, "evaluator": name, "results": int(s.get("evaluated", 0)),
            "passed": int(s.get("passed", 0)), "failed": int(s.get("failed", 0)), "errors": int(s.get("errors", 0)),
            "malformed": int(s.get("malformed", 0)), "last_error": s.get("last_error"),
            "last_error_trace": s.get("last_error_trace"), "last_error_span": s.get("last_error_span"),
            "last_error_at": s.get("last_error_at"),
        })  # fmt: skip
    return out


def rule_out(r: Rule, errors: dict[str, str]) -> dict[str, Any]:
    d = jsonable(dataclasses.asdict(r))
    d["scope"] = jsonable(dict(r.scope))
    d["queue_dataset"] = queue_dataset(r.name) if r.queue_when else None
    d["error"] = errors.get(f"{r.project}/{r.name}")
    return d  # type: ignore[no-any-return]


def _written(value: Any) -> Any:
    """What put_* returned: the item (or an (item, is_new) pair, as the budgets file returns)."""
    return value[0] if isinstance(value, tuple) else value


def _alignment(an: Any, project: str, name: str, version: int | None, since: Any, until: Any) -> Any:
    """The evaluator's agreement with people: one entry per version (or the one asked for)."""
    found = project_alignment(an.lake, project, since, until)
    return [a.as_dict() for a in found if a.evaluator == name and (version is None or a.version == version)]


def _disagreements(an: Any, project: str, name: str, version: int | None, since: Any, until: Any) -> Any:
    return project_disagreements(an.lake, project, name, version, since, until)


def _plain(value: Any) -> Any:
    """A result of the alignment module as JSON: dataclasses, data frames, mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "to_dicts"):
        return jsonable(value.to_dicts())
    return jsonable(value)


def make_evaluators_router(ctx: ApiContext) -> APIRouter:
    """Routes /api/v1/evaluators."""
    router = APIRouter(prefix="/api/v1", tags=["evaluators"])
    reader = Depends(ctx.principal("read"))
    admin = Depends(ctx.principal("admin"))
    store = EvaluatorsFile(ctx.data_dir.root)
    status_file = state_file(ctx.data_dir.root, "status")
    read_errors = responses(400, 401, 403, 404, 422, 429)
    write_errors = responses(400, 401, 403, 404, 413, 422, 429)

    def watch_status() -> dict[str, Any]:
        try:
            return status_file.read()
        except ValueError:
            return {}

    def one_project(principal: Principal | None, project: str | None) -> str:
        return project_for(principal, project) or ctx.default_project

    async def current() -> tuple[EvaluatorSet, str | None]:
        return await ctx.run(store.status)

    async def body_of(request: Request, principal: Principal | None, project: str | None, name: str) -> dict[str, Any]:
        body = await project_object(request, principal, project, ctx.default_project, MAX_BODY_BYTES,
                                    "an evaluator's or a rule's fields")  # fmt: skip
        if body.setdefault("name", name) != name:
            raise InvalidRequest(f"name: the body names {body['name']!r}, the path {name!r}")
        return body

    async def edit(fn: Any, *args: Any) -> Any:
        try:
            return await ctx.run(fn, *args)
        except EvaluatorError as e:
            raise InvalidRequest(str(e)) from None
        except LookupError as e:
            raise NotFound(str(e).strip("'\"")) from None

    @router.get("/evaluators", responses=read_errors)
    async def list_evaluators(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The project's evaluators (with their online totals) and rules."""
        p = project_for(principal, project)
        found, error = await current()
        status = await ctx.run(watch_status)
        stats, errors = status.get("evaluators", {}), status.get("rules", {})
        evs = [evaluator_out(e, stats) for e in found.evaluators if p in (None, e.project)]
        rules = [rule_out(r, errors) for r in found.rules if p in (None, r.project)]
        return {"project": p, "evaluators": evs, "rules": rules, "file_error": error}

    @router.get("/evaluators/status", responses=read_errors)
    async def evaluation_status(principal: Annotated[Principal | None, reader], project: str | None = None) -> Any:
        """The online watch: backlog, cursor, the last cycle, the retry list's size, errors."""
        p = project_for(principal, project)
        _, error = await current()
        s = await ctx.run(watch_status)
        watch = ctx.evaluation_watch
        rules = {k: v for k, v in s.get("rules", {}).items() if p is None or k.split("/", 1)[0] == p}
        return {
            "interval_s": float(watch.interval_s) if watch is not None else 0.0,
            "running": bool(watch is not None and watch.running),
            "at": s.get("at"),
            "duration_s": s.get("duration_s"),
            "backlog": int(s.get("backlog", 0)),
            "handled": int(s.get("handled", 0)),
            "skipped": int(s.get("skipped", 0)),
            "cursor": s.get("cursor"),
            "retry": int(s.get("retry", 0)),
            "file_error": error,
            "cycle_error": s.get("cycle_error"),
            "cycle_error_at": s.get("cycle_error_at"),
            "rules": rules,
            "events": s.get("events") or {"cursor": None, "read": 0, "more": False},
            "external": external_out(s.get("evaluators", {}), p),
        }

    @router.get("/evaluators/rules/{name}", responses=read_errors)
    async def get_rule(
        principal: Annotated[Principal | None, reader], name: ItemName, project: str | None = None
    ) -> Any:
        """One rule of the project."""
        p = one_project(principal, project)
        found, _ = await current()
        for r in found.rules:
            if r.project == p and r.name == name:
                return rule_out(r, (await ctx.run(watch_status)).get("rules", {}))
        raise NotFound(f"no rule {name!r} in project {p!r}")

    @router.put("/evaluators/rules/{name}", responses=write_errors)
    async def put_rule(
        request: Request, principal: Annotated[Principal | None, admin], name: ItemName, project: str | None = None
    ) -> Any:
        """Create or replace a rule of the project (its fields as evaluators.toml's [[rule]] holds them)."""
        body = await body_of(request, principal, project, name)
        return rule_out(_written(await edit(store.put_rule, body)), {})

    @router.delete("/evaluators/rules/{name}", responses=read_errors)
    async def delete_rule(
        principal: Annotated[Principal | None, admin], name: ItemName, project: str | None = None
    ) -> Any:
        """Remove a rule of the project."""
        p = one_project(principal, project)
        return rule_out(_written(await edit(store.remove_rule, p, name)), {})

    @router.get("/evaluators/{name}", responses=read_errors)
    async def get_evaluator(
        principal: Annotated[Principal | None, reader], name: ItemName, project: str | None = None
    ) -> Any:
        """One evaluator of the project, with the online totals of its current version."""
        p = one_project(principal, project)
        found, _ = await current()
        try:
            e = found.get(p, name)
        except KeyError:
            raise NotFound(f"no evaluator {name!r} in project {p!r}") from None
        return evaluator_out(e, (await ctx.run(watch_status)).get("evaluators", {}))

    @router.put("/evaluators/{name}", responses=write_errors)
    async def put_evaluator(
        request: Request, principal: Annotated[Principal | None, admin], name: ItemName, project: str | None = None
    ) -> Any:
        """Create or replace an evaluator (a changed definition becomes a new version)."""
        body = await body_of(request, principal, project, name)
        await edit(store.put_evaluator, body)
        found, _ = await current()  # the version is assigned when the file is read
        try:
            e = found.get(body["project"], name)
        except KeyError:
            raise NotFound(f"no evaluator {name!r} in project {body['project']!r}") from None
        return evaluator_out(e, {})

    @router.delete("/evaluators/{name}", responses=read_errors)
    async def delete_evaluator(
        principal: Annotated[Principal | None, admin], name: ItemName, project: str | None = None
    ) -> Any:
        """Remove an evaluator of the project (its labels stay in the lake)."""
        p = one_project(principal, project)
        return evaluator_out(_written(await edit(store.remove_evaluator, p, name)), {})

    async def analysed(
        fn: Any, principal: Principal | None, name: str, project: str | None, version: int | None, since: str | None,
        until: str | None,
    ) -> Any:  # fmt: skip
        p = one_project(principal, project)
        if is_external(name):
            if version is not None:
                raise InvalidRequest(f"version: {name} holds results your app sent, which have no versions")
        else:
            found, _ = await current()
            try:
                found.get(p, name)
            except KeyError:
                raise NotFound(f"no evaluator {name!r} in project {p!r}") from None
        if version is not None and version < 1:
            raise InvalidRequest("version: a whole number from 1")
        now = datetime.now(UTC)
        t0, t1 = parse_time(since, now, "since"), parse_time(until, now, "until")
        return _plain(await ctx.query(fn, Local.ANALYTICS, p, name, version, t0, t1))

    @router.get("/evaluators/{name}/alignment", responses=read_errors)
    async def alignment(
        principal: Annotated[Principal | None, reader], name: JudgedName, project: str | None = None,
        version: int | None = None, since: str | None = None, until: str | None = None,
    ) -> Any:  # fmt: skip
        """Agreement with people on the same items: confusion matrix, kappa, precision and recall on fail."""
        return await analysed(_alignment, principal, name, project, version, since, until)

    @router.get("/evaluators/{name}/disagreements", responses=read_errors)
    async def disagreements(
        principal: Annotated[Principal | None, reader], name: JudgedName, project: str | None = None,
        version: int | None = None, since: str | None = None, until: str | None = None,
    ) -> Any:  # fmt: skip
        """The items where the evaluator and the current human label disagree."""
        return await analysed(_disagreements, principal, name, project, version, since, until)

    return router
