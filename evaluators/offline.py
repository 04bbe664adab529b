"""Offline and backfill runs: one evaluator version over a frozen dataset version or past traces.

    spanlake eval run EVALUATOR --dataset NAME@VERSION          the version's examples (with
                                                                their expected output)
    spanlake eval run EVALUATOR --since 7d --filter task=answer  past traces, as the trace list
                                                                filters them

Targets are evaluated in batches (a judge's calls in parallel, up to its `concurrency`), and
each batch's results are posted to the running server's `POST /api/v1/labels` with their
deterministic `label_id` (evaluators.result.label_id), so they are the very labels the online
rules write: the lake keeps one per (project, label_id) however often a target is judged.

Resumable: targets that already have a label by this evaluator version (author `name@vN`) are
skipped, so a run interrupted by Ctrl-C continues where it stopped and a finished run does
nothing again. Results not yet flushed to the lake are not seen as done; they are judged and
posted again, and count once. A dataset item is labelled on its trace (and span); an item not
linked to a trace cannot carry a label and is counted as `unlinked`. Not applicable (an
evaluator's None) and errors write nothing, so a later run tries them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx

from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import parse_attr_filter
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.relation import run_on_lake
from spanlake.analytics.traces.trace_list import matching_ctes, window
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.result import EvaluationError, Result, author, label_event
from spanlake.evaluators.run import Judges, evaluate
from spanlake.evaluators.target import Target, from_example, load_targets
from spanlake.storage.datasets import Version, read_examples
from spanlake.storage.layout import DataDir

BATCH = 200  # targets evaluated (and their labels posted) at a time
MAX_LABELS_PER_POST = 1000  # server.api.labels.MAX_EVENTS_PER_REQUEST
MAX_COMMENT = 64 * 1024  # the labels API's limit on a comment
POST_ATTEMPTS = 4
KEPT_ERRORS = 10
# `--filter KEY=VALUE`: the trace list's filters (analytics.traces.filters.TraceFilters).
TEXT_FILTERS = {
    "service": "service",
    "model": "model",
    "provider": "provider",
    "outcome": "outcome",
    "task": "task_name",
    "task_name": "task_name",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
    "session": "session_id",
    "session_id": "session_id",
    "text": "text",
}
NUMBER_FILTERS = ("min_ms", "max_ms", "min_cost", "max_cost")
FILTER_KEYS = (*TEXT_FILTERS, "has_error", *NUMBER_FILTERS, "attr.KEY")


class OfflineError(Exception):
    """The run cannot go on: the server refused or is unreachable, bad input. The message says why."""


@dataclass
class Summary:
    """What a run did. `total`: targets (or items) found; `done_before`: already labelled by this
    version, skipped; each evaluated target is passed, failed, scored (a score alone),
    not_applicable or an error; `errors` also counts results whose label the server refused
    (a score outside the project's label schema range, say), which stay counted as their verdict."""

    total: int = 0
    done_before: int = 0
    unlinked: int = 0
    evaluated: int = 0
    passed: int = 0
    failed: int = 0
    scored: int = 0  # a score without a verdict
    not_applicable: int = 0
    errors: int = 0
    labels_written: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    error_messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- what to evaluate -----------------------------------------------------------------------


def trace_filters(
    project: str, since: datetime | None, until: datetime | None, pairs: Iterable[str] = ()
) -> TraceFilters:
    """The trace list's filters from `KEY=VALUE` pairs (FILTER_KEYS; `attr.KEY=VALUE` for an
    attribute); ValueError names a bad pair."""
    given: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--filter {pair!r}: use KEY=VALUE (keys: {', '.join(FILTER_KEYS)})")
        if key.startswith("attr."):
            name, attr_value = parse_attr_filter(f"{key[5:]}={value}")
            if not name:
                raise ValueError(f"--filter {pair!r}: use attr.NAME=VALUE")
            attributes[name] = attr_value
        elif key in TEXT_FILTERS:
            given[TEXT_FILTERS[key]] = value
        elif key == "has_error":
            if value.lower() not in ("true", "false"):
                raise ValueError(f"--filter {pair!r}: has_error is true or false")
            given["has_error"] = value.lower() == "true"
        elif key in NUMBER_FILTERS:
            try:
                given[key] = float(value)
            except ValueError:
                raise ValueError(f"--filter {pair!r}: {key} is a number") from None
        else:
            raise ValueError(f"--filter {pair!r}: unknown key {key!r} (keys: {', '.join(FILTER_KEYS)})")
    return TraceFilters(since=since, until=until, project=project, attributes=attributes, **given)


def matching_trace_ids(an: Analytics, f: TraceFilters, limit: int | None = None) -> list[str]:
    """Ids of the traces the trace list shows for `f`, oldest first (then by id)."""

    def sql(con: Any, p: Any) -> str:
        cap = f" LIMIT {p.add(limit)}" if limit is not None else ""
        return f"""WITH {matching_ctes(con, an, f, ("start_time",), p)}
        SELECT trace_id FROM tr ORDER BY start_time, trace_id{cap}"""

    return [str(t) for t in run_on_lake(an, sql, window(f))["trace_id"].to_list()]


def dataset_targets(data_dir: DataDir, version: Version, limit: int | None = None) -> list[Target]:
    """The frozen version's examples as targets (with their expected output), in stored order."""
    targets = []
    for row in read_examples(data_dir, version).to_pylist()[:limit]:
        t = from_example(version.project, row)
        if t.trace_id is None and row.get("trace_id"):  # the item's trace carries its label
            t = replace(t, trace_id=row["trace_id"], span_id=t.span_id or row.get("span_id"))
        targets.append(t)
    return targets


def done_keys(an: Analytics, project: str, evaluator: Evaluator) -> set[tuple[str, str | None]]:
    """(trace_id, span_id) of the targets this evaluator version has labelled in the lake."""
    sql = """SELECT DISTINCT trace_id, span_id FROM labels
             WHERE project = $project AND source = 'judge' AND author = $author"""
    params = {"project": project, "author": author(evaluator.name, evaluator.version)}
    rows = an.lake.query(sql, params).to_pylist()
    return {(r["trace_id"], r["span_id"]) for r in rows}


# --- writing labels -------------------------------------------------------------------------


class LabelPoster:
    """Posts label events to a running spanlake (`POST {url}/api/v1/labels`). A refused batch is
    posted again one label at a time, so one label the project's schema refuses (a failure mode
    it does not list, a score out of its range) costs that label alone; those come back as
    (label, reason). An unreachable server, after a few tries, is an OfflineError."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 60) -> None:
        self.url = url.rstrip("/")
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.client.close()

    def probe(self) -> str | None:
        """None when the server answers; else why not."""
        try:
            r = self.client.get(f"{self.url}/health")
        except httpx.HTTPError as e:
            return str(e) or type(e).__name__
        return None if r.status_code == 200 else f"GET /health answered {r.status_code}"

    def post(self, events: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], str]]:
        """Post `events`; returns the refused ones with the server's reason."""
        refused: list[tuple[Mapping[str, Any], str]] = []
        for i in range(0, len(events), MAX_LABELS_PER_POST):
            chunk = [_wire(e) for e in events[i : i + MAX_LABELS_PER_POST]]
            status, why = self._send(chunk)
            if status == 200:
                continue
            if status in (400, 422) and len(chunk) > 1:
                for one, event in zip(chunk, events[i : i + MAX_LABELS_PER_POST], strict=True):
                    one_status, one_why = self._send([one])
                    if one_status != 200:
                        refused.append((event, one_why))
                continue
            if status in (400, 422):
                refused.append((events[i], why))
                continue
            raise OfflineError(f"spanlake at {self.url} refused the labels ({status}): {why}")
        return refused

    def _send(self, body: list[dict[str, Any]]) -> tuple[int, str]:
        delay = 0.5
        for attempt in range(POST_ATTEMPTS):
            try:
                r = self.client.post(f"{self.url}/api/v1/labels", json=body)
            except httpx.HTTPError as e:
                why = f"cannot reach spanlake at {self.url} ({e or type(e).__name__})"
            else:
                if r.status_code not in (429, 503):
                    return r.status_code, _message(r)
                why = f"spanlake at {self.url} is busy ({r.status_code})"
            if attempt + 1 < POST_ATTEMPTS:
                time.sleep(delay)
                delay *= 2
        raise OfflineError(f"{why}; a rerun continues where this one stopped")


def _wire(event: Mapping[str, Any]) -> dict[str, Any]:
    """A label event as the labels API takes it (the server stamps the time)."""
    body = {k: v for k, v in event.items() if k != "created_at_unix_nano" and v is not None}
    if isinstance(body.get("comment"), str) and len(body["comment"]) > MAX_COMMENT:
        body["comment"] = body["comment"][: MAX_COMMENT - 1] + "…"
    return body


def _message(r: httpx.Response) -> str:
    try:
        doc = r.json()
    except ValueError:
        return r.text[:300]
    return str(doc.get("message") or doc.get("detail") or doc) if isinstance(doc, dict) else str(doc)[:300]


# --- the run --------------------------------------------------------------------------------


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _key(t: Target) -> tuple[str, str | None]:
    return ((t.trace_id or "").lower(), t.span_id.lower() if t.span_id else None)


def _judge_one(evaluator: Evaluator, target: Target, judges: Judges | None) -> Result | EvaluationError | None:
    try:
        return evaluate(evaluator, target, judges=judges)
    except EvaluationError as e:
        return e
    except Exception as e:  # an evaluator's bug must cost its target, not the run
        return EvaluationError(f"{type(e).__name__}: {e}")


class OfflineRun:
    """One evaluator version over a list of targets (`run_dataset`, `run_traces` build them).

    `on_start(total, done_before)` and `on_progress(n)` (n more items handled) drive a progress
    bar; `stop_after` ends the run after that many items (the tests' stand-in for Ctrl-C)."""

    def __init__(
        self,
        evaluator: Evaluator,
        poster: LabelPoster,
        *,
        judges: Judges | None = None,
        on_start: Callable[[int, int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        stop_after: int | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.poster = poster
        self.judges = judges
        self.on_start = on_start or (lambda total, done: None)
        self.on_progress = on_progress or (lambda n: None)
        self.stop_after = stop_after
        self.summary = Summary()
        concurrency = int(evaluator.params.get("concurrency", 4)) if evaluator.is_judge else 1
        self.concurrency = max(1, concurrency)

    def run_targets(self, targets: Sequence[Target], done: set[tuple[str, str | None]]) -> Summary:
        """Evaluate `targets`, skipping those in `done` ((trace_id, span_id) already labelled)."""
        started, s = time.monotonic(), self.summary
        todo: list[Target] = []
        for t in targets:
            if t.trace_id is None:
                s.unlinked += 1
            elif _key(t) in done:
                s.done_before += 1
            else:
                todo.append(t)
        s.total += len(targets)
        self.on_start(len(targets), len(targets) - len(todo))
        if self.stop_after is not None:
            todo = todo[: self.stop_after]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="eval") as pool:
            for batch in _batches(todo, BATCH):
                self.evaluate_batch(pool, batch)
                self.on_progress(len(batch))
        s.seconds += time.monotonic() - started
        return s

    def evaluate_batch(self, pool: ThreadPoolExecutor, batch: Sequence[Target]) -> None:
        """Evaluate `batch` in `pool` and post its results as labels."""
        if not batch:
            return
        ev, s = self.evaluator, self.summary
        outcomes = list(pool.map(lambda t: _judge_one(ev, t, self.judges), batch))
        events = []
        now = time.time_ns()
        for target, out in zip(batch, outcomes, strict=True):
            s.evaluated += 1
            if isinstance(out, EvaluationError):
                self._error(target, str(out))
                continue
            if out is None:
                s.not_applicable += 1
                continue
            if out.verdict == "pass":
                s.passed += 1
            elif out.verdict == "fail":
                s.failed += 1
            else:
                s.scored += 1
            cost = out.metadata.get("cost_usd")
            if isinstance(cost, int | float):
                s.cost_usd += float(cost)
            assert target.trace_id is not None  # unlinked targets were set aside
            events.append(
                label_event(
                    out,
                    project=target.project,
                    trace_id=target.trace_id,
                    span_id=target.span_id,
                    name=ev.name,
                    version=ev.version,
                    decides_outcome=ev.decides_outcome,
                    created_at_unix_nano=now,
                )
            )
        refused = self.poster.post(events)
        for event, why in refused:
            key = event["trace_id"] + (f":{event['span_id']}" if event.get("span_id") else "")
            self._error(None, f"{key}: the server refused the label: {why}")
        s.labels_written += len(events) - len(refused)

    def _error(self, target: Target | None, message: str) -> None:
        self.summary.errors += 1
        if len(self.summary.error_messages) < KEPT_ERRORS:
            if target is not None:
                where = f"{target.trace_id or target.item_id}" + (f":{target.span_id}" if target.span_id else "")
                message = f"{where}: {message}"
            self.summary.error_messages.append(message)


def run_dataset(
    an: Analytics, data_dir: DataDir, version: Version, run: OfflineRun, limit: int | None = None
) -> Summary:
    """Evaluate every example of a frozen dataset version (its project's evaluator). Progress
    counts items."""
    targets = dataset_targets(data_dir, version, limit)
    return run.run_targets(targets, done_keys(an, version.project, run.evaluator))


def run_traces(
    an: Analytics, f: TraceFilters, run: OfflineRun, target: str = "trace", limit: int | None = None
) -> Summary:
    """Evaluate the traces matching `f` (or, `target` a span category, each span of it in them),
    loading them in batches. Progress counts traces."""
    assert f.project is not None, "a backfill runs over one project"
    s, started = run.summary, time.monotonic()
    ids = matching_trace_ids(an, f, limit)
    done = done_keys(an, f.project, run.evaluator)
    todo_ids = ids
    if target == "trace":  # what is done is known before loading anything
        todo_ids = [t for t in ids if (t, None) not in done]
        s.total, s.done_before = len(ids), len(ids) - len(todo_ids)
    run.on_start(len(ids), len(ids) - len(todo_ids))
    budget = run.stop_after
    with ThreadPoolExecutor(run.concurrency, thread_name_prefix="eval") as pool:
        for chunk in _batches(todo_ids, BATCH):
            targets = load_targets(an, f.project, list(chunk), target)
            fresh = [t for t in targets if _key(t) not in done]
            if target != "trace":
                s.total += len(targets)
                s.done_before += len(targets) - len(fresh)
            if budget is not None:
                fresh, budget = fresh[:budget], budget - min(budget, len(fresh))
            run.evaluate_batch(pool, fresh)
            run.on_progress(len(chunk))
            if budget == 0:
                break
    s.seconds += time.monotonic() - started
    return s
