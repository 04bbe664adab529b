"""What each evaluator kind takes (KIND_KEYS), checked: one table's keys with errors naming
the line of the key at fault, each kind's params with their defaults filled in, JSON Schemas
checked with jsonschema, an LLM judge's template limited to target.TEMPLATE_VARIABLES.

The params are what makes an evaluator's version (definition.Evaluator.fingerprint), so a
default written out or left out is the same version; `schema_file` contributes its content.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import jsonschema
import jsonschema.exceptions

from spanlake.collector.redact_rules import BUILTINS as PII_DETECTORS
from spanlake.evaluators.target import TEMPLATE_VARIABLES
from spanlake.storage.toml_file import ENV_NAME, number

KINDS = (
    "json_valid",
    "json_schema",
    "regex",
    "contains",
    "equals",
    "fuzzy",
    "pii",
    "threshold",
    "retrieval_empty",
    "tool_call",
    "python",
    "llm_judge",
)
THRESHOLD_METRICS = ("latency_ms", "cost_usd", "input_tokens", "output_tokens", "total_tokens")
FIELDS = ("output", "input")
# The failure mode of a fail when the evaluator names none (threshold: too_slow for latency).
DEFAULT_FAILURE_MODES = {
    "json_valid": "format_error",
    "json_schema": "format_error",
    "regex": "format_error",
    "pii": "policy_violation",
    "threshold": "too_expensive",
    "retrieval_empty": "retrieval_miss",
    "tool_call": "wrong_tool",
}
COMMON_KEYS = ("name", "kind", "project", "description", "decides_outcome", "failure_mode")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "json_valid": (),
    "json_schema": ("schema", "schema_file"),
    "regex": ("pattern", "expect", "field"),
    "contains": ("case_sensitive",),
    "equals": ("case_sensitive",),
    "fuzzy": ("threshold",),
    "pii": ("expect", "field", "detectors"),
    "threshold": ("metric", "max", "min"),
    "retrieval_empty": (),
    "tool_call": ("tool", "called", "arguments_schema"),
    "python": ("callable", "timeout_s"),
    "llm_judge": (
        "base_url", "model", "api_key_env", "template", "rubric", "score_min", "score_max", "timeout_s",
        "retries", "concurrency", "daily_spend_usd", "input_usd_per_mtok", "output_usd_per_mtok",
        "temperature", "max_tokens",
    ),
}  # fmt: skip
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_CALLABLE = re.compile(rf"^{_DOTTED}:{_DOTTED}$")  # module:function, not imported when the file is read


class EvaluatorError(ValueError):
    """The evaluators file (or an API body) is invalid; the message names the line when known."""


class Fields:
    """Checks the keys of one table; errors name the line of the key when it is known."""

    def __init__(self, raw: Mapping[str, Any], what: str, line: int | None, lines: Mapping[str, int]) -> None:
        self.raw, self.line, self.lines = raw, line, lines
        name = raw.get("name")
        self.who = f"{what} {name!r}" if isinstance(name, str) else what

    def fail(self, msg: str, key: str | None = None) -> EvaluatorError:
        line = self.lines.get(key, self.line) if key else self.line
        return EvaluatorError(f"{f'line {line}: ' if line else ''}{self.who}: {msg}")

    def failing(self, key: str) -> Callable[[str], EvaluatorError]:
        return lambda msg: self.fail(msg, key)

    def allowed(self, keys: Sequence[str], what: str = "keys") -> None:
        unknown = [k for k in self.raw if k not in keys]
        if unknown:
            raise self.fail(f"unknown key {unknown[0]!r}; {what}: {', '.join(keys)}", unknown[0])

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        v = self.raw.get(key)
        if v is None:
            if required:
                raise self.fail(f"needs {key}")
            return default
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"{key} must be non-empty text, got {v!r}", key)
        return v

    def choice(self, key: str, options: Sequence[str], default: str | None) -> str | None:
        v = self.raw.get(key, default)
        if v is not None and v not in options:
            raise self.fail(f"{key} must be one of {', '.join(options)}, got {v!r}", key)
        return v

    def flag(self, key: str, default: bool) -> bool:
        v = self.raw.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(f"{key} must be true or false, got {v!r}", key)
        return v

    def num(self, key: str, lo: float | None = None, hi: float | None = None, *, above: bool = False) -> float | None:
        """A number within [lo, hi] (`above`: more than lo); None when absent."""
        v = number(self.raw.get(key), key, self.failing(key))
        if v is None:
            return None
        low_ok = lo is None or v > lo or (v == lo and not above)
        if not low_ok or (hi is not None and v > hi):
            if lo is not None and hi is not None and not above:
                bounds = f"from {lo:g} to {hi:g}"
            else:
                parts = [f"{'more than' if above else 'at least'} {lo:g}"] if lo is not None else []
                bounds = " and ".join([*parts, *([f"at most {hi:g}"] if hi is not None else [])])
            raise self.fail(f"{key} must be {bounds}, got {v:g}", key)
        return v

    def whole(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self.raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"{key} must be a whole number from {lo} to {hi}, got {v!r}", key)
        return v

    def names(self, key: str, *, required: bool = False) -> list[str]:
        v = self.raw.get(key, [])
        ok = isinstance(v, list) and all(isinstance(n, str) and n for n in v)
        if not ok or (required and not v):
            example = '["groundedness", "reply_json"]' if key == "evaluators" else '["email"]'
            raise self.fail(f"{key} must be a list of names, e.g. {key} = {example}", key)
        return v


def _schema(f: Fields, key: str, schema: Any) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise f.fail(f'{key} must be a JSON Schema table, e.g. {key} = {{ type = "object" }}', key)
    schema = dict(schema)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        at = "/".join(str(p) for p in e.absolute_path)
        raise f.fail(f"{key} is not a valid JSON Schema: {e.message}{f' (at {at})' if at else ''}", key) from None
    return schema


def _schema_file(f: Fields, rel: str, root: Path | None) -> dict[str, Any]:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise f.fail(f"schema_file must be a path inside the data directory, got {rel!r}", "schema_file")
    if root is None:
        return {}
    try:
        doc = json.loads((root / path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise f.fail(f"schema_file {rel!r}: no such file in {root}", "schema_file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise f.fail(f"schema_file {rel!r} is not a JSON file: {e}", "schema_file") from None
    return _schema(f, "schema_file", doc)


def template_problem(template: str) -> str | None:
    """Why an LLM judge's template cannot be filled in (None when it can): malformed braces, or a
    name that is not one of TEMPLATE_VARIABLES."""
    variables = ", ".join("{" + v + "}" for v in TEMPLATE_VARIABLES)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        return f"template has malformed braces ({e}); write a literal brace doubled, {{{{ or }}}}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_VARIABLES:
            shown = "{" + name + "}"
            return f"template names {shown}, which is not a template variable; variables: {variables}"
        if spec or conversion:
            return f"template: write {{{name}}} as it is (no format spec or conversion)"
    return None


def _url(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        parts = urlparse(v)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def kind_params(f: Fields, kind: str, root: Path | None) -> dict[str, Any]:
    """The kind's own keys, checked, defaults filled in."""
    raw = f.raw
    p: dict[str, Any] = {}
    if kind == "json_schema":
        if ("schema" in raw) == ("schema_file" in raw):
            raise f.fail("json_schema needs schema (a table) or schema_file (a path in the data directory), not both")
        if "schema" in raw:
            p["schema"] = _schema(f, "schema", raw["schema"])
        else:
            p["schema_file"] = f.text("schema_file")
            loaded = _schema_file(f, p["schema_file"], root)
            if loaded:
                p["schema"] = loaded  # the content is part of the version
    elif kind == "regex":
        pattern = f.text("pattern", required=True)
        try:
            re.compile(pattern or "")
        except re.error as e:
            raise f.fail(f"pattern is not a valid regular expression: {e}", "pattern") from None
        p |= {"pattern": pattern, "expect": f.choice("expect", ("present", "absent"), "present")}
        p["field"] = f.choice("field", FIELDS, "output")
    elif kind in ("contains", "equals"):
        p["case_sensitive"] = f.flag("case_sensitive", True)
    elif kind == "fuzzy":
        threshold = f.num("threshold", 0, 1)
        p["threshold"] = 0.8 if threshold is None else threshold
    elif kind == "pii":
        p["expect"] = f.choice("expect", ("absent", "present"), "absent")
        p["field"] = f.choice("field", FIELDS, "output")
        detectors = f.names("detectors") if "detectors" in raw else list(PII_DETECTORS)
        unknown = [d for d in detectors if d not in PII_DETECTORS]
        if unknown or not detectors:
            got = f"unknown detector {unknown[0]!r}" if unknown else "no detector named"
            raise f.fail(f"{got}; detectors: {', '.join(PII_DETECTORS)}", "detectors")
        p["detectors"] = detectors
    elif kind == "threshold":
        p["metric"] = f.choice("metric", THRESHOLD_METRICS, None)
        if p["metric"] is None:
            raise f.fail(f"needs metric, one of {', '.join(THRESHOLD_METRICS)}")
        for k in ("max", "min"):
            v = f.num(k, 0)
            if v is not None:
                p[k] = v
        if not ("max" in p or "min" in p):
            raise f.fail("needs max or min (or both)")
        if "max" in p and "min" in p and p["min"] > p["max"]:
            raise f.fail(f"min ({p['min']:g}) must not be above max ({p['max']:g})", "min")
    elif kind == "tool_call":
        p["tool"] = f.text("tool", required=True)
        p["called"] = f.flag("called", True)
        if "arguments_schema" in raw:
            if not p["called"]:
                raise f.fail("arguments_schema applies only when called = true", "arguments_schema")
            p["arguments_schema"] = _schema(f, "arguments_schema", raw["arguments_schema"])
    elif kind == "python":
        target = f.text("callable", required=True)
        if not _CALLABLE.match(target or ""):
            raise f.fail(f'callable must be "module:function" (an import path), got {target!r}', "callable")
        p["callable"] = target
        p["timeout_s"] = f.num("timeout_s", 0, 600, above=True) or 5.0
    elif kind == "llm_judge":
        p |= _judge_params(f)
    mode = f.text("failure_mode")
    if kind == "threshold" and p["metric"] == "latency_ms":
        mode = mode or "too_slow"
    mode = mode or DEFAULT_FAILURE_MODES.get(kind)
    if mode is not None:
        p["failure_mode"] = mode
    return p


