"""A pytest session recorded as one experiment (the plugin of experiments/pytest_plugin.py, once
enabled).

Every test that requests `spanlake_item` runs once per item of the dataset version. Each such
test runs inside the item's SDK task span with the experiment's attributes (experiments.run
`item_task`), exported to the running spanlake; the item's result line (the store's layout, so
`spanlake experiment show/compare` and `spanlake gate` read it) is written when the item's last
test has finished:

- the item's checks: one per test, named by the test (`test_answer`, `TestBot::test_reply[gpt]`),
  passed when the test passed; a test that fails an assertion (or `pytest.fail`) fails its check,
  so the item fails with the test's name as failure mode (experiments.scoring.decide);
- `status` error when a test raised anything else, or its setup or teardown failed (failure
  mode `error`); a skipped test is not part of the item, an item whose tests were all skipped
  has no result;
- `output`: what the test stored with `spanlake_item.record(output)` (several tests recording:
  a JSON object by test name); a test may mark the outcome with `spanlake.sdk.current_task()`;
- the trace: all tests of an item share one trace (the first test's task is its root), so the
  item's cost counts every test; its latency is the first test's.

Lines are committed as experiments.run commits them (spans flushed, then lines fsynced, in
batches every COMMIT_EVERY_S). At the end of the session the lake figures are read (`finish`),
and with a baseline and rules the gate runs: its Markdown goes to the terminal summary and to
$GITHUB_STEP_SUMMARY, and the session's exit code becomes the gate's (0 pass; 1 fail or not
enough data), since failing items are the experiment's data, not failures of the suite; other
tests that fail still fail the session.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry import trace

from spanlake.experiments import offline
from spanlake.experiments.gate import GateError, GateResult, evaluate, load_budgets, load_rules
from spanlake.experiments.items import DatasetItem, DatasetRef, load_items, resolve
from spanlake.experiments.markdown import append_summary, gate_markdown
from spanlake.experiments.pytest_plugin import FIXTURE
from spanlake.experiments.run import (
    COMMIT_EVERY_S,
    MAX_ERROR,
    Committer,
    Settings,
    finish,
    item_task,
    output_text,
    probe,
    start,
    start_tracing,
)
from spanlake.experiments.scoring import decide
from spanlake.experiments.store import Experiment, ExperimentError, Store, cut_output
from spanlake.storage.layout import DataDir

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
MAX_APP = 500  # characters of the test list kept as the experiment's `app`


class SpanlakeItem:
    """What the `spanlake_item` fixture gives a test: one dataset item, and `record(output)`."""

    def __init__(self, item: DatasetItem) -> None:
        self.item = item
        self.output: str | None = None
        self.recorded = False

    id = property(lambda self: self.item.id, doc="The example id.")
    input = property(lambda self: self.item.input, doc="The user's input text.")
    expected_output = property(lambda self: self.item.expected_output, doc="The expected output, or None.")
    metadata = property(lambda self: self.item.metadata, doc="Model, prompt version, trace link...")
    messages = property(lambda self: self.item.messages, doc="The first model call's input messages.")
    variables = property(lambda self: self.item.variables, doc="The prompt variables, or None.")
    context = property(lambda self: self.item.context, doc="The retrieved documents' text.")

    def record(self, output: Any) -> None:
        """Store the item's output: a str as is, bytes decoded, anything else as its JSON (the
        last call wins)."""
        self.output = cut_output(output_text(output))
        self.recorded = True

    def __repr__(self) -> str:
        return f"SpanlakeItem({self.item.id!r})"


@dataclass
class ItemTest:
    """One test of one item, as it ran."""

    item_id: str
    name: str  # the check's name
    outcome: str = "skipped"  # passed, failed, error, skipped
    message: str | None = None
    output: str | None = None
    recorded: bool = False
    app_outcome: str | None = None
    app_reason: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    wall_ms: float = 0.0


def param_id(item_id: str) -> str:
    """The item's part of a test's id (`test_answer[<this>]`): the item id, ASCII-escaped as
    pytest would, so that `check_name` finds it."""
    return item_id.encode("unicode_escape").decode("ascii")


def check_name(item: pytest.Item, item_id: str) -> str:
    """A test's name as a check: its node id without the file and without the item's id."""
    name = item.nodeid.split("::", 1)[-1]
    base, _, params = name.partition("[")
    rest = params.removesuffix("]").replace(param_id(item_id), "", 1).strip("-")
    return f"{base}[{rest}]" if rest else base


def _message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return f"{report.when}: {text}"[:MAX_ERROR]


def item_row(item_id: str, tests: list[ItemTest]) -> dict[str, Any] | None:
    """The item's result line from its tests (None when every test was skipped)."""
    ran = [t for t in tests if t.outcome != "skipped"]
    if not ran:
        return None
    row: dict[str, Any] = {
        "item_id": item_id,
        "started_at": min((t.started_at for t in ran if t.started_at), default=None),
        "finished_at": max((t.finished_at for t in ran if t.finished_at), default=None),
        "status": "ok",
        "tests": {t.name: t.outcome for t in ran},
        "checks": {t.name: t.outcome == "passed" for t in ran if t.outcome in ("passed", "failed")},
        "wall_ms": sum(t.wall_ms for t in ran),
    }
    traced = next((t for t in ran if t.trace_id), None)
    if traced is not None:
        row["trace_id"], row["span_id"] = traced.trace_id, traced.span_id
    messages = {t.name: t.message for t in ran if t.message}
    if messages:
        row["messages"] = messages
    errors = [t for t in ran if t.outcome == "error"]
    if errors:
        row["status"], row["error"] = "error", errors[0].message
    outputs = {t.name: t.output for t in ran if t.recorded}
    if len(outputs) == 1:
        row["output"] = next(iter(outputs.values()))
    elif outputs:
        row["output"] = cut_output(output_text(outputs))
    marked = [t for t in ran if t.app_outcome == "failure"] or [t for t in ran if t.app_outcome]
    if marked:
        row["app_outcome"], row["app_reason"] = marked[0].app_outcome, marked[0].app_reason
    row["success"], row["failure_mode"] = decide(row)
    return row


