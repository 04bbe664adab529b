"""evaluators.toml read: every kind with its params checked and defaults filled in, what makes a
version, settings, and a JSON Schema read from the data directory. Mistakes: test_definition_errors.py;
the file edited through EvaluatorsFile: test_evaluators_file.py."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.evaluators.definition import (
    KINDS,
    EvaluatorError,
    Settings,
    evaluator_from_dict,
    parse,
    read,
)
from tests.evaluators.definition_helpers import error_of

EVERY_KIND = '''\
# every kind, defaults left out
[settings]
quiet_period = "90s"
max_backlog = 500

[[evaluator]]
name = "is_json"
kind = "json_valid"

[[evaluator]]
name = "reply_json"
kind = "json_schema"
schema = { type = "object", required = ["answer"] }
decides_outcome = true

[[evaluator]]
name = "no_sorry"
kind = "regex"
pattern = "(?i)sorry"
expect = "absent"

[[evaluator]]
name = "has_expected"
kind = "contains"

[[evaluator]]
name = "exact"
kind = "equals"
case_sensitive = false

[[evaluator]]
name = "close"
kind = "fuzzy"

[[evaluator]]
name = "no_pii"
kind = "pii"
detectors = ["email"]

[[evaluator]]
name = "fast"
kind = "threshold"
metric = "latency_ms"
max = 2500

[[evaluator]]
name = "cheap"
kind = "threshold"
metric = "cost_usd"
min = 0
max = 0.02
failure_mode = "budget"

[[evaluator]]
name = "found_docs"
kind = "retrieval_empty"

[[evaluator]]
name = "searched"
kind = "tool_call"
tool = "search"
arguments_schema = { type = "object", required = ["query"] }

[[evaluator]]
name = "custom"
kind = "python"
callable = "no_such_module_anywhere.checks:polite"
description = "not imported when the file is read"

[[evaluator]]
name = "groundedness"
project = "support"
kind = "llm_judge"
base_url = "http://127.0.0.1:8000/v1"
model = "judge-1"
api_key_env = "JUDGE_KEY"
template = """Question: {input}
key = {documents}
[not a header]
Answer: {output} {{literal}}"""
score_min = 1
score_max = 5
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6

[[rule]]
name = "answers"
project = "support"
evaluators = ["groundedness"]
sample = 0.1
target = "llm"
task = "answer_ticket"
attributes = { tenant = "acme" }
queue_when = "fail"
dataset = "judged-fails"
webhook = "team-hook"
webhook_when = "always"

[[rule]]
name = "all"
evaluators = ["is_json", "reply_json"]
queue_when = "disagree"
'''


def test_every_kind_is_read_with_its_defaults() -> None:
    found = parse(EVERY_KIND)
    assert {e.kind for e in found.evaluators} == set(KINDS)
    assert found.settings == Settings(quiet_period=timedelta(seconds=90), max_backlog=500)
    params = {e.name: dict(e.params) for e in found.evaluators}
    assert params == {
        "is_json": {"failure_mode": "format_error"},
        "reply_json": {"schema": {"type": "object", "required": ["answer"]}, "failure_mode": "format_error"},
        "no_sorry": {"pattern": "(?i)sorry", "expect": "absent", "field": "output", "failure_mode": "format_error"},
        "has_expected": {"case_sensitive": True},
        "exact": {"case_sensitive": False},
        "close": {"threshold": 0.8},
        "no_pii": {"expect": "absent", "field": "output", "detectors": ["email"], "failure_mode": "policy_violation"},
        "fast": {"metric": "latency_ms", "max": 2500.0, "failure_mode": "too_slow"},
        "cheap": {"metric": "cost_usd", "max": 0.02, "min": 0.0, "failure_mode": "budget"},
        "found_docs": {"failure_mode": "retrieval_miss"},
        "searched": {
            "tool": "search", "called": True, "arguments_schema": {"type": "object", "required": ["query"]},
            "failure_mode": "wrong_tool",
        },
        "custom": {"callable": "no_such_module_anywhere.checks:polite", "timeout_s": 5.0},
        "groundedness": {
            "base_url": "http://127.0.0.1:8000/v1", "model": "judge-1", "api_key_env": "JUDGE_KEY",
            "template": "Question: {input}\nkey = {documents}\n[not a header]\nAnswer: {output} {{literal}}",
            "score_min": 1.0, "score_max": 5.0, "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6,
            "timeout_s": 30.0, "retries": 3, "concurrency": 4, "temperature": 0.0, "max_tokens": 512,
        },
    }  # fmt: skip
    by_name = {e.name: e for e in found.evaluators}
    assert by_name["reply_json"].decides_outcome and not by_name["is_json"].decides_outcome
    assert by_name["groundedness"].project == "support" and by_name["is_json"].project == "default"
    assert by_name["custom"].description == "not imported when the file is read"
    assert [e.line for e in found.evaluators][:3] == [6, 10, 16] and {e.version for e in found.evaluators} == {0}
    answers, everything = found.rules
    assert (answers.project, answers.evaluators, answers.sample, answers.target) == (
        "support",
        ("groundedness",),
        0.1,
        "llm",
    )
    assert answers.scope == {"task": "answer_ticket", "attributes": {"tenant": "acme"}}
    assert (answers.queue_when, answers.dataset, answers.dataset_when) == ("fail", "judged-fails", "fail")
    assert (answers.webhook, answers.webhook_when, answers.enabled) == ("team-hook", "always", True)
    assert (everything.project, everything.sample, everything.target, everything.queue_when) == (
        "default", 1.0, "trace", "disagree",
    )  # fmt: skip
    # lines after the judge's template (whose text holds "key = ..." and "[not a header]") are counted right
    assert [r.line for r in found.rules] == [86, 99]
    assert error_of(EVERY_KIND.replace("sample = 0.1", "sample = 2")) == (
        "evaluators.toml: line 90: rule 'answers': sample must be from 0 to 1, got 2"
    )
    assert parse("").settings == Settings(quiet_period=timedelta(minutes=1), max_backlog=10_000)


def test_a_version_is_kind_params_and_decides_outcome_not_the_description() -> None:
    base = {"name": "r", "kind": "regex", "pattern": "x"}
    same = evaluator_from_dict(base).fingerprint
    assert evaluator_from_dict({**base, "expect": "present", "description": "d"}).fingerprint == same
    assert evaluator_from_dict({**base, "expect": "absent"}).fingerprint != same
    assert evaluator_from_dict({**base, "decides_outcome": True}).fingerprint != same


def test_settings_accept_short_and_zero_quiet_periods() -> None:
    assert parse('[settings]\nquiet_period = "0.5s"\n').settings.quiet_period == timedelta(milliseconds=500)
    assert parse('[settings]\nquiet_period = "0s"\n').settings.quiet_period == timedelta(0)


def test_schema_file_is_read_from_the_data_directory(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "reply.json").write_text(json.dumps({"type": "object", "required": ["answer"]}))
    text = '[[evaluator]]\nname = "s"\nkind = "json_schema"\nschema_file = "schemas/reply.json"\n'
    (tmp_path / "evaluators.toml").write_text(text)
    (found,) = read(tmp_path / "evaluators.toml").evaluators
    assert found.params == {
        "schema_file": "schemas/reply.json", "schema": {"type": "object", "required": ["answer"]},
        "failure_mode": "format_error",
    }  # fmt: skip
    assert parse(text).evaluators[0].params == {"schema_file": "schemas/reply.json", "failure_mode": "format_error"}
    (tmp_path / "schemas" / "reply.json").write_text('{"type": 5}')
    with pytest.raises(
        EvaluatorError, match=r"line 4: evaluator 's': schema_file is not a valid JSON Schema: 5 is not"
    ):
        read(tmp_path / "evaluators.toml")
    (tmp_path / "evaluators.toml").write_text(text.replace("schemas/reply.json", "schemas/none.json"))
    with pytest.raises(EvaluatorError, match=r"line 4: evaluator 's': schema_file 'schemas/none.json': no such file"):
        read(tmp_path / "evaluators.toml")
    with pytest.raises(EvaluatorError, match=r"line 4: .*schema_file must be a path inside the data directory"):
        parse(text.replace("schemas/reply.json", "../secrets.json"))
