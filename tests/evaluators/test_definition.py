"""evaluators.toml: every kind read with its params checked and defaults filled in, every
mistake an EvaluatorError naming the line of the key at fault, and the file edited through
EvaluatorsFile keeping the user's comments."""

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
from spanlake.evaluators.evaluators_file import EvaluatorExists, EvaluatorsFile, NoSuchEntry
from spanlake.evaluators.target import TEMPLATE_VARIABLES

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


HEAD = """\
# the team's evaluators
[[evaluator]]
name = "e"
"""  # the table starts on line 2; its third key is on line 5


def error_of(text: str) -> str:
    with pytest.raises(EvaluatorError) as e:
        parse(text)
    return str(e.value)


KIND_LIST = ", ".join(KINDS)
VARIABLES = ", ".join("{" + v + "}" for v in TEMPLATE_VARIABLES)
JUDGE = 'kind = "llm_judge"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'  # lines 4-6


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('kind = "jsn"\n', f"line 4: evaluator 'e': unknown kind 'jsn'; kinds: {KIND_LIST}"),
        ("pattern = 'x'\n", f"line 2: evaluator 'e': unknown kind None; kinds: {KIND_LIST}"),
        (
            'kind = "regex"\npattern = "x"\npatern = "y"\n',
            "line 6: evaluator 'e': unknown key 'patern'; keys of regex: name, kind, project, description, "
            "decides_outcome, failure_mode, pattern, expect, field",
        ),
        ('kind = "regex"\n', "line 2: evaluator 'e': needs pattern"),
        ('kind = "python"\n', "line 2: evaluator 'e': needs callable"),
        ('kind = "tool_call"\ncalled = false\n', "line 2: evaluator 'e': needs tool"),
        ('kind = "llm_judge"\nbase_url = "http://x/v1"\ntemplate = "{output}"\n', "line 2: evaluator 'e': needs model"),
        (
            'kind = "llm_judge"\nmodel = "m"\n',
            "line 2: evaluator 'e': base_url must be an http:// or https:// URL, got None",
        ),
        (
            'kind = "regex"\npattern = "("\n',
            "line 5: evaluator 'e': pattern is not a valid regular expression: "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            'kind = "json_schema"\nschema = { type = "objekt" }\n',
            "line 5: evaluator 'e': schema is not a valid JSON Schema: "
            "'objekt' is not valid under any of the given schemas (at type)",
        ),
        (
            'kind = "tool_call"\ntool = "search"\narguments_schema = { required = "query" }\n',
            "line 6: evaluator 'e': arguments_schema is not a valid JSON Schema: "
            "'query' is not of type 'array' (at required)",
        ),
        (
            'kind = "json_schema"\n',
            "line 2: evaluator 'e': json_schema needs schema (a table) or schema_file (a path in the data "
            "directory), not both",
        ),
        (
            JUDGE + 'template = "Q: {input} A: {answer}"\n',
            f"line 7: evaluator 'e': template names {{answer}}, which is not a template variable; "
            f"variables: {VARIABLES}",
        ),
        (
            JUDGE + 'template = """Q: {input}\nA: {input.__class__}"""\n',
            "line 7: evaluator 'e': template names {input.__class__}, which is not a template variable; "
            f"variables: {VARIABLES}",
        ),
        (
            JUDGE + 'template = "Answer: {output"\n',
            "line 7: evaluator 'e': template has malformed braces (expected '}' before end of string); "
            "write a literal brace doubled, {{ or }}",
        ),
        (
            JUDGE + 'template = "{output} as JSON: {verdict: ...}"\n',
            f"line 7: evaluator 'e': template names {{verdict}}, which is not a template variable; "
            f"variables: {VARIABLES}",
        ),
        (
            JUDGE + 'template = "{output!r}"\n',
            "line 7: evaluator 'e': template: write {output} as it is (no format spec or conversion)",
        ),
        (
            JUDGE + 'template = "{output}"\nscore_min = 1\n',
            "line 8: evaluator 'e': score_min and score_max go together: add score_max",
        ),
        (
            JUDGE + 'template = "{output}"\nscore_min = 5\nscore_max = 1\n',
            "line 8: evaluator 'e': score_min (5) must be below score_max (1)",
        ),
        (
            JUDGE + 'template = "{output}"\nconcurrency = 0\n',
            "line 8: evaluator 'e': concurrency must be a whole number from 1 to 64, got 0",
        ),
        (
            'kind = "python"\ncallable = "mymodule.check"\n',
            "line 5: evaluator 'e': callable must be \"module:function\" (an import path), got 'mymodule.check'",
        ),
        ('kind = "fuzzy"\nthreshold = 1.5\n', "line 5: evaluator 'e': threshold must be from 0 to 1, got 1.5"),
        (
            'kind = "pii"\ndetectors = ["email", "ssn"]\n',
            "line 5: evaluator 'e': unknown detector 'ssn'; detectors: email, api_key, card_number",
        ),
        ('kind = "threshold"\nmetric = "latency_ms"\n', "line 2: evaluator 'e': needs max or min (or both)"),
        (
            'kind = "threshold"\nmetric = "latency"\nmax = 1\n',
            "line 5: evaluator 'e': metric must be one of latency_ms, cost_usd, input_tokens, output_tokens, "
            "total_tokens, got 'latency'",
        ),
        (
            'kind = "json_valid"\ndecides_outcome = "yes"\n',
            "line 5: evaluator 'e': decides_outcome must be true or false, got 'yes'",
        ),
        (
            'kind = "json_valid"\nproject = "a/b"\n',
            "line 5: evaluator 'e': project must be a project name (letters, digits, _ . -), got 'a/b'",
        ),
    ],
)
def test_a_bad_evaluator_names_its_line(body: str, expected: str) -> None:
    assert error_of(HEAD + body) == f"evaluators.toml: {expected}"


