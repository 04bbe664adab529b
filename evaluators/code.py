"""The built-in code evaluators: one small function per kind, `(params, target) -> Result | None`.

`params` are the evaluator's own keys (evaluators.definition: validated when the file is
read); None means "not applicable" (nothing to judge: no output recorded, no expected output
outside a dataset, no retrieval). A fail carries the kind's failure mode (or the evaluator's
`failure_mode`; "—": none unless the evaluator sets one, since the default label schema has
no failure mode for a wrong answer) and a comment saying what failed. docs/evaluators.md has the table.

| kind            | fails when                                              | failure mode     | score        |
|-----------------|---------------------------------------------------------|------------------|--------------|
| json_valid      | the output is not JSON (an empty output included)       | format_error     |              |
| json_schema     | not JSON, or not valid against the schema               | format_error     |              |
| regex           | the pattern is absent (expect present) or present       | format_error     |              |
| contains        | the expected output (trimmed) is not in the output      | —                |              |
| equals          | the output differs from the expected (both trimmed)     | —                |              |
| fuzzy           | similarity < threshold                                  | —                | similarity   |
| pii             | a detector finds PII (expect absent) or finds none      | policy_violation |              |
| threshold       | the metric is above max or below min                    | too_slow / too_expensive | the value |
| retrieval_empty | every retrieval in scope returned no document           | retrieval_miss   |              |
| tool_call       | the tool was not called (or was), or its arguments do not match | wrong_tool |       |

PII detection reuses the collector's redaction builtins (collector.redact_rules: `email`,
`api_key`, `card_number`): a detector finds PII when its redaction changes the text.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from spanlake.collector.redact_rules import BUILTINS, builtin_rule
from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.target import Target

Check = Callable[[Mapping[str, Any], Target], Result | None]
METRICS = ("latency_ms", "cost_usd", "input_tokens", "output_tokens", "total_tokens")
PII_DETECTORS = tuple(BUILTINS)
QUOTE = 80  # characters of the output quoted in a comment


def _fail(params: Mapping[str, Any], default_mode: str | None, comment: str, score: float | None = None) -> Result:
    return Result("fail", score, params.get("failure_mode") or default_mode, comment)


def _pass(score: float | None = None, comment: str | None = None) -> Result:
    return Result("pass", score, None, comment)


def _quote(text: str) -> str:
    return repr(text if len(text) <= QUOTE else text[:QUOTE] + "…")


# --- JSON ---------------------------------------------------------------------------------------


def _parse_output(params: Mapping[str, Any], output: str) -> tuple[Any, Result | None]:
    """(the output's JSON value, None), or (None, the fail saying why it is not JSON)."""
    if not output.strip():
        return None, _fail(params, "format_error", "output is empty, not JSON")
    try:
        return orjson.loads(output), None
    except orjson.JSONDecodeError as e:
        return None, _fail(params, "format_error", f"output is not JSON ({e}): {_quote(output)}")


def json_valid(params: Mapping[str, Any], target: Target) -> Result | None:
    if target.output is None:
        return None
    _, failed = _parse_output(params, target.output)
    return failed or _pass()


@functools.lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        raise EvaluationError(f"not a valid JSON Schema: {e.message}") from None
    return cls(schema)


@functools.lru_cache(maxsize=64)
def _schema_file(path: Path, mtime_ns: int) -> bytes:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise EvaluationError(f"cannot read the schema file {path}: {e}") from None
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def schema_of(params: Mapping[str, Any], data_dir: Path | None = None) -> bytes:
    """The schema of a json_schema evaluator (`schema`, or `schema_file` relative to the data
    directory) as canonical JSON; EvaluationError when it cannot be read."""
    if params.get("schema") is not None:
        return orjson.dumps(params["schema"], option=orjson.OPT_SORT_KEYS)
    name = params.get("schema_file")
    if not name:
        raise EvaluationError("json_schema needs `schema` or `schema_file`")
    path = Path(name).expanduser()
    if not path.is_absolute():
        if data_dir is None:
            raise EvaluationError(f"schema_file {name!r} is relative and no data directory is known")
        path = Path(data_dir) / path
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise EvaluationError(f"cannot read the schema file {path}: {e.strerror}") from None
    return _schema_file(path, mtime)


def _path(error: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def describe_error(error: Any) -> str:
    """One line for a jsonschema ValidationError: "missing required property 'answer'" or
    "$.items[0]: 3 is not of type 'string'"."""
    if error.validator == "required":
        missing = next((r for r in error.validator_value if r not in (error.instance or {})), None)
        where = "" if not error.absolute_path else f" at {_path(error)}"
        if missing is not None:
            return f"missing required property {missing!r}{where}"
    return f"{_path(error)}: {error.message}" if error.absolute_path else error.message


def matches_schema(value: Any, schema_json: bytes) -> str | None:
    """None when `value` is valid against the schema, else what is wrong (the first error)."""
    errors = sorted(_validator(schema_json).iter_errors(value), key=lambda e: (list(e.absolute_path), e.message))
    return describe_error(errors[0]) if errors else None


def json_schema(params: Mapping[str, Any], target: Target, data_dir: Path | None = None) -> Result | None:
    if target.output is None:
        return None
    schema = schema_of(params, data_dir)
    value, failed = _parse_output(params, target.output)
    if failed:
        return failed
    problem = matches_schema(value, schema)
    return _fail(params, "format_error", problem) if problem else _pass()


# --- text ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as e:
        raise EvaluationError(f"invalid regex {text!r}: {e}") from None


def _field(params: Mapping[str, Any], target: Target) -> tuple[str, str | None]:
    name = params.get("field", "output")
    if name not in ("output", "input"):
        raise EvaluationError(f"field must be output or input, not {name!r}")
    return name, target.output if name == "output" else target.input


def regex(params: Mapping[str, Any], target: Target) -> Result | None:
    name, text = _field(params, target)
    if text is None:
        return None
    pattern = params["pattern"]
    found = _pattern(pattern).search(text)
    if params.get("expect", "present") == "absent":
        if found:
            return _fail(params, "format_error", f"pattern {pattern!r} found in {name}: {_quote(found.group(0))}")
        return _pass()
    return _pass() if found else _fail(params, "format_error", f"pattern {pattern!r} not found in {name}")


def _compared(params: Mapping[str, Any], target: Target) -> tuple[str, str] | None:
    """(output, expected), trimmed and case-folded unless case_sensitive; None when not applicable."""
    if target.expected_output is None:
        return None
    out, expected = (target.output or "").strip(), target.expected_output.strip()
    if not params.get("case_sensitive", True):
        out, expected = out.casefold(), expected.casefold()
    return out, expected


def contains(params: Mapping[str, Any], target: Target) -> Result | None:
    pair = _compared(params, target)
    if pair is None:
        return None
    out, expected = pair
    if target.output is None:
        return _fail(params, None, "no output recorded")
    if expected in out:
        return _pass()
    return _fail(params, None, f"output does not contain the expected output {_quote(expected)}")


def equals(params: Mapping[str, Any], target: Target) -> Result | None:
    pair = _compared(params, target)
    if pair is None:
        return None
    out, expected = pair
    if target.output is None:
        return _fail(params, None, "no output recorded")
    if out == expected:
        return _pass()
    return _fail(params, None, f"output {_quote(out)} differs from the expected output {_quote(expected)}")


def similarity(a: str, b: str) -> float:
    """difflib's ratio (2 * matching characters / total length; 1.0 for two empty texts)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def fuzzy(params: Mapping[str, Any], target: Target) -> Result | None:
    pair = _compared(params, target)
    if pair is None:
        return None
    out, expected = pair
    threshold = float(params.get("threshold", 0.8))
    score = round(similarity(out, expected), 6) if target.output is not None else 0.0
    if score >= threshold:
        return _pass(score)
    return _fail(params, None, f"similarity {score:.3f} to the expected output < {threshold}", score)


# --- PII ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _detectors(names: tuple[str, ...]) -> tuple[tuple[str, Callable[[str], str]], ...]:
    try:
        return tuple((n, builtin_rule(n).apply) for n in names)
    except ValueError as e:
        raise EvaluationError(str(e)) from None


def find_pii(text: str, detectors: tuple[str, ...] = PII_DETECTORS) -> dict[str, int]:
    """How many of each kind of PII the collector's redaction detectors find in `text`."""
    found = {}
    for name, redact in _detectors(detectors):
        new = redact(text)
        if new != text:
            tag = f"[REDACTED:{name}]"
            found[name] = max(new.count(tag) - text.count(tag), 1)
    return found


def pii(params: Mapping[str, Any], target: Target) -> Result | None:
    name, text = _field(params, target)
    if text is None:
        return None
    found = find_pii(text, tuple(params.get("detectors") or PII_DETECTORS))
    listed = ", ".join(f"{n} ({c})" for n, c in found.items())
    if params.get("expect", "absent") == "present":
        return _pass(comment=f"found {listed}") if found else _fail(params, "policy_violation", f"no PII in {name}")
    return _fail(params, "policy_violation", f"PII in {name}: {listed}") if found else _pass()


# --- figures ------------------------------------------------------------------------------------


def threshold(params: Mapping[str, Any], target: Target) -> Result | None:
    metric = params["metric"]
    if metric not in METRICS:
        raise EvaluationError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    value = getattr(target, metric)
    if value is None:
        return None
    mode = "too_slow" if metric == "latency_ms" else "too_expensive"
    high, low = params.get("max"), params.get("min")
    if high is not None and value > high:
        return _fail(params, mode, f"{metric} {value:g} > max {high:g}", float(value))
    if low is not None and value < low:
        return _fail(params, mode, f"{metric} {value:g} < min {low:g}", float(value))
    return _pass(float(value))


def retrieval_empty(params: Mapping[str, Any], target: Target) -> Result | None:
    if not target.retrievals:
        return None
    if any(r["documents"] for r in target.retrievals):
        return _pass()
    names = ", ".join(sorted({str(r["name"]) for r in target.retrievals}))
    n = len(target.retrievals)
    return _fail(params, "retrieval_miss", f"{n} retrieval{'s' if n > 1 else ''} returned no document ({names})")


def tool_call(params: Mapping[str, Any], target: Target) -> Result | None:
    tool = params["tool"]
    calls = [c for c in target.tool_calls if c.get("name") == tool]
    if not params.get("called", True):
        if calls:
            return _fail(params, "wrong_tool", f"tool {tool!r} was called {len(calls)} time{'s' * (len(calls) > 1)}")
        return _pass()
    if not calls:
        names = sorted({str(c.get("name")) for c in target.tool_calls})
        other = f" (called: {', '.join(names)})" if names else " (no tool was called)"
        return _fail(params, "wrong_tool", f"tool {tool!r} was not called{other}")
    schema = params.get("arguments_schema")
    if schema is not None:
        schema_json = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        for i, c in enumerate(calls, 1):
            args = c.get("arguments")
            if isinstance(args, str):
                return _fail(params, "wrong_tool", f"call {i} of {tool!r}: arguments are not JSON: {_quote(args)}")
            problem = matches_schema(args, schema_json)
            if problem:
                return _fail(params, "wrong_tool", f"call {i} of {tool!r}: arguments {problem}")
    return _pass()


CHECKS: dict[str, Check] = {
    "json_valid": json_valid,
    "json_schema": json_schema,
    "regex": regex,
    "contains": contains,
    "equals": equals,
    "fuzzy": fuzzy,
    "pii": pii,
    "threshold": threshold,
    "retrieval_empty": retrieval_empty,
    "tool_call": tool_call,
}
