"""Run one evaluator on one target: `evaluate(evaluator, target) -> Result | None`.

Code kinds run the functions of evaluators.code; `python` imports `module:function` once and
calls it with the Target in a worker thread, at most `timeout_s` (default 5 s); `llm_judge`
asks the evaluator version's JudgeClient (evaluators.judge), kept open by `Judges`.

A Python evaluator returns a Result, a bool (pass/fail), a dict with some of `verdict`,
`score`, `failure_mode`, `comment`, `metadata`, or None (not applicable). Anything else, a
raise, or no answer in time is an EvaluationError naming what happened; the caller records
it on the evaluator and goes on. A thread that hangs cannot be stopped: it is left to finish
on its own (a daemon), and once MAX_HUNG threads of one callable are still running, that
callable is refused until one ends, so a callable that always hangs cannot pile up threads.
"""

from __future__ import annotations

import functools
import importlib
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from spanlake.evaluators import code, judge
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.target import Target

DEFAULT_TIMEOUT_S = 5.0
MAX_HUNG = 4  # threads of one callable still running after their timeout, before it is refused
RESULT_KEYS = ("verdict", "score", "failure_mode", "comment", "metadata")


def evaluate(
    evaluator: Evaluator, target: Target, *, judges: Judges | None = None, data_dir: str | Path | None = None
) -> Result | None:
    """The evaluator's result on `target`, None when it does not apply; EvaluationError when it
    cannot judge (transient ones, e.g. a judge endpoint down, are worth trying again).
    `data_dir` resolves a relative `schema_file` (default: the judges' data directory)."""
    kind, params = evaluator.kind, evaluator.params
    if kind == "llm_judge":
        if judges is None:
            raise EvaluationError(f"evaluator {evaluator.name!r} is an llm_judge: no judge clients were given")
        return judges.client(evaluator).evaluate(target)
    if kind == "python":
        return run_callable(params, target)
    if kind == "json_schema":
        where = data_dir if data_dir is not None else (judges.data_dir if judges is not None else None)
        return code.json_schema(params, target, Path(where) if where is not None else None)
    check = code.CHECKS.get(kind)
    if check is None:
        raise EvaluationError(f"unknown evaluator kind {kind!r}")
    try:
        return check(params, target)
    except (KeyError, TypeError, ValueError) as e:  # params the definition should have refused
        raise EvaluationError(f"{kind}: bad parameters: {type(e).__name__}: {e}") from None


# --- Python callables -------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def load_callable(path: str) -> Callable[[Target], Any]:
    """The function `module:function` names (imported once); EvaluationError when it cannot be."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise EvaluationError(f"callable must be 'module:function', not {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:  # the module's own import-time errors too
        raise EvaluationError(f"cannot import {path!r}: {type(e).__name__}: {e}") from None
    if not callable(obj):
        raise EvaluationError(f"{path!r} is not callable (it is a {type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


class _Worker(threading.Thread):
    """A daemon thread running calls one at a time; abandoned (left to finish) after a timeout."""

    def __init__(self) -> None:
        super().__init__(name="evaluator-python", daemon=True)
        self.inbox: queue.SimpleQueue[tuple[Callable[[Any], Any], Any] | None] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self.start()

    def run(self) -> None:
        while (job := self.inbox.get()) is not None:
            fn, arg = job
            try:
                self.outbox.put((True, fn(arg)))
            except BaseException as e:  # a SystemExit or KeyboardInterrupt raised by user code too
                self.outbox.put((False, e))


class _Pool:
    """Idle workers to reuse, and the hung ones per callable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._hung: dict[str, list[_Worker]] = {}

    def call(self, path: str, fn: Callable[[Any], Any], arg: Any, timeout_s: float) -> Any:
        with self._lock:
            hung = self._hung[path] = [w for w in self._hung.get(path, []) if w.is_alive()]
            if len(hung) >= MAX_HUNG:
                raise EvaluationError(f"{path}: {len(hung)} earlier calls are still running past their timeout")
            worker = self._idle.pop() if self._idle else None
        worker = worker or _Worker()
        worker.inbox.put((fn, arg))
        try:
            ok, value = worker.outbox.get(timeout=timeout_s)
        except queue.Empty:
            worker.inbox.put(None)  # leave when (if ever) the call returns
            with self._lock:
                self._hung.setdefault(path, []).append(worker)
            raise EvaluationError(f"{path}: timed out after {timeout_s:g} s") from None
        with self._lock:
            self._idle.append(worker)
        if not ok:
            raise EvaluationError(f"{path} raised {type(value).__name__}: {value}")
        return value