RULES = """\
[[evaluator]]
name = "a"
kind = "json_valid"

[[evaluator]]
name = "b"
kind = "json_valid"

[[rule]]
name = "r"
evaluators = ["a", "b"]
"""  # the rule starts on line 9; a key added after it is on line 12


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("sample = 1.5\n", "line 12: rule 'r': sample must be from 0 to 1, got 1.5"),
        ("sample = -0.1\n", "line 12: rule 'r': sample must be from 0 to 1, got -0.1"),
        (
            'target = "spans"\n',
            "line 12: rule 'r': target must be one of trace, llm, embedding, retrieval, rerank, tool, agent, "
            "chain, guardrail, task, other, got 'spans'",
        ),
        (
            'queue_when = "sometimes"\n',
            "line 12: rule 'r': queue_when must be one of fail, disagree, always, got 'sometimes'",
        ),
        (
            'dataset = "d"\ndataset_when = "never"\n',
            "line 13: rule 'r': dataset_when must be one of fail, disagree, always, got 'never'",
        ),
        ('webhook_when = "always"\n', "line 12: rule 'r': webhook_when needs webhook"),
        (
            "filter = 1\n",
            "line 12: rule 'r': unknown key 'filter'; keys: name, project, description, evaluators, sample, "
            "target, task, service, model, provider, prompt_name, prompt_version, attributes, queue_when, "
            "dataset, dataset_when, webhook, webhook_when, enabled",
        ),
    ],
)
def test_a_bad_rule_names_its_line(extra: str, expected: str) -> None:
    assert error_of(RULES + extra) == f"evaluators.toml: {expected}"


def test_set_wide_mistakes_name_their_line() -> None:
    unknown = RULES.replace('["a", "b"]', '["a", "c"]')
    assert error_of(unknown) == (
        "evaluators.toml: line 11: rule 'r' names evaluator 'c', which project 'default' does not declare "
        "(declared: a, b)"
    )
    elsewhere = RULES + 'project = "other"\n'
    assert error_of(elsewhere) == (
        "evaluators.toml: line 11: rule 'r' names evaluator 'a', which project 'other' does not declare "
        "(it declares none)"
    )
    twice = RULES.replace('name = "b"', 'name = "a"')
    assert error_of(twice) == "evaluators.toml: line 6: evaluator 'a' of project 'default' is declared twice"
    # the same name in another project is another evaluator
    assert (
        len(parse(RULES.replace('name = "b"\n', 'name = "a"\nproject = "p"\n').replace('"a", "b"', '"a"')).evaluators)
        == 2
    )
    rule_twice = RULES + '\n[[rule]]\nname = "r"\nevaluators = ["a"]\n'
    assert error_of(rule_twice) == "evaluators.toml: line 14: rule 'r' of project 'default' is declared twice"
    disagree = RULES.replace('["a", "b"]', '["a"]') + 'queue_when = "disagree"\n'
    assert (
        error_of(disagree)
        == "evaluators.toml: line 12: rule 'r': queue_when = \"disagree\" needs two evaluators or more"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[settings]\nquiet_period = "1 minute"\n',
            "line 2: settings: quiet_period: not a duration: '1 minute' (use e.g. 30m, 24h, 7d)",
        ),
        (
            "[settings]\nquiet_period = 60\n",
            'line 2: settings: quiet_period must be a duration such as "15m", "1h", "24h", got 60',
        ),
        (
            '# x\n[settings]\nmax_backlog = 10\nquiet = "1m"\n',
            "line 4: settings: unknown key 'quiet'; keys: quiet_period, max_backlog",
        ),
        (
            "[settings]\nmax_backlog = 0\n",
            "line 2: settings: max_backlog must be a whole number from 1 to 10000000, got 0",
        ),
        ("[[evaluators]]\nname = 'x'\n", "unknown table evaluators; write [settings], [[evaluator]] and [[rule]]"),
        ('[evaluator]\nname = "x"\n', "evaluator must be written [[evaluator]] (an array of tables)"),
        ('[[evaluator]]\nname = "x"\nname = "y"\n', 'line 3: not valid TOML: Key "name" already exists.'),
        (
            '[[evaluator]]\nname = "x\n',
            "line 2: not valid TOML: Control characters (codes less than 0x1f and 0x7f) are not allowed in strings, "
            "use \\u000a instead at line 2 col 9",
        ),
    ],
)
def test_settings_and_syntax_errors_name_their_line(text: str, expected: str) -> None:
    assert error_of(text) == f"evaluators.toml: {expected}"


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


