"""evaluators.toml edited through EvaluatorsFile (as the API and the CLI change it): the user's
comments kept, a change that would break the file refused, a file broken by hand keeping the last
good set."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.evaluators.definition import (
    EvaluatorError,
)
from spanlake.evaluators.evaluators_file import EvaluatorExists, EvaluatorsFile, NoSuchEntry

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