_POOL = _Pool()


def run_callable(params: Mapping[str, Any], target: Target) -> Result | None:
    """Run a `python` evaluator's callable on `target` (with its timeout) and read its answer."""
    path = str(params.get("callable", ""))
    fn = load_callable(path)
    timeout = float(params.get("timeout_s", DEFAULT_TIMEOUT_S))
    return as_result(_POOL.call(path, fn, target, timeout), path, params.get("failure_mode"))


def as_result(value: Any, path: str, failure_mode: str | None = None) -> Result | None:
    """A callable's answer as a Result (None: not applicable); EvaluationError for anything else."""
    if value is None:
        return None
    if isinstance(value, Result):
        result = value
    elif isinstance(value, bool):
        result = Result("pass" if value else "fail")
    elif isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in RESULT_KEYS)
        if unknown:
            raise EvaluationError(
                f"{path} returned a dict with unknown key {unknown[0]!r} (expected {', '.join(RESULT_KEYS)})"
            )
        score = value.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise EvaluationError(f"{path} returned a score that is not a number: {score!r}")
        meta = value.get("metadata") or {}
        if not isinstance(meta, Mapping):
            raise EvaluationError(f"{path} returned metadata that is not a dict: {meta!r}")
        try:
            result = Result(
                value.get("verdict"),
                float(score) if score is not None else None,
                _text(value.get("failure_mode"), "failure_mode", path),
                _text(value.get("comment"), "comment", path),
                dict(meta),
            )
        except ValueError as e:
            raise EvaluationError(f"{path} returned {_show(value)}: {e}") from None
    else:
        raise EvaluationError(
            f"{path} returned {_show(value)} ({type(value).__name__}): "
            "return a Result, a bool, a dict {verdict, score, failure_mode, comment} or None"
        )
    if result.verdict == "fail" and result.failure_mode is None and failure_mode:
        result = Result(result.verdict, result.score, failure_mode, result.comment, result.metadata)
    return result


def _text(value: Any, name: str, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise EvaluationError(f"{path} returned a {name} that is not text: {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "…"


# --- judges -----------------------------------------------------------------------------------


class Judges:
    """One open JudgeClient per judge evaluator version (project, name, version), closed by
    `close()` (or when a newer set of evaluators no longer has it: `retain`)."""

    def __init__(self, data_dir: str | Path, traces_endpoint: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.traces_endpoint = traces_endpoint
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, int], Any] = {}

    def client(self, evaluator: Evaluator) -> Any:
        """The evaluator version's client, opened on first use."""
        key = (evaluator.project, evaluator.name, evaluator.version)
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = self._clients[key] = judge.JudgeClient(  # type: ignore[attr-defined]
                    evaluator, data_dir=self.data_dir, traces_endpoint=self.traces_endpoint
                )
            return found

    def retain(self, evaluators: Iterable[Evaluator]) -> None:
        """Close the clients of evaluator versions not in `evaluators`."""
        keep = {(e.project, e.name, e.version) for e in evaluators}
        with self._lock:
            gone = [k for k in self._clients if k not in keep]
            clients = [self._clients.pop(k) for k in gone]
        for c in clients:
            c.close()

    def close(self) -> None:
        self.retain(())

    def __enter__(self) -> Judges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