# --- the file as the API and the CLI change it -------------------------------------------------

HAND_WRITTEN = """\
# Evaluators of the support team
[settings]
quiet_period = "2m"  # the app streams slowly

[[evaluator]]
name = "reply_json"  # what the UI parses
project = "support"
kind = "json_schema"
schema = { type = "object" }

# online
[[rule]]
name = "all-replies"
project = "support"
evaluators = ["reply_json"]
sample = 0.5
"""
NO_SORRY = {"name": "no_sorry", "project": "support", "kind": "regex", "pattern": "sorry", "expect": "absent"}


@pytest.fixture
def store(tmp_path: Path) -> EvaluatorsFile:
    (tmp_path / "evaluators.toml").write_text(HAND_WRITTEN)
    return EvaluatorsFile(tmp_path, "support")


def test_edits_keep_the_users_comments(store: EvaluatorsFile) -> None:
    added, created = store.put_evaluator(NO_SORRY)
    assert created and added.version == 1 and added.params["expect"] == "absent"
    assert store.path.read_text() == HAND_WRITTEN.replace(
        'schema = { type = "object" }\n',
        'schema = { type = "object" }\n\n[[evaluator]]\nname = "no_sorry"\nproject = "support"\nkind = "regex"\n'
        'pattern = "sorry"\nexpect = "absent"\n',
    )
    rule, created = store.put_rule({"name": "all-replies", "evaluators": ["reply_json", "no_sorry"], "sample": 0.5})
    assert not created and rule.evaluators == ("reply_json", "no_sorry")
    text = store.path.read_text()
    assert 'evaluators = ["reply_json", "no_sorry"]\nsample = 0.5\n' in text and "# online\n[[rule]]" in text
    with pytest.raises(
        EvaluatorError, match=r"evaluator 'no_sorry' is run by rule\(s\) all-replies of project 'support'"
    ):
        store.remove_evaluator("support", "no_sorry")
    store.put_rule({"name": "all-replies", "evaluators": ["reply_json"], "sample": 0.5})
    assert store.remove_evaluator("support", "no_sorry").name == "no_sorry"
    assert store.path.read_text() == HAND_WRITTEN  # back to the user's file, byte for byte
    assert store.remove_rule("support", "all-replies").sample == 0.5
    assert "[[rule]]" not in store.path.read_text() and "# the app streams slowly" in store.path.read_text()


def test_a_change_that_would_break_the_file_is_refused(store: EvaluatorsFile) -> None:
    with pytest.raises(EvaluatorExists, match="evaluator 'reply_json' of project 'support' exists"):
        store.put_evaluator({"name": "reply_json", "kind": "json_valid"}, create=True)
    with pytest.raises(
        EvaluatorError, match="unknown evaluator 'nope' in project 'support' \\(declared: reply_json\\)"
    ):
        store.put_rule({"name": "r2", "evaluators": ["nope"]})
    with pytest.raises(EvaluatorError, match="evaluator 'x': unknown kind 'jsn'"):
        store.put_evaluator({"name": "x", "kind": "jsn"})
    with pytest.raises(NoSuchEntry):
        store.remove_rule("support", "nope")
    with pytest.raises(NoSuchEntry):
        store.remove_evaluator("default", "reply_json")  # that name lives in project support
    assert store.path.read_text() == HAND_WRITTEN


def test_a_file_broken_by_hand_keeps_the_last_good_set(store: EvaluatorsFile) -> None:
    (good,) = store.current().evaluators
    assert good.version == 1 and store.error is None
    store.path.write_text(HAND_WRITTEN.replace('kind = "json_schema"', 'kind = "json_schemaa"'))
    found, error = store.status()
    assert found.evaluators == (good,)
    assert error is not None and "line 8: evaluator 'reply_json': unknown kind 'json_schemaa'" in error
    with pytest.raises(EvaluatorError, match="fix the file by hand first; nothing was changed"):
        store.put_evaluator(NO_SORRY)
    store.path.write_text(HAND_WRITTEN.replace('{ type = "object" }', '{ type = "array" }'))
    (changed,) = store.current().evaluators
    assert changed.version == 2 and store.error is None
