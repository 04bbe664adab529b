"""The dispatcher on Python callables: answers, raises, hangs and bad return values."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from spanlake.evaluators import run as run_module
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.run import evaluate
from spanlake.evaluators.target import Target
from tests.evaluators import callables

M = "tests.evaluators.callables"


def py(name: str, **params: Any) -> Evaluator:
    return Evaluator(name="py", kind="python", params={"callable": f"{M}:{name}", **params})


def target(output: str | None) -> Target:
    return Target(project="p", trace_id="b" * 32, output=output)


def test_bool_dict_result_and_none_answers() -> None:
    assert evaluate(py("short_answer"), target("yes it is")) == Result("pass")
    assert evaluate(py("short_answer"), target("no, that is too long")) == Result("fail")
    assert evaluate(py("short_answer", failure_mode="format_error"), target("one two three four")) == Result(
        "fail", failure_mode="format_error"
    )
    assert evaluate(py("short_answer"), target(None)) is None
    assert evaluate(py("graded"), target("a b c d e")) == Result("fail", 5.0, None, "5 words")
    assert evaluate(py("as_result"), target("x")) == Result(
        "fail", 0.25, "hallucination", "made up", {"checked": "b" * 32}
    )


def test_callable_is_looked_up_once() -> None:
    run_module.load_callable.cache_clear()
    callables.CALLS.clear()
    for i in range(3):
        evaluate(py("counted"), target(str(i)))
    info = run_module.load_callable.cache_info()
    assert (info.misses, info.hits) == (1, 2) and callables.CALLS == ["0", "1", "2"]


def test_raise_is_an_error_naming_the_exception() -> None:
    with pytest.raises(EvaluationError, match=rf"^{M}:raises raised KeyError: 'answer'$") as e:
        evaluate(py("raises"), target("x"))
    assert e.value.transient is False


def test_hang_times_out_and_the_caller_goes_on() -> None:
    callables.RELEASE.clear()
    t0 = time.monotonic()
    with pytest.raises(EvaluationError, match=rf"^{M}:hangs: timed out after 0.3 s$"):
        evaluate(py("hangs", timeout_s=0.3), target("x"))
    assert 0.3 <= time.monotonic() - t0 < 2
    assert evaluate(py("short_answer"), target("still here")) == Result("pass")  # the next one runs
    # hung threads pile up to MAX_HUNG, then the callable is refused at once
    for _ in range(run_module.MAX_HUNG - 1):
        with pytest.raises(EvaluationError, match="timed out"):
            evaluate(py("hangs", timeout_s=0.05), target("x"))
    t0 = time.monotonic()
    with pytest.raises(EvaluationError, match=f"{run_module.MAX_HUNG} earlier calls are still running"):
        evaluate(py("hangs", timeout_s=5), target("x"))
    assert time.monotonic() - t0 < 1
    hung = [t for t in threading.enumerate() if t.name == "evaluator-python"]
    callables.RELEASE.set()  # the hung calls return; their threads end
    for t in hung:
        t.join(5)
    assert evaluate(py("hangs", timeout_s=5), target("x")) == Result("pass")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("returns_text", "returned 'looks fine' (str): return a Result, a bool, a dict"),
        ("returns_bad_dict", "returned {'verdict': 'ok'}: verdict must be pass or fail, not 'ok'"),
        ("returns_unknown_key", "returned a dict with unknown key 'grade'"),
    ],
)
def test_bad_return_value_says_what_was_returned(name: str, message: str) -> None:
    with pytest.raises(EvaluationError) as e:
        evaluate(py(name), target("x"))
    assert str(e.value).startswith(f"{M}:{name} {message}")


def test_bad_callable_paths() -> None:
    with pytest.raises(EvaluationError, match="callable must be 'module:function'"):
        evaluate(Evaluator(name="py", kind="python", params={"callable": "no_colon"}), target("x"))
    with pytest.raises(EvaluationError, match="cannot import 'no_such_module_xyz:f': ModuleNotFoundError"):
        evaluate(Evaluator(name="py", kind="python", params={"callable": "no_such_module_xyz:f"}), target("x"))
    with pytest.raises(EvaluationError, match=f"cannot import '{M}:missing': AttributeError"):
        evaluate(py("missing"), target("x"))
    with pytest.raises(EvaluationError, match="is not callable"):
        evaluate(py("NOT_CALLABLE"), target("x"))