def _judge_params(f: Fields) -> dict[str, Any]:
    raw = f.raw
    if not _url(raw.get("base_url")):
        raise f.fail(f"base_url must be an http:// or https:// URL, got {raw.get('base_url')!r}", "base_url")
    p: dict[str, Any] = {"base_url": raw["base_url"], "model": f.text("model", required=True)}
    env = raw.get("api_key_env")
    if env is not None:
        if not isinstance(env, str) or not ENV_NAME.match(env):
            raise f.fail(f"api_key_env must name an environment variable, got {env!r}", "api_key_env")
        p["api_key_env"] = env
    template = f.text("template", required=True) or ""
    problem = template_problem(template)
    if problem:
        raise f.fail(problem, "template")
    p["template"] = template
    rubric = f.text("rubric")
    if rubric is not None:
        p["rubric"] = rubric
    for pair in (("score_min", "score_max"), ("input_usd_per_mtok", "output_usd_per_mtok")):
        got = {k: f.num(k, None if k.startswith("score") else 0) for k in pair}
        if (got[pair[0]] is None) != (got[pair[1]] is None):
            missing = pair[0] if got[pair[0]] is None else pair[1]
            raise f.fail(
                f"{pair[0]} and {pair[1]} go together: add {missing}", pair[1] if missing == pair[0] else pair[0]
            )
        if got[pair[0]] is not None:
            p.update(got)
    if "score_min" in p and p["score_min"] >= p["score_max"]:
        raise f.fail(f"score_min ({p['score_min']:g}) must be below score_max ({p['score_max']:g})", "score_min")
    p["timeout_s"] = f.num("timeout_s", 0, 600, above=True) or 30.0
    p["retries"] = f.whole("retries", 3, 0, 10)
    p["concurrency"] = f.whole("concurrency", 4, 1, 64)
    spend = f.num("daily_spend_usd", 0, above=True)
    if spend is not None:
        p["daily_spend_usd"] = spend
    temperature = f.num("temperature", 0, 2)
    p["temperature"] = 0.0 if temperature is None else temperature
    p["max_tokens"] = f.whole("max_tokens", 512, 1, 100_000)
    return p
