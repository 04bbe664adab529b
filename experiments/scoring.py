"""Scoring one item: built-in checks against the expected output, and the item's verdict.

A check is a `Scorer`: it looks at the app's output (text) and the dataset item and answers
True (passed), False (failed) or None (not applicable, e.g. the item has no expected output).
Evaluators (LLM judges, ...) plug in later as more Scorers.

The verdict of an item (`decide`), first rule that applies:

  1. the app raised, or did not answer within the timeout  → failure (mode `error` / `timeout`)
  2. the app marked its task failed (`sl.current_task().fail(reason)`, or a task of its own
     that failed, as the lake records it)                    → failure (mode: the reason, else `app`)
  3. a check failed                                          → failure (mode: the check's name)
  4. the app marked success, or a check passed               → success
  5. nothing decided (no check applied, no mark)             → undecided (None): left out of rates
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import jsonschema
import orjson

from spanlake.experiments.items import DatasetItem

CHECKS = ("exact", "contains", "json-schema")
MAX_MODE = 200  # characters of an app's failure reason kept as a failure mode


@runtime_checkable
class Scorer(Protocol):
    """A check: `name` (a failure mode when it fails) and a call returning True, False or None."""

    name: str

    def __call__(self, output: str | None, item: DatasetItem) -> bool | None: ...


class Exact:
    """The output equals the expected output, after trimming whitespace."""

    name = "exact"

    def __call__(self, output: str | None, item: DatasetItem) -> bool | None:
        if item.expected_output is None:
            return None
        return output is not None and output.strip() == item.expected_output.strip()


class Contains:
    """The expected output (trimmed) appears in the output."""

    name = "contains"

    def __call__(self, output: str | None, item: DatasetItem) -> bool | None:
        if item.expected_output is None:
            return None
        return output is not None and item.expected_output.strip() in output


class JsonSchema:
    """The output is JSON valid against a schema: `schema` (one for every item, e.g. from
    `--schema FILE`), else the item's expected output when it is itself a JSON Schema (an
    object); otherwise not applicable."""

    name = "json-schema"

    def __init__(self, schema: Mapping[str, Any] | None = None) -> None:
        self.schema = dict(schema) if schema is not None else None
        if self.schema is not None:
            check_schema(self.schema)

    def __call__(self, output: str | None, item: DatasetItem) -> bool | None:
        schema = self.schema if self.schema is not None else _schema_of(item.expected_output)
        if schema is None:
            return None
        if output is None:
            return False
        try:
            doc = orjson.loads(output)
        except orjson.JSONDecodeError:
            return False
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            return bool(validator.is_valid(doc))
        except jsonschema.exceptions.SchemaError:
            return None  # the item's "schema" is not one: not applicable


def check_schema(schema: Any) -> None:
    """ValueError unless `schema` is a valid JSON Schema object."""
    if not isinstance(schema, dict):
        raise ValueError("a JSON Schema must be a JSON object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.exceptions.SchemaError as e:
        raise ValueError(f"not a valid JSON Schema: {e.message}") from None


def _schema_of(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    keys = ("type", "properties", "$schema", "required", "items", "enum", "anyOf", "oneOf", "allOf")
    return doc if isinstance(doc, dict) and any(k in doc for k in keys) else None


def make_scorers(names: Sequence[str], schema: Mapping[str, Any] | None = None) -> list[Scorer]:
    """The built-in checks by name (`exact`, `contains`, `json-schema`); ValueError for others."""
    out: list[Scorer] = []
    for name in dict.fromkeys(names):
        if name == "exact":
            out.append(Exact())
        elif name == "contains":
            out.append(Contains())
        elif name == "json-schema":
            out.append(JsonSchema(schema))
        else:
            raise ValueError(f"unknown check {name!r}: use {', '.join(CHECKS)}")
    if schema is not None and "json-schema" not in names:
        raise ValueError("a schema is given but the json-schema check is not chosen")
    return out


def run_checks(scorers: Sequence[Scorer], output: str | None, item: DatasetItem) -> dict[str, bool]:
    """Each applicable check's verdict, by name (checks that do not apply are left out)."""
    verdicts = {}
    for scorer in scorers:
        verdict = scorer(output, item)
        if verdict is not None:
            verdicts[scorer.name] = bool(verdict)
    return verdicts


def decide(result: Mapping[str, Any], figure: Mapping[str, Any] | None = None) -> tuple[bool | None, str | None]:
    """(success, failure mode) of one item from its result line and its lake figures (the
    rules in this module's docstring)."""
    status = result.get("status")
    if status in ("error", "timeout"):
        return False, str(status)
    figure = figure or {}
    outcome = result.get("app_outcome") or figure.get("app_outcome")
    reason = result.get("app_reason") if result.get("app_outcome") else figure.get("app_reason")
    if outcome == "failure":
        return False, (str(reason)[:MAX_MODE] if reason else "app")
    checks: Mapping[str, bool] = result.get("checks") or {}
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        return False, failed[0]
    if outcome == "success" or checks:
        return True, None
    return None, None