class ExperimentSession:
    """The enabled plugin: parametrizes `spanlake_item`, traces and records each test, finishes
    the experiment and runs the gate at the end of the session."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        dataset: str,
        project: str,
        data_dir: str,
        endpoint: str,
        trace_project: str | None,
        meta: list[str],
        wait_s: float,
        baseline: str | None,
        rules: str | None,
    ) -> None:
        self.config = config
        self.store = Store(data_dir)
        self.data_dir = DataDir(data_dir)
        self.project = project
        self.wait_s = wait_s
        try:
            self.ref = DatasetRef.parse(dataset)
            self.settings = Settings(
                app="pytest", meta=_meta(meta), endpoint=endpoint, trace_project=trace_project, concurrency=1
            )
            if not self.data_dir.has_lake():
                raise ValueError(
                    f"no lake at {self.data_dir.lake_location}: pass the --spanlake-data-dir spanlake uses"
                )
            self.version = resolve(self.data_dir, project, self.ref)
            self.items = load_items(self.data_dir, self.version)
            self.rules = load_rules(rules) if rules else None
            self.baseline = self.store.get(baseline) if baseline else None
        except (ValueError, LookupError, ExperimentError) as e:  # GateError is a ValueError
            raise pytest.UsageError(f"spanlake: {e}") from None
        if (why := probe(endpoint)) is not None:
            raise pytest.UsageError(
                f"spanlake: no spanlake at {endpoint} ({why}): start it or pass --spanlake-endpoint"
            )
        self.tests: dict[str, ItemTest] = {}  # by node id
        self.remaining: dict[str, int] = {}  # tests still to finish, by item id
        self.parents: dict[str, trace.SpanContext] = {}  # the trace each item's tests share
        self.exp: Experiment | None = None
        self.committer: Committer | None = None
        self.pending: list[dict[str, Any]] = []
        self.last_commit = time.monotonic()
        self.stack = contextlib.ExitStack()
        self.other_failures = 0
        self.lines: list[str] = []  # the terminal summary
        self.gate: GateResult | None = None
        self.gate_text: str | None = None
        self.verdict_line: str | None = None

    # -- collection -------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if FIXTURE in metafunc.fixturenames:
            metafunc.parametrize(FIXTURE, self.items, ids=[param_id(i.id) for i in self.items], indirect=True)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for node in session.items:
            callspec = getattr(node, "callspec", None)
            item = callspec.params.get(FIXTURE) if callspec is not None else None
            if isinstance(item, DatasetItem):
                self.tests[node.nodeid] = ItemTest(item.id, check_name(node, item.id))
                self.remaining[item.id] = self.remaining.get(item.id, 0) + 1

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        if self.exp is None and nodeid in self.tests:
            self._start()

    def _start(self) -> None:
        """Create the experiment (at its first test: not for --collect-only, nor when collection
        failed), hold its run lock and start tracing."""
        functions = sorted({nodeid.partition("[")[0] for nodeid in self.tests})
        app = ("pytest " + " ".join(functions))[:MAX_APP]
        settings = Settings(**(self.settings.__dict__ | {"app": app}))
        self.exp = start(self.store, self.data_dir, self.project, self.ref, settings)
        writer = self.stack.enter_context(self.store.running(self.exp))
        self.store.update(self.exp, runner="pytest", tests=len(self.tests))
        self.committer = Committer(start_tracing(settings.endpoint, self.exp.record["trace_project"]), writer)

    def item_for(self, item: DatasetItem) -> SpanlakeItem:
        """The fixture's value for one test."""
        return SpanlakeItem(item)

    # -- each test --------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Any:
        test = self.tests.get(item.nodeid)
        handle = getattr(item, "funcargs", {}).get(FIXTURE)
        if test is None or self.exp is None or not isinstance(handle, SpanlakeItem):
            return (yield)
        row: dict[str, Any] = {}
        test.started_at = _now()
        t0 = time.perf_counter()
        stopped: BaseException | None = None  # a failed assertion or a skip: re-raised after the span
        try:
            with item_task(self.exp, test.item_id, self.settings.meta, row, self.parents.get(test.item_id)) as task:
                try:
                    result = yield
                except (AssertionError, pytest.fail.Exception) as e:
                    test.outcome, test.message = "failed", f"{type(e).__name__}: {e}"[:MAX_ERROR]
                    stopped = e
                except pytest.skip.Exception as e:
                    test.outcome, stopped = "skipped", e
                except Exception as e:  # the app raised: the SDK records it on the span
                    test.outcome, test.message = "error", f"{type(e).__name__}: {e}"[:MAX_ERROR]
                    raise
                else:
                    test.outcome = "passed"
                if task.outcome is not None:
                    test.app_outcome, test.app_reason = task.outcome, task.outcome_reason
                if test.outcome == "failed" and task.outcome != "failure":
                    task.fail(test.name)  # the failure mode, as the lake's outcome reason
        finally:
            test.wall_ms = (time.perf_counter() - t0) * 1000
            test.finished_at = _now()
            test.output, test.recorded = handle.output, handle.recorded
            test.trace_id, test.span_id = row.get("trace_id"), row.get("span_id")
            if test.outcome != "skipped" and test.item_id not in self.parents:
                ctx = task_context(row)
                if ctx is not None:
                    self.parents[test.item_id] = ctx
        if stopped is not None:
            raise stopped
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self.tests.get(report.nodeid)
        if test is None:
            self.other_failures += report.failed
        elif report.failed and report.when in ("setup", "teardown"):
            test.outcome = "error"
            test.message = test.message or _message(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        test = self.tests.get(nodeid)
        if test is None or self.exp is None:
            return
        self.remaining[test.item_id] -= 1
        if self.remaining[test.item_id] == 0:
            self._done(test.item_id)
        if time.monotonic() - self.last_commit >= COMMIT_EVERY_S:
            self._commit()

    def _done(self, item_id: str) -> None:
        row = item_row(item_id, [t for t in self.tests.values() if t.item_id == item_id])
        if row is not None:
            self.pending.append(row)
        self.remaining.pop(item_id, None)

    def _commit(self) -> None:
        if self.pending and self.committer is not None:
            self.committer(self.pending)
        self.pending = []
        self.last_commit = time.monotonic()

    # -- the end ----------------------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        gating = self.rules is not None and self.baseline is not None
        if self.exp is None:
            if not self.config.option.collectonly and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                self.lines.append(f"no test requesting {FIXTURE} ran: no experiment recorded")
                if gating:
                    self.verdict_line = "the session fails (nothing to gate; exit code 1)"
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        try:
            self._finish_experiment(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        finally:
            self.stack.close()  # the run lock
        if gating:
            verdict = self._gate()
            if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
                ok = verdict == "pass" and self.other_failures == 0
                session.exitstatus = pytest.ExitCode.OK if ok else pytest.ExitCode.TESTS_FAILED
                why = "other tests failed" if verdict == "pass" and not ok else f"gate: {verdict}"
                code = int(session.exitstatus)
                self.verdict_line = f"the session {'passes' if ok else 'fails'} ({why}; exit code {code})"

    def _finish_experiment(self, interrupted: bool) -> None:
        assert self.exp is not None and self.committer is not None
        for item_id in [i for i, n in self.remaining.items() if n > 0]:  # interrupted (-x, Ctrl-C)
            self._done(item_id)
        self._commit()
        flushed = self.committer.close()
        wait_s = 0.0 if interrupted else self.wait_s  # Ctrl-C: read what is there, at once
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and wait_s > 0:
            reporter.write_line(
                f"spanlake: reading the experiment's cost and latency from the lake (at most {wait_s:g} s)"
            )
        found, expected, error = finish(self.store, self.data_dir, self.exp, wait_s)
        side = offline.experiment_side(self.exp)
        wins = sum(i.success is True for i in side.items)
        ds = self.exp.record["dataset"]
        self.lines.append(
            f"experiment {self.exp.id} over {ds['name']}@{ds['version']} ({self.exp.project}): "
            f"{len(side.items)} item(s), {wins} passed; cost and latency from the lake for {found}/{expected}"
        )
        self.lines.append(f"  `spanlake experiment show {self.exp.id} --data-dir {self.store.root.parent}`")
        if error:
            self.lines.append(f"  could not read cost and latency from the lake: {error}")
        if not flushed:
            self.lines.append("  warning: not every span was delivered to spanlake in time")

    def _gate(self) -> str:
        assert self.exp is not None and self.baseline is not None and self.rules is not None
        try:
            a, b = offline.experiment_side(self.baseline), offline.experiment_side(self.exp)
            paired = offline.paired(self.baseline, self.exp)
            self.gate = evaluate(self.rules, a, b, paired=paired, budgets=load_budgets(self.data_dir.root))
        except (GateError, ExperimentError) as e:
            self.lines.append(f"gate: {e}")
            return "error"
        self.gate_text = gate_markdown(self.gate, offline.trace_links([self.baseline, self.exp]))
        if (why := append_summary(self.gate_text, os.environ.get(SUMMARY_ENV))) is not None:
            self.lines.append(f"warning: {why}")
        return self.gate.verdict

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines and self.gate_text is None:
            return
        terminalreporter.write_sep("=", "spanlake experiment")
        for line in self.lines:
            terminalreporter.write_line(line)
        if self.gate_text is not None:
            terminalreporter.write("\n" + self.gate_text + "\n")
        if self.verdict_line:
            terminalreporter.write_line(self.verdict_line, bold=True)


def task_context(row: dict[str, Any]) -> trace.SpanContext | None:
    """The span context of the task whose ids `item_task` put in `row`."""
    if not row.get("trace_id"):
        return None
    return trace.SpanContext(
        int(row["trace_id"], 16), int(row["span_id"], 16), is_remote=False, trace_flags=trace.TraceFlags(1)
    )


def _meta(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--spanlake-meta {v!r}: use KEY=VALUE (e.g. prompt_version=v2)")
        out[key.strip()] = value
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat()
