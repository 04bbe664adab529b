"""budgets.toml: every mistake is a BudgetError naming its line, a budget survives to_dict →
budget_from_dict, and no input makes parse() raise anything but BudgetError."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanlake.analytics.budgets.definition import (
    Baseline,
    BudgetError,
    budget_from_dict,
    destination_from_dict,
    format_duration,
    parse,
    read,
)
from spanlake.analytics.budgets.metrics import METRICS

HEAD = """# team budgets
[[destination]]
name = "team-hook"
type = "webhook"
url = "https://example.com/hook"

[[budget]]
name = "p95"
project = "demo"
metric = "p95_latency"
task = "answer_ticket"
window = "15m"
warning = 2500
critical = 3000
destinations = ["team-hook"]
"""
# the second [[budget]] starts on this line of HEAD + SECOND
LINE = HEAD.count("\n") + 2
SECOND = """
[[budget]]
name = "second"
metric = "success_rate"
window = "1h"
warning = 0.85
"""


def with_second(**changes: Any) -> str:
    """HEAD and a second budget with keys changed (None removes one), as TOML text."""
    doc = tomlkit.parse(SECOND)
    table = doc["budget"][0]  # type: ignore[index]
    for k, v in changes.items():
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v
    return HEAD + tomlkit.dumps(doc)


def error_of(text: str) -> str:
    with pytest.raises(BudgetError) as e:
        parse(text, "default", "budgets.toml")
    return str(e.value)


def test_a_good_file() -> None:
    found = parse(HEAD + SECOND, "default")
    first, second = found.budgets
    assert (first.key, first.task, first.window, first.warning, first.critical) == (
        "demo/p95", "answer_ticket", timedelta(minutes=15), 2500, 3000)  # fmt: skip
    assert first.filters().task_name == "answer_ticket" and first.line == 7
    assert (second.project, second.min_samples, second.line) == ("default", METRICS["success_rate"].default_min_samples,
                                                                 LINE)  # fmt: skip
    assert found.destination("team-hook").url == "https://example.com/hook"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "p96_latency"}, "unknown metric 'p96_latency'"),
        ({"window": "0m"}, "window must be longer than 0"),
        ({"window": "soon"}, "window: not a duration"),
        ({"window": "99999999999999d"}, "window"),
        ({"window": "40d"}, "window must be at most 31d"),
        ({"warning": "fast"}, "warning must be a number, got 'fast'"),
        ({"warning": float("nan")}, "warning must be a number"),
        ({"warning": True}, "warning must be a number"),
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"name": "p95", "project": "demo"}, "budget 'p95' of project 'demo' is declared twice"),
        ({"destinations": ["pager"]}, "names destination 'pager', which is not declared"),
        ({"warning": 85}, "success_rate is a fraction from 0 to 1 (write 0.85 for 85 %), got 85"),
        ({"warning": 0.85, "critical": 0.9}, "critical (0.9) must be at or below warning (0.85)"),
        ({"metric": "p95_latency", "warning": 3000, "critical": 2000}, "critical (2000) must be at or above warning"),
        ({"step": "llm"}, "success_rate takes no step"),
        ({"metric": "p95_latency", "step": "disk", "warning": 1}, "step must be one of task, llm, retrieval, tool"),
        ({"metric": "retry_rate", "task": "answer", "warning": 0.1}, "retry_rate cannot be scoped to a task"),
        ({"warning": None}, "needs a warning or a critical threshold"),
        ({"window": None}, 'needs a window, e.g. window = "15m"'),
        ({"name": "has space"}, "needs a name"),
        ({"min_samples": -1}, "min_samples must be a whole number"),
        ({"baseline": "last week"}, "baseline must be like '7d ago' or 'previous 7d'"),
        ({"baseline": "7d ago", "warning": -5}, "a percentage worse than the baseline: more than 0"),
        ({"slow_ms": 100}, "slow_ms applies to slow_share only"),
        ({"attributes": {"tier": 1}}, "attributes must be a table of strings"),
        ({"window": "0.5s"}, "window must be a whole number of seconds"),
    ],
)
def test_mistakes_name_their_line(changes: dict[str, Any], message: str) -> None:
    got = error_of(with_second(**changes))
    assert got.startswith(f"budgets.toml: line {LINE}: "), got
    assert message in got, got


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ({"url": "not a url"}, "url must be an http:// or https:// URL, got 'not a url'"),
        ({"url": "ftp://example.com/x"}, "url must be an http:// or https:// URL"),
        ({"url": "http://[::1"}, "url must be an http:// or https:// URL"),
        ({"type": "carrier-pigeon"}, "type must be one of webhook, slack, teams, pagerduty, email"),
        ({"secret_env": "not valid"}, "secret_env must name an environment variable"),
        ({"type": "pagerduty", "url": None}, "pagerduty needs routing_key_env"),
        ({"type": "email", "url": None}, "email needs to ="),
        ({"smtp": "mail"}, "smtp must be host:port"),
        ({"token": "x"}, "unknown key 'token'"),
    ],
)
def test_destination_mistakes_name_their_line(destination: dict[str, Any], message: str) -> None:
    doc = tomlkit.parse(HEAD)
    table = doc["destination"][0]  # type: ignore[index]
    for k, v in destination.items():
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v
    got = error_of(tomlkit.dumps(doc))
    assert got.startswith("budgets.toml: line 2: destination 'team-hook': "), got
    assert message in got, got


def test_file_level_mistakes() -> None:
    assert re.match(r"budgets\.toml: line 3: not valid TOML", error_of("[[budget]]\nname = 'x'\nname = 'y'\n"))
    assert "unknown table alert" in error_of("[alert]\nx = 1\n")
    assert "budget must be written [[budget]]" in error_of("[budget]\nname = 'x'\n")
    assert "a budget must be a table" in error_of("budget = [1]\n")
    dup = HEAD + "\n[[destination]]\nname = 'team-hook'\ntype = 'slack'\nurl = 'https://hooks.example.com/x'\n"
    assert error_of(dup) == f"budgets.toml: line {LINE}: destination 'team-hook' is declared twice"


def test_read(tmp_path: Path) -> None:
    assert read(tmp_path / "budgets.toml").budgets == ()  # no file: no budgets
    (tmp_path / "budgets.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(BudgetError, match="not UTF-8"):
        read(tmp_path / "budgets.toml")


def test_round_trip() -> None:
    found = parse(HEAD + SECOND)
    everything = {
        "name": "all", "project": "demo", "metric": "slow_share", "step": "tool", "task": "answer",
        "service": "api", "model": "gpt-4o", "provider": "openai", "prompt_name": "p", "prompt_version": "v3",
        "attributes": {"tenant": "acme", "a=b": ""}, "window": "90m", "warning": 10, "critical": 25.5,
        "min_samples": 0, "for": "5m", "baseline": "previous 7d", "destinations": ["team-hook"],
        "renotify": "0s", "slow_ms": 1500, "description": "tools got slow",
    }  # fmt: skip
    for b in [*found.budgets, budget_from_dict(everything, "default")]:
        again = budget_from_dict(b.to_dict(), "elsewhere", b.line)
        assert again == b
        # and through the file's own text
        text = tomlkit.dumps({"budget": [b.to_dict()], "destination": [d.to_dict() for d in found.destinations]})
        (back,) = parse(text).budgets
        assert dataclasses.replace(back, line=b.line) == b
    for d in found.destinations:
        assert destination_from_dict(d.to_dict(), d.line) == d


def test_durations_and_baselines() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (90, 900, 86400, 3600 * 36, 0)] == [
        "90s", "15m", "1d", "36h", "0s"]  # fmt: skip
    assert Baseline.parse(" 7d ago ") == Baseline("ago", timedelta(days=7), "7d ago")
    assert Baseline.parse("Previous 24h").kind == "previous"
    for bad in ("ago", "7d", "previous", "0d ago", "400d ago", "99999999999999d ago"):
        with pytest.raises(ValueError):
            Baseline.parse(bad)


KEYS = ["name", "project", "metric", "step", "task", "service", "attributes", "window", "warning", "critical",
        "min_samples", "for", "baseline", "destinations", "renotify", "slow_ms", "description", "other",
        "type", "url", "secret_env", "routing_key_env", "to", "from", "smtp"]  # fmt: skip
WORDS = ["p95_latency", "success_rate", "retry_rate", "traffic", "15m", "0s", "7d ago", "previous 7d", "x", "",
         "llm", "task", "webhook", "email", "pagerduty", "https://e.com/h", "http://[::1", "a@b.c", "h:25", "ENV",
         "99999999999999d", "1.5h", "team-hook"]  # fmt: skip
TEXTS = st.sampled_from(WORDS) | st.text(max_size=12)
SCALARS = TEXTS | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=True) | st.booleans()
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
                      max_leaves=6)  # fmt: skip
TABLES = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), VALUES, max_size=12)


def only_budget_errors(text: str) -> None:
    try:
        parse(text)
    except BudgetError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_budget_errors(text: str) -> None:
    only_budget_errors(text)
    only_budget_errors("[[budget]]\n" + text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TABLES, max_size=3), st.lists(TABLES, max_size=2), VALUES)
def test_arbitrary_tables_only_raise_budget_errors(budgets: list, destinations: list, other: Any) -> None:
    for raw in (*budgets, *destinations, other):
        for fn in (lambda r: budget_from_dict(r, "default", 3), lambda r: destination_from_dict(r, 3)):
            try:
                fn(raw)
            except BudgetError:
                pass
    try:
        text = tomlkit.dumps({"budget": budgets, "destination": destinations})
    except Exception:  # a value TOML cannot hold (e.g. mixed nesting tomlkit refuses): nothing to parse
        return
    only_budget_errors(text)
    only_budget_errors(tomlkit.dumps({"budget": other}) if isinstance(other, dict | list) else "budget = 1")
