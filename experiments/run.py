"""Running an experiment: the app over every item of a frozen dataset version, traced into the lake.

Each item runs inside an SDK task span (`experiment_item`) under a context scope that puts
`spanlake.experiment.id`, `spanlake.experiment.item_id`, `spanlake.experiment.dataset` and the
run metadata (`spanlake.experiment.meta.<key>`; `prompt_version` / `prompt_name` also as
`gen_ai.prompt.version` / `gen_ai.prompt.name`) on every span of the item's trace. Spans go over
OTLP to the running spanlake, into project `<dataset project>-experiments` unless told
otherwise, so production reports and budgets never count experiment traffic.

At most `concurrency` items run at once; an item that raises or outlives `timeout_s` is
recorded as an error and the run goes on. The task's outcome is the item's verdict
(experiments.scoring.decide), so the lake agrees with the results. When every item has a
result, the run waits (at most `wait_s`) for the traces to reach the lake and stores each
item's cost, duration and outcome as the production analytics compute them
(experiments.figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace

import spanlake.sdk as sl
from spanlake.analytics.runner import Analytics
from spanlake.experiments.apps import App
from spanlake.experiments.figures import collect_figures
from spanlake.experiments.items import DatasetItem, DatasetRef, load_items, resolve
from spanlake.experiments.scoring import Scorer, decide, run_checks
from spanlake.experiments.store import Experiment, ExperimentError, ResultWriter, Store, cut_output
from spanlake.sdk import attributes as A
from spanlake.storage.layout import DataDir, valid_project
from spanlake.storage.reader import Lake

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_WAIT_S = 60.0
TASK_NAME = "experiment_item"
SERVICE_NAME = "spanlake-experiment"
PROJECT_SUFFIX = "-experiments"
FLUSH_S = 30.0
COMMIT_EVERY_S = 0.2  # finished items are committed (spans sent, lines fsynced) in batches this often
MAX_ERROR = 2000  # characters of an exception message kept


def trace_project_for(dataset_project: str) -> str:
    """Where an experiment's traces go by default: `<dataset project>-experiments`."""
    return dataset_project + PROJECT_SUFFIX


def meta_attributes(meta: Mapping[str, str]) -> dict[str, str]:
    """Span attributes for the run metadata: every key under `spanlake.experiment.meta.`, and
    `prompt_version` / `prompt_name` also under the GenAI names the reports group by."""
    attrs = {A.EXPERIMENT_META_PREFIX + k: str(v) for k, v in meta.items()}
    if "prompt_version" in meta:
        attrs[A.GEN_AI_PROMPT_VERSION] = str(meta["prompt_version"])
    if "prompt_name" in meta:
        attrs[A.GEN_AI_PROMPT_NAME] = str(meta["prompt_name"])
    return attrs


