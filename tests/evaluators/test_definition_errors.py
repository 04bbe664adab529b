"""evaluators.toml: every mistake an EvaluatorError naming the line of the key at fault (an
evaluator's, a rule's, the set's, the settings', the syntax)."""

from __future__ import annotations

import pytest

from spanlake.evaluators.definition import (
    KINDS,
    parse,
)
from spanlake.evaluators.target import TEMPLATE_VARIABLES
from tests.evaluators.definition_helpers import error_of

HEAD = """\
# the team's evaluators
[[evaluator]]
name = "e"
"""  # the table starts on line 2; its third key is on line 5


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
