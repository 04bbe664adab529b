"""Online rules: complete traces from a durable cursor, sampled per rule, evaluated, routed.

One cycle (`run_cycle`, run by server/evaluation_watch.py in a low-priority child process):

1. **Complete traces after the cursor** (evaluators.complete_traces). A trace is complete when its newest span's
   `ingested_at` is at or before the horizon (now - settings.quiet_period, and never past
   what the lake holds yet: the server passes the oldest write-ahead-log segment still to
   flush). They are taken oldest first by (newest ingested_at, project, trace id) — the
   cursor is that triple of the last trace handled, so traces with equal timestamps are
   neither skipped nor repeated — at most `batch` per cycle. When more than
   settings.max_backlog are waiting, the oldest are skipped (counted in `skipped`).
2. **Rules.** Each enabled rule takes the traces of its project that match its scope (the trace
   list's filters: task, service, model, provider, prompt_name, prompt_version, attributes)
   and that `sampled(rule.name, trace_id, rule.sample)` keeps.
3. **Evaluation.** evaluators.target.load_targets builds the targets (the trace, or every span
   of the rule's category); evaluators.run.evaluate runs each of the rule's evaluators on
   each. A result is a label event (evaluators.result.label_event; its label_id is the same
   every time, so a cycle redone after a crash writes nothing twice).
4. **Actions** (evaluators.rule_actions), per rule and target, on the verdicts of the rule's evaluators: `queue_when`
   adds the trace to the dataset `queue.<rule>` (the labelling queue takes such a dataset as
   its source), `dataset` adds it to that dataset (when `dataset_when`), `webhook` sends it to
   that destination of budgets.toml (when `webhook_when`). `fail`: some verdict is fail;
   `disagree`: two evaluators gave different verdicts; `always`: some evaluator answered.
   Dataset events have deterministic ids too (the lake keeps one per event_id).
5. **The app's own results**, with or without rules: the `gen_ai.evaluation.result` events
   (span events and log records) stored after a second cursor — by ingested_at, project and
   row, up to the same horizon — become judge labels with author `<name>@otel`
   (evaluators.external.read_app_results; deterministic label ids too), at most `events_batch`
   rows a cycle.

Errors never stall the loop: a transient EvaluationError (the judge down, 429, a timeout)
puts the (target, evaluator version) on the retry list, tried again from a later cycle with
backoff (RETRY_FIRST_S doubling to RETRY_CAP_S) until it succeeds or is RETRY_MAX_AGE old
(then recorded as failed); once an evaluator failed transiently in a cycle, its other targets
of that cycle go to the retry list without a call. Any other error is recorded on the
evaluator (count, last error, its trace) and the target is not retried.

The cycle only reads: it returns what to write (`Outcome`); the server appends the events to
its WAL and only then saves the cursors and the retry list.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Params
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.relation import run_on_lake
from spanlake.analytics.traces.trace_list import matching_ctes, window
from spanlake.evaluators.complete_traces import Candidate, Cursor, complete_traces
from spanlake.evaluators.definition import Evaluator, EvaluatorSet, Rule
from spanlake.evaluators.external import DEFAULT_BATCH as EVENTS_BATCH
from spanlake.evaluators.external import EventCursor, read_app_results
from spanlake.evaluators.result import EvaluationError, Result, label_event, label_id
from spanlake.evaluators.rule_actions import dataset_event, queue_dataset, wants, webhook_message
from spanlake.evaluators.run import Judges, evaluate
from spanlake.evaluators.target import Target, load_targets

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500  # complete traces handled per cycle
RETRY_FIRST_S = 5.0
RETRY_CAP_S = 600.0
RETRY_MAX_AGE = timedelta(hours=24)
SCOPE_FILTERS = {  # a rule's scope key → the trace list's filter
    "task": "task_name",
    "service": "service",
    "model": "model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
    "attributes": "attributes",
}


def sampled(rule_name: str, trace_id: str, rate: float) -> bool:
    """Whether rule `rule_name` samples the trace: the first 32 bits of
    sha256("<rule>:<trace id, lower-case hex>") as a fraction of 2**32, below `rate`."""
    digest = hashlib.sha256(f"{rule_name}:{trace_id.lower()}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32 < rate


@dataclass(frozen=True)
class Request:
    """What one cycle works on (plain data: it crosses into the child process)."""

    found: EvaluatorSet
    cursor: Cursor
    horizon: datetime  # traces whose newest span was ingested after this are not complete yet
    now: datetime
    retries: Sequence[Mapping[str, Any]] = ()  # due entries of the retry list
    batch: int = DEFAULT_BATCH
    data_dir: str | None = None  # for the judges (spend ledger)
    traces_endpoint: str | None = None  # where judge spans go (the server's OTLP/HTTP endpoint)
    events_cursor: EventCursor = field(default_factory=EventCursor)  # the app's evaluation events read so far
    events_batch: int = EVENTS_BATCH


@dataclass
class Outcome:
    """What a cycle produced; the server writes it (labels and dataset events to the WAL)."""

    cursor: Cursor
    labels: list[dict[str, Any]] = field(default_factory=list)
    dataset_events: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # {id, rule, project, destination, message}
    handled: int = 0  # complete traces taken from the backlog
    backlog: int = 0  # complete traces still waiting after this cycle
    skipped: int = 0  # complete traces skipped (beyond max_backlog)
    retry_put: dict[str, dict[str, Any]] = field(default_factory=dict)  # label_id → entry
    retry_drop: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # "project/name" → counts of this cycle
    rule_errors: dict[str, str] = field(default_factory=dict)  # "project/rule" → problem
    events_cursor: EventCursor = field(default_factory=EventCursor)
    events_read: int = 0  # spans and log records with evaluation events read this cycle
    events_more: bool = False  # more wait after this cycle's batch


# --- 2. rules: scope and sampling ---------------------------------------------------------------


def scope_filters(rule: Rule, since: datetime, until: datetime) -> TraceFilters:
    """The trace list's filters of a rule's scope, over [since, until)."""
    kw: dict[str, Any] = {}
    for key, value in rule.scope.items():
        if key not in SCOPE_FILTERS:
            raise ValueError(f"rule {rule.name!r}: unknown scope {key!r} (one of {', '.join(SCOPE_FILTERS)})")
        kw[SCOPE_FILTERS[key]] = dict(value) if key == "attributes" else value
    return TraceFilters(since=since, until=until, project=rule.project, **kw)


def matching(an: Analytics, rule: Rule, traces: Sequence[Candidate]) -> set[str]:
    """The trace ids of `traces` (of the rule's project) in the rule's scope."""
    ids = [t.trace_id for t in traces if t.project == rule.project]
    if not ids or not rule.scope:
        return set(ids)
    starts = [t.trace_start for t in traces if t.project == rule.project]
    f = scope_filters(rule, min(starts), max(starts) + timedelta(microseconds=1))

    def sql(con: duckdb.DuckDBPyConnection, p: Params) -> str:
        ctes = matching_ctes(con, an, f, (), p)
        return f"WITH {ctes}\nSELECT trace_id FROM tr WHERE trace_id IN (SELECT unnest({p.add(ids)}))"

    return set(run_on_lake(an, sql, window(f))["trace_id"].to_list())


# --- 3. and 4. evaluation and actions -----------------------------------------------------------

_judges: dict[tuple[str | None, str | None], Any] = {}  # per process: judge clients live across cycles


def judges_for(req: Request) -> Any:
    """The process's Judges (one JudgeClient per evaluator version), None without judges."""
    if not any(e.is_judge for e in req.found.evaluators):
        return None
    key = (req.data_dir, req.traces_endpoint)
    if key not in _judges:
        _judges[key] = Judges(data_dir=req.data_dir, traces_endpoint=req.traces_endpoint)
    return _judges[key]


def _stat(out: Outcome, ev: Evaluator) -> dict[str, Any]:
    return out.stats.setdefault(
        f"{ev.project}/{ev.name}",
        {"version": ev.version, "evaluated": 0, "passed": 0, "failed": 0, "not_applicable": 0, "errors": 0,
         "transient": 0, "cost_usd": 0.0, "latency_ms": 0.0, "timed": 0, "last_error": None,
         "last_error_trace": None},
    )  # fmt: skip


class _Cycle:
    """The evaluation state of one cycle."""

    def __init__(self, an: Analytics, req: Request, out: Outcome) -> None:
        self.an, self.req, self.out = an, req, out
        self.now_ns = int(req.now.timestamp() * 1e9)
        self.results: dict[str, Result | None] = {}  # label_id → result (each evaluator version once)
        self.tripped: dict[tuple[str, str, int], str] = {}  # evaluator version → its transient error
        self.judges: Any = None
        self.starts: dict[tuple[str, str], datetime] = {}

    def judge_clients(self) -> Any:
        if self.judges is None:
            self.judges = judges_for(self.req) or False
        return self.judges or None

    def run(self, ev: Evaluator, target: Target, rule: Rule, retry: Mapping[str, Any] | None = None) -> Result | None:
        """Evaluate once per cycle and evaluator version; errors go to the stats or the retry list."""
        trace_id = target.trace_id or ""
        lid = label_id(ev.project, trace_id, target.span_id, ev.name, ev.version)
        if lid in self.results:
            return self.results[lid]
        if lid in self.out.retry_put and retry is None:
            return None  # already waiting for a retry in this cycle
        stat = _stat(self.out, ev)
        tripped = self.tripped.get((ev.project, ev.name, ev.version))
        if tripped is not None:
            self.retry_later(lid, ev, target, rule, tripped, retry)
            return None
        try:
            result = evaluate(ev, target, judges=self.judge_clients())
        except EvaluationError as e:
            if e.transient:
                stat["transient"] += 1
                self.tripped[(ev.project, ev.name, ev.version)] = str(e)
                self.retry_later(lid, ev, target, rule, str(e), retry)
            else:
                self.results[lid] = None
                self.error(stat, str(e), trace_id, lid if retry is not None else None)
            return None
        except Exception as e:  # an evaluator's own bug: recorded on it, never the loop's end
            self.results[lid] = None
            self.error(stat, f"{type(e).__name__}: {e}", trace_id, lid if retry is not None else None)
            return None
        self.results[lid] = result
        if retry is not None:
            self.out.retry_drop.append(lid)
        if result is None:
            stat["not_applicable"] += 1
            return None
        stat["evaluated"] += 1
        stat["passed" if result.verdict == "pass" else "failed"] += result.verdict is not None
        meta = result.metadata
        if isinstance(meta.get("cost_usd"), int | float):
            stat["cost_usd"] += float(meta["cost_usd"])
        if isinstance(meta.get("latency_ms"), int | float):
            stat["latency_ms"] += float(meta["latency_ms"])
            stat["timed"] += 1
        self.out.labels.append(
            label_event(result, project=ev.project, trace_id=trace_id, span_id=target.span_id, name=ev.name,
                        version=ev.version, decides_outcome=ev.decides_outcome, created_at_unix_nano=self.now_ns)
        )  # fmt: skip
        return result

    def error(self, stat: dict[str, Any], message: str, trace_id: str, drop: str | None) -> None:
        stat["errors"] += 1
        stat["last_error"], stat["last_error_trace"] = message[:2000], trace_id
        if drop is not None:
            self.out.retry_drop.append(drop)

    def retry_later(
        self, lid: str, ev: Evaluator, target: Target, rule: Rule, error: str, old: Mapping[str, Any] | None
    ) -> None:
        now = self.req.now
        entry = dict(old) if old is not None else {
            "project": ev.project, "trace_id": target.trace_id, "span_id": target.span_id, "target": rule.target,
            "rule": rule.name, "evaluator": ev.name, "version": ev.version, "first_at": now.isoformat(),
            "attempts": 0, "trace_start": _iso(self.starts.get((ev.project, target.trace_id or ""))),
        }  # fmt: skip
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        entry["last_error"] = error[:2000]
        first = datetime.fromisoformat(entry["first_at"])
        if now - first >= RETRY_MAX_AGE:
            stat = _stat(self.out, ev)
            self.error(stat, f"gave up after {entry['attempts']} attempts over 24 h: {error}", entry["trace_id"], lid)
            return
        delay = min(RETRY_FIRST_S * 2 ** (entry["attempts"] - 1), RETRY_CAP_S)
        entry["next_at"] = (now + timedelta(seconds=delay)).isoformat()
        self.out.retry_put[lid] = entry

    def act(self, rule: Rule, target: Target, results: Sequence[Result | None]) -> None:
        """The rule's actions on one target, by its evaluators' verdicts."""
        verdicts = [r.verdict for r in results if r is not None and r.verdict is not None]
        answered = any(r is not None for r in results)
        start = self.starts.get((rule.project, target.trace_id or ""))
        why = {"verdicts": verdicts}
        if wants(rule.queue_when, verdicts, answered):
            ds = queue_dataset(rule.name)
            self.out.dataset_events.append(dataset_event(ds, rule.project, target, rule, self.now_ns, start, why))
        if rule.dataset and wants(rule.dataset_when, verdicts, answered):
            self.out.dataset_events.append(
                dataset_event(rule.dataset, rule.project, target, rule, self.now_ns, start, why)
            )
        if rule.webhook and wants(rule.webhook_when, verdicts, answered):
            self.out.webhooks.append(webhook_message(rule, target, results, self.req.now))


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _evaluators_of(found: EvaluatorSet, rule: Rule, out: Outcome) -> list[Evaluator]:
    evs = []
    for name in rule.evaluators:
        try:
            evs.append(found.get(rule.project, name))
        except KeyError:
            out.rule_errors[f"{rule.project}/{rule.name}"] = f"no evaluator {name!r} in project {rule.project!r}"
    return evs


def _targets(an: Analytics, project: str, ids: Iterable[str], target: str) -> list[Target]:
    ids = sorted(set(ids))
    return list(load_targets(an, project, ids, target)) if ids else []


def run_rules(cycle: _Cycle, traces: Sequence[Candidate]) -> None:
    """Every enabled rule on the complete traces of this cycle."""
    an, req, out = cycle.an, cycle.req, cycle.out
    cycle.starts |= {(t.project, t.trace_id): t.trace_start for t in traces}
    for rule in req.found.rules:
        if not rule.enabled:
            continue
        rule_key = f"{rule.project}/{rule.name}"
        try:
            keep = [i for i in sorted(matching(an, rule, traces)) if sampled(rule.name, i, rule.sample)]
            targets = _targets(an, rule.project, keep, rule.target)
        except Exception as e:  # a bad scope, a target kind unknown: the rule's problem, not the loop's
            log.warning("rule %s: %s", rule_key, e)
            out.rule_errors[rule_key] = f"{type(e).__name__}: {e}"
            continue
        evs = _evaluators_of(req.found, rule, out)
        for target in targets:
            results = [cycle.run(ev, target, rule) for ev in evs]
            cycle.act(rule, target, results)


def run_retries(cycle: _Cycle) -> None:
    """Try the due entries of the retry list again (the evaluator's current version only)."""
    req, out = cycle.req, cycle.out
    rules = {(r.project, r.name): r for r in req.found.rules}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for e in req.retries:
        groups.setdefault((e["project"], e["target"]), []).append(e)
    for (project, target_kind), entries in groups.items():
        try:
            targets = _targets(cycle.an, project, (e["trace_id"] for e in entries), target_kind)
        except Exception as exc:
            log.warning("evaluation retries of %s: %s", project, exc)
            continue  # tried again next cycle (the entries stay)
        by_key = {(t.trace_id, t.span_id): t for t in targets}
        for e in entries:
            lid = label_id(project, e["trace_id"], e.get("span_id"), e["evaluator"], int(e["version"]))
            cycle.starts[(project, e["trace_id"])] = (
                datetime.fromisoformat(e["trace_start"]) if e.get("trace_start") else None  # type: ignore[assignment]
            )
            try:
                ev = req.found.get(project, e["evaluator"])
            except KeyError:
                ev = None
            target = by_key.get((e["trace_id"], e.get("span_id")))
            if ev is None or ev.version != int(e["version"]) or target is None:
                out.retry_drop.append(lid)  # the evaluator changed or went, or the trace is gone
                continue
            rule = rules.get((project, e.get("rule", ""))) or Rule(name=e.get("rule", ""), evaluators=(ev.name,))
            result = cycle.run(ev, target, rule, retry=e)
            if result is not None:
                cycle.act(rule, target, [result])


def run_cycle(an: Analytics, req: Request) -> Outcome:
    """One cycle (see the module docstring); reads only, returns what to write."""
    out = Outcome(cursor=req.cursor, events_cursor=req.events_cursor)
    cycle = _Cycle(an, req, out)
    if req.retries:
        run_retries(cycle)
    if any(r.enabled for r in req.found.rules):
        traces, cursor, skipped, backlog = complete_traces(
            an, req.cursor, req.horizon, req.batch, req.found.settings.max_backlog
        )
        run_rules(cycle, traces)
        out.handled, out.skipped, out.backlog = len(traces), skipped, backlog
        out.cursor = traces[-1].cursor if traces else cursor
    app = read_app_results(
        an, req.events_cursor, int(req.horizon.timestamp() * 1e6), req.events_batch, int(req.now.timestamp() * 1e9)
    )
    out.labels += app.labels
    out.stats |= app.stats
    out.events_cursor, out.events_read, out.events_more = app.batch.cursor, app.batch.rows, app.batch.more
    return out