def probe(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """None when a spanlake answers /health at `endpoint`, else why not."""
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/health", timeout=timeout_s) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except Exception as e:
        return str(getattr(e, "reason", None) or e)


@dataclass(frozen=True)
class Settings:
    """How an experiment runs (kept in its record; concurrency, timeout, endpoint and wait may
    change on resume)."""

    app: str
    checks: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = DEFAULT_CONCURRENCY
    timeout_s: float = DEFAULT_TIMEOUT_S
    endpoint: str = DEFAULT_ENDPOINT
    trace_project: str | None = None
    wait_s: float = DEFAULT_WAIT_S

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise ValueError("concurrency must be between 1 and 1000")
        if not 0 < self.timeout_s <= 86_400:
            raise ValueError("timeout must be between 0 and 86400 seconds")
        if self.trace_project is not None and not valid_project(self.trace_project):
            raise ValueError(f"invalid project name {self.trace_project!r}")


def start(store: Store, data_dir: DataDir, project: str, ref: DatasetRef, settings: Settings) -> Experiment:
    """Create the experiment's record for dataset `ref` of `project` (LookupError: no such version)."""
    version = resolve(data_dir, project, ref)
    trace_project = settings.trace_project or trace_project_for(project)
    if not valid_project(trace_project):
        raise ValueError(f"project {trace_project!r} is not a valid name: pass another with --project")
    record = {
        "dataset": {
            "name": ref.name,
            "version": version.version,
            "fingerprint": version.manifest.get("fingerprint"),
            "examples": version.manifest.get("examples"),
        },
        "app": settings.app,
        "checks": list(settings.checks),
        "schema": settings.schema,
        "meta": dict(settings.meta),
        "trace_project": trace_project,
        "endpoint": settings.endpoint,
        "concurrency": settings.concurrency,
        "timeout_s": settings.timeout_s,
    }
    return store.create(project, record)


def saved_settings(exp: Experiment, **changes: Any) -> Settings:
    """The settings an experiment was started with, with `changes` (None values ignored)."""
    r = exp.record
    base = {
        "app": r["app"],
        "checks": tuple(r.get("checks") or ()),
        "schema": r.get("schema"),
        "meta": r.get("meta") or {},
        "concurrency": r.get("concurrency", DEFAULT_CONCURRENCY),
        "timeout_s": r.get("timeout_s", DEFAULT_TIMEOUT_S),
        "endpoint": r.get("endpoint", DEFAULT_ENDPOINT),
        "trace_project": r.get("trace_project"),
    }
    return Settings(**(base | {k: v for k, v in changes.items() if v is not None}))


@dataclass
class Report:
    """What one `run` call did."""

    total: int  # items in the dataset version
    skipped: int  # finished before (a resumed run)
    ran: int = 0
    errors: int = 0
    timeouts: int = 0
    flushed: bool = True
    figures: int = 0  # items with figures from the lake
    figures_expected: int = 0
    figures_error: str | None = None  # reading the lake failed (the results are kept)
    seconds: float = 0.0


def output_text(value: Any) -> str | None:
    """The app's return value as stored: str as is, bytes decoded, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def item_scope(exp: Experiment, item_id: str, meta: Mapping[str, str]) -> dict[str, str]:
    """The attributes every span of an item's trace carries."""
    dataset = exp.record["dataset"]
    return {
        A.EXPERIMENT_ID: exp.id,
        A.EXPERIMENT_ITEM_ID: item_id,
        A.EXPERIMENT_DATASET: f"{dataset['name']}@{dataset['version']}",
    } | meta_attributes(meta)


@contextlib.contextmanager
def item_task(
    exp: Experiment,
    item_id: str,
    meta: Mapping[str, str],
    row: dict[str, Any],
    parent: trace.SpanContext | None = None,
) -> Iterator[sl.Task]:
    """The item's context scope and SDK task span (`experiment_item`), whose trace and span ids
    go into `row`. `parent`: start the task inside that span's trace (the pytest plugin puts
    every test of one item in one trace); else it starts a trace of its own."""
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent))) if parent else None
    try:
        with sl.ContextScope(item_scope(exp, item_id, meta)), sl.task(TASK_NAME) as task:
            ctx = task.span.get_span_context()
            if ctx.is_valid:
                row["trace_id"], row["span_id"] = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
            yield task
    finally:
        if token is not None:
            otel_context.detach(token)


async def run_item(
    exp: Experiment, item: DatasetItem, app: App, scorers: Sequence[Scorer], settings: Settings
) -> dict[str, Any]:
    """Run one item inside its task span; returns its result line."""
    row: dict[str, Any] = {"item_id": item.id, "started_at": _now(), "status": "ok"}
    t0 = time.perf_counter()
    try:
        with item_task(exp, item.id, settings.meta, row) as task:
            try:
                raw = await app(item, settings.timeout_s)
            except TimeoutError:
                row["status"], row["error"] = "timeout", f"no answer within {settings.timeout_s:g} s"
                task.fail(row["error"])
            else:
                row["output"] = cut_output(output_text(raw))
                row["checks"] = run_checks(scorers, row["output"], item)
                if task.outcome is not None:
                    row["app_outcome"], row["app_reason"] = task.outcome, task.outcome_reason
                success, mode = decide(row)
                if success is False and task.outcome != "failure":
                    task.fail(f"check failed: {mode}")
    except Exception as e:  # the app's exception: the SDK recorded it on the span
        row["status"], row["error"] = "error", f"{type(e).__name__}: {e}"[:MAX_ERROR]
    row["wall_ms"] = (time.perf_counter() - t0) * 1000
    row["finished_at"] = _now()
    row["success"], row["failure_mode"] = decide(row)
    return row


