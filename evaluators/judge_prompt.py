"""An LLM judge's prompt and answer: the template filled from a Target, the system message
that states the rubric and the answer format, and the answer parsed (or refused).

The answer must be one JSON object:

    {"verdict": "pass" | "fail", "score": number | null, "failure_mode": string | null, "reason": string}

`failure_mode` must be one of the project's failure modes (storage.label_schema), `score`
inside the evaluator's range (its `score_min`/`score_max`, else the project's). Anything
else is refused with a non-transient EvaluationError that quotes the start of the answer:
asking the same judge again would get the same kind of answer.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

import orjson

from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.target import TEMPLATE_VARIABLES, Target
from spanlake.storage.label_schema import LabelSchema

DEFAULT_RUBRIC = (
    "Pass when the output answers the input correctly and completely, using only facts supported "
    "by the context given (documents, conversation, tool results); fail otherwise."
)
MAX_REASON_CHARS = 2000
QUOTE_CHARS = 120

ScoreRange = tuple[float | None, float | None]


def _text(value: Any) -> str:
    """A field's text: strings as they are, None as "", text parts joined, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, Mapping) for p in value):
        parts = [p.get("text", p.get("content")) for p in value]
        if all(isinstance(p, str) for p in parts):
            return " ".join(parts)
    return orjson.dumps(value, default=str).decode()


def template_values(target: Target) -> dict[str, str]:
    """The values of TEMPLATE_VARIABLES for `target` (every one a string; missing ones "")."""
    conversation = "\n".join(f"{m.get('role', '')}: {_text(m.get('content'))}" for m in target.messages)
    documents = "\n".join(f"[{i}] {_text(d.get('content'))}" for i, d in enumerate(target.documents, 1))
    tool_calls = "\n".join(f"{c.get('name', '')}({_text(c.get('arguments'))})" for c in target.tool_calls)
    values = {
        "input": _text(target.input),
        "output": _text(target.output),
        "conversation": conversation,
        "documents": documents,
        "tool_calls": tool_calls,
        "expected_output": _text(target.expected_output),
        "model": _text(target.model),
        "prompt_name": _text(target.prompt_name),
        "prompt_version": _text(target.prompt_version),
        "task_name": _text(target.task_name),
    }
    assert tuple(values) == TEMPLATE_VARIABLES  # one place names them all
    return values


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order; EvaluationError when it does not parse."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise EvaluationError(f"the template does not parse: {e} (write literal braces as {{{{ and }}}})") from None


def render(template: str, target: Target) -> str:
    """The template (str.format syntax, literal braces doubled) with `target`'s values."""
    for name in template_fields(template):
        if name not in TEMPLATE_VARIABLES:
            shown = f"{{{name}}}" if name else "{}"
            raise EvaluationError(
                f"the template names {shown}, which is not a template variable "
                f"(one of: {', '.join(TEMPLATE_VARIABLES)}; write literal braces as {{{{ and }}}})"
            )
    try:
        return template.format_map(template_values(target))
    except (ValueError, KeyError, IndexError) as e:
        raise EvaluationError(f"the template cannot be filled: {e}") from None


def _score_text(score_range: ScoreRange) -> str:
    lo, hi = score_range
    if lo is not None and hi is not None:
        return f"a number from {lo:g} to {hi:g} (higher is better)"
    if lo is not None:
        return f"a number of at least {lo:g} (higher is better)"
    if hi is not None:
        return f"a number of at most {hi:g} (higher is better)"
    return "a number (higher is better), or null"


def system_message(rubric: str | None, failure_modes: list[str], score_range: ScoreRange) -> str:
    """The judge's instructions: the rubric, then the answer's JSON format."""
    modes = ", ".join(f'"{m}"' for m in failure_modes)
    return (
        "You are an evaluator. Judge the content of the user's message against this rubric:\n\n"
        f"{(rubric or DEFAULT_RUBRIC).strip()}\n\n"
        "Reply with one JSON object and nothing else, with these keys:\n"
        '  "verdict": "pass" or "fail"\n'
        f'  "score": {_score_text(score_range)}\n'
        f'  "failure_mode": when the verdict is "fail", one of {modes}; otherwise null\n'
        '  "reason": one or two sentences explaining the verdict'
    )


def _quote(text: str) -> str:
    head = text.strip()
    return repr(head[:QUOTE_CHARS] + ("…" if len(head) > QUOTE_CHARS else ""))


def _strip_fence(text: str) -> str:
    """The JSON inside a ```json fence, which some models add around their answer."""
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and len(body) >= 6:
        body = body[3:-3]
        first, _, rest = body.partition("\n")
        body = rest if first.strip().lower() in ("json", "") else body
    return body.strip()


def parse_answer(text: str, schema: LabelSchema, score_range: ScoreRange = (None, None)) -> Result:
    """The judge's answer as a Result (reason → comment); EvaluationError (not transient) when
    it is not such a JSON object, or breaks the verdict, score range or failure-mode list."""
    try:
        answer = orjson.loads(_strip_fence(text))
    except orjson.JSONDecodeError:
        raise EvaluationError(f"the judge's answer is not JSON: {_quote(text)}") from None
    if not isinstance(answer, dict):
        raise EvaluationError(f"the judge's answer is not a JSON object: {_quote(text)}")
    verdict = answer.get("verdict")
    verdict = verdict.strip().lower() if isinstance(verdict, str) else verdict
    if verdict not in ("pass", "fail"):
        raise EvaluationError(f'the judge\'s verdict must be "pass" or "fail", not {verdict!r}: {_quote(text)}')
    score = answer.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise EvaluationError(f"the judge's score must be a number or null, not {score!r}: {_quote(text)}")
        lo, hi = score_range
        if (lo is not None and score < lo) or (hi is not None and score > hi):
            shown = f"[{'' if lo is None else f'{lo:g}'}, {'' if hi is None else f'{hi:g}'}]"
            raise EvaluationError(f"the judge's score {score:g} is outside the range {shown}: {_quote(text)}")
        score = float(score)
    mode = answer.get("failure_mode") or None
    if mode is not None and (not isinstance(mode, str) or mode not in schema.failure_modes):
        raise EvaluationError(
            f"the judge's failure_mode {mode!r} is not in the project's list "
            f"({', '.join(schema.failure_modes)}): {_quote(text)}"
        )
    reason = answer.get("reason")
    reason = None if reason is None else (reason if isinstance(reason, str) else str(reason))[:MAX_REASON_CHARS]
    return Result(verdict=verdict, score=score, failure_mode=mode if verdict == "fail" else None, comment=reason)