async def _run_items(
    exp: Experiment,
    items: Sequence[DatasetItem],
    app: App,
    scorers: Sequence[Scorer],
    settings: Settings,
    commit: Callable[[list[dict[str, Any]]], None],
    committed: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Run `items` with `settings.concurrency` workers. Finished items are committed in small
    batches (`commit`: spans handed to spanlake, then the lines fsynced), so a result line
    never exists without its trace having been sent; `committed` is told afterwards."""
    queue: asyncio.Queue[DatasetItem] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    pending: list[dict[str, Any]] = []
    workers_done = False

    def take() -> list[dict[str, Any]]:
        batch = pending[:]
        del pending[:]
        return batch

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            pending.append(await run_item(exp, item, app, scorers, settings))

    async def committer() -> None:
        while True:
            await asyncio.sleep(COMMIT_EVERY_S)
            batch = take()
            if batch:
                await asyncio.to_thread(commit, batch)
                committed(batch)
            elif workers_done:
                return

    committing = asyncio.create_task(committer())
    try:
        await asyncio.gather(*(worker() for _ in range(min(settings.concurrency, max(1, len(items))))))
        workers_done = True
        await committing
    finally:
        if not committing.done():
            committing.cancel()
        batch = take()  # interrupted: items that finished are kept all the same
        if batch:
            commit(batch)
            committed(batch)
        await app.aclose()


def run(
    store: Store,
    data_dir: DataDir,
    exp: Experiment,
    app: App,
    scorers: Sequence[Scorer],
    settings: Settings,
    *,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_figures: Callable[[int, int], None] | None = None,
) -> Report:
    """Run (or resume) `exp`: every item without a result, then the lake figures of all items.
    Raises ExperimentError when another process runs it or its dataset version changed."""
    started = time.monotonic()
    with store.running(exp) as writer:
        dataset = exp.record["dataset"]
        version = resolve(data_dir, exp.project, DatasetRef(dataset["name"], dataset["version"]))
        if version.manifest.get("fingerprint") != dataset.get("fingerprint"):
            raise ExperimentError(
                f"dataset {dataset['name']}@{dataset['version']} is not the version this experiment started on "
                "(its fingerprint differs)"
            )
        items = load_items(data_dir, version)
        done = exp.results()
        todo = [i for i in items if i.id not in done]
        report = Report(total=len(items), skipped=len(items) - len(todo))
        store.update(
            exp,
            status="running",
            pid=os.getpid(),
            concurrency=settings.concurrency,
            timeout_s=settings.timeout_s,
            endpoint=settings.endpoint,
        )
        if on_start is not None:
            on_start(len(items), report.skipped)

        handle = start_tracing(settings.endpoint, exp.record["trace_project"])
        commit = Committer(handle, writer)

        def committed(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                report.ran += 1
                report.errors += row["status"] == "error"
                report.timeouts += row["status"] == "timeout"
                if on_result is not None:
                    on_result(row)

        try:
            asyncio.run(_run_items(exp, todo, app, scorers, settings, commit, committed))
        finally:
            report.flushed = commit.close()
        report.figures, report.figures_expected, report.figures_error = finish(
            store, data_dir, exp, settings.wait_s, on_figures
        )
    report.seconds = time.monotonic() - started
    return report


def start_tracing(endpoint: str, trace_project: str) -> sl.Spanlake:
    """The SDK, exporting to the spanlake at `endpoint` into `trace_project` (service name
    $OTEL_SERVICE_NAME, else `spanlake-experiment`)."""
    service = os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME
    return sl.setup(endpoint=endpoint, service_name=service, project=trace_project)


class Committer:
    """Commits finished items' result lines: first their spans are handed to spanlake (an SDK
    flush), then the lines are appended and fsynced, so a line never exists without its trace
    having been sent (store.py, "Exactly once"). One fsync per batch, not per item."""

    def __init__(self, handle: sl.Spanlake, writer: ResultWriter) -> None:
        self.handle = handle
        self.writer = writer
        self.flushed = True  # every flush so far finished in time

    def __call__(self, rows: list[dict[str, Any]]) -> None:
        self.flushed = self.handle.flush(FLUSH_S) and self.flushed  # the items' spans first
        self.writer.append(rows)

    def close(self) -> bool:
        """Flush what is left, stop the SDK; True when every flush finished in time."""
        self.flushed = self.handle.flush(FLUSH_S) and self.flushed
        self.handle.shutdown()
        return self.flushed


def finish(
    store: Store,
    data_dir: DataDir,
    exp: Experiment,
    wait_s: float,
    on_figures: Callable[[int, int], None] | None = None,
) -> tuple[int, int, str | None]:
    """Read every finished item's cost, duration and outcome from the lake (waiting at most
    `wait_s` for its trace), store them and mark the experiment finished. Returns (items with
    figures, items expected, why reading the lake failed or None: the results stand and
    `--resume` reads the figures again)."""
    results = exp.results()
    error = None
    try:
        an = Analytics(Lake(data_dir))
        figures, expected = collect_figures(an, exp.id, exp.record["trace_project"], results, wait_s, on_figures)
    except Exception as e:
        error = f"{type(e).__name__}: {e}"[:MAX_ERROR]
        figures, expected = {}, sum(1 for r in results.values() if r.get("trace_id"))
    store.write_figures(exp, figures, collected_at=_now(), expected=expected, found=len(figures), error=error)
    store.update(exp, status="finished", finished_at=_now(), items=len(results))
    return len(figures), expected, error
